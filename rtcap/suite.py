"""``TradingSuite``: the SDK-style face over a frame source, the pipeline and the event bus.

    suite = await TradingSuite.create(["MNQ", "ES"], timeframes=["1min", "5min"], source=src)
    await suite["MNQ"].on(EventType.NEW_BAR, handler)
    bars = await suite["MNQ"].data.get_data("1min")

One task reads the source in order and delivers each frame's events before reading the next, so
handlers see exactly the order a replay of the same frames would give them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import ItemsView, Iterable, Iterator, KeysView, ValuesView
from typing import Any

from rtcap.dataview import InstrumentData
from rtcap.events import Event, EventBus, EventType, Handler
from rtcap.instruments import CME_FUTURES, InstrumentSpec
from rtcap.orderbook import OrderBookView
from rtcap.pipeline import Pipeline
from rtcap.sources import FrameSource

log = logging.getLogger("rtcap.suite")
FEATURES = ("orderbook",)


async def default_live_source(symbols: list[str], record_to: str | None = None) -> Any:
    """ProjectX when credentials are in the environment, else the embedded simulated market."""
    from rtcap.capture.endpoints import projectx_credentials, projectx_urls
    from rtcap.capture.feeds import ProjectXAuth, ProjectXMarketFeed, local_gateway_feed
    from rtcap.capture.live import Live
    from rtcap.gateway.embedded import start_embedded_market

    credentials = projectx_credentials()
    if credentials is not None:
        api_url, hub_url, _ = projectx_urls()
        feed = ProjectXMarketFeed(ProjectXAuth(api_url, *credentials), hub_url, symbols)
        info = {
            "kind": "projectx",
            "api_url": api_url,
            "username": credentials[0],
            "symbols": symbols,
        }
        return Live([feed], record_to=record_to, source_info=info)
    market = await start_embedded_market(instruments=symbols)
    return Live(
        [local_gateway_feed(market, symbols)],
        record_to=record_to,
        source_info=market.source_info(),
        on_close=market.stop,
    )


class InstrumentContext:
    """``suite["MNQ"]``: one instrument's data view and event subscriptions."""

    def __init__(
        self,
        symbol: str,
        data: InstrumentData,
        bus: EventBus,
        orderbook: OrderBookView | None = None,
    ) -> None:
        self.symbol = symbol
        self.data = data
        self.instrument_info: InstrumentSpec | None = CME_FUTURES.get(symbol)
        self._bus = bus
        self._orderbook = orderbook

    @property
    def orderbook(self) -> OrderBookView:
        """The instrument's L2 book (``features=["orderbook"]``)."""
        if self._orderbook is None:
            raise AttributeError(
                f'{self.symbol} has no order book: create the suite with features=["orderbook"]'
            )
        return self._orderbook

    async def on(self, event_type: EventType | str, handler: Handler) -> None:
        await self._bus.on(event_type, handler, instrument=self.symbol)

    async def once(self, event_type: EventType | str, handler: Handler) -> None:
        await self._bus.once(event_type, handler, instrument=self.symbol)

    async def off(
        self, event_type: EventType | str | None = None, handler: Handler | None = None
    ) -> None:
        await self._bus.off(event_type, handler, instrument=self.symbol)

    async def wait_for(self, event_type: EventType | str, timeout: float | None = None) -> Event:
        return await self._bus.wait_for(event_type, timeout, instrument=self.symbol)

    def __repr__(self) -> str:
        return f"InstrumentContext({self.symbol!r})"


class TradingSuite:
    """Instruments, their bars and one ordered event stream from one frame source."""

    def __init__(self, pipeline: Pipeline, bus: EventBus, source: FrameSource) -> None:
        self.pipeline = pipeline
        self.events = bus
        self.source = source
        self._contexts = {
            symbol: InstrumentContext(
                symbol,
                InstrumentData(pipeline, symbol),
                bus,
                OrderBookView(pipeline, symbol) if pipeline.books else None,
            )
            for symbol in pipeline.instruments
        }
        self._task: asyncio.Task[None] | None = None
        self._done = asyncio.Event()
        self._failure: BaseException | None = None

    @classmethod
    async def create(
        cls,
        instruments: str | Iterable[str],
        timeframes: Iterable[str] | None = None,
        *,
        source: FrameSource | None = None,
        initial_days: float = 5,
        auto_connect: bool = True,
        codec: str = "auto",
        timezone: str | None = None,
        session_start: str | None = None,
        price_source: str = "trades",
        time_source: str = "auto",
        fill_flat: bool = False,
        late_policy: str = "drop",
        max_bars: int = 5000,
        close_grace_ns: int | None = None,
        record_to: str | None = None,
        features: Iterable[str] = (),
        connect_timeout: float = 30.0,
    ) -> TradingSuite:
        """Build the suite, load ``initial_days`` of history when the source offers it, and
        (with ``auto_connect``) start streaming. ``timeframes`` defaults to ``["5min"]``.

        Without ``source``, the suite streams live: from ProjectX when ``PROJECTX_USERNAME`` and
        ``PROJECTX_API_KEY`` (or the SDK's ``PROJECT_X_USERNAME`` / ``PROJECT_X_API_KEY``) are
        set, otherwise from the embedded simulated market. With
        ``record_to``, that live session is recorded to a capture directory as well.

        ``features=["orderbook"]`` keeps an L2 book per instrument (``suite["MNQ"].orderbook``,
        ``ORDERBOOK_UPDATE`` events), live and in replay alike.
        """
        features = {str(f).lower() for f in ([features] if isinstance(features, str) else features)}
        unknown = features - set(FEATURES)
        if unknown:
            raise ValueError(
                f"unknown feature(s) {sorted(unknown)}: rtcap offers {', '.join(FEATURES)}"
            )
        symbols = [instruments] if isinstance(instruments, str) else list(instruments)
        if source is None:
            source = await default_live_source(symbols, record_to)
        elif record_to is not None:
            raise ValueError(
                "record_to= applies to live sources only: pass source=None, or "
                "give Live(..., record_to=...) as the source"
            )
        if not hasattr(source, "__aiter__"):
            raise TypeError(f"source must be an async iterable of Frame, got {type(source)!r}")
        if not symbols:
            raise ValueError("give at least one instrument, e.g. 'MNQ'")
        bus = EventBus()
        pipeline = Pipeline(
            symbols,
            list(timeframes or ["5min"]),
            codec=codec,
            timezone=timezone,
            session_start=session_start,
            price_source=price_source,
            time_source=time_source,
            fill_flat=fill_flat,
            late_policy=late_policy,
            max_bars=max_bars,
            close_grace_ns=close_grace_ns,
            wanted=bus.wanted,
            books="orderbook" in features,
            # a capture names its contracts as its recorder resolved them
            contracts=getattr(source, "contract_names", None),
        )
        suite = cls(pipeline, bus, source)
        await suite._load_history(initial_days)
        if auto_connect:
            try:
                await suite.connect(connect_timeout)
            except BaseException:
                await suite.disconnect()
                raise
        return suite

    async def _load_history(self, days: float) -> None:
        history = getattr(self.source, "history", None)
        if history is None or days <= 0:
            return
        clock = getattr(self.source, "clock_ns", None)  # a live source's: partial bars form
        for symbol in self._contexts:
            for timeframe in self.pipeline.timeframes:
                bars = await history(symbol, timeframe.label, days)
                as_of = clock() if clock is not None else None
                self.pipeline.seed_history(symbol, timeframe.label, bars, as_of)

    # --- streaming ---------------------------------------------------------------------

    async def connect(self, timeout: float | None = 30.0) -> None:
        """Start reading the source (no-op when already started). A live source's connection
        is open when this returns, as the SDK's is when ``create()`` returns: ``TimeoutError``
        if it did not open within ``timeout`` s, ``ConnectionError`` if the feed failed."""
        if self._task is None:
            self._task = asyncio.create_task(self._consume(), name="rtcap-suite-feed")
        if not getattr(self.source, "connects", False):
            return
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        while self.pipeline.connected is not True:
            if self._task.done():
                cause = self._failure or "the feed ended"
                raise ConnectionError(f"the live feed did not connect: {cause}")
            if deadline is not None and asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(
                    f"the live feed did not connect within {timeout:g} s: check the gateway's "
                    "address and credentials, or pass a longer connect_timeout"
                )
            await asyncio.sleep(0.01)

    async def _consume(self) -> None:
        from rtcap.replay.run import run

        pipeline, bus = self.pipeline, self.events
        try:
            await run(self.source, pipeline, bus.dispatch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a broken source is reported, not silently lost
            self._failure = exc
            log.error("frame source failed: %r", exc)
            await bus.emit(
                Event(
                    EventType.ERROR,
                    {"error": exc, "source": repr(self.source)},
                    "TradingSuite",
                    pipeline.now_ns or 0,
                    None,
                )
            )
        finally:
            self._done.set()

    async def wait_until_done(self, timeout: float | None = None) -> None:
        """Wait until a finite source (a list, a replay) has been fully delivered."""
        if self._task is None:
            raise RuntimeError("the suite is not connected: call await suite.connect() first")
        await asyncio.wait_for(self._done.wait(), timeout)

    @property
    def is_connected(self) -> bool:
        """Streaming, and the feed's connections are up: for a live source, once its first
        connection opened and while none is down; for a capture or a list, while it is read
        (its recorded open/close rows say when the recorded feed was down)."""
        streaming = self._task is not None and not self._done.is_set()
        if not streaming:
            return False
        if getattr(self.source, "connects", False):
            return self.pipeline.connected is True
        return self.pipeline.connected is not False

    async def disconnect(self) -> None:
        """Stop reading the source and close it."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._done.set()
        close = getattr(self.source, "close", None)
        if close is not None:
            await close()

    async def __aenter__(self) -> TradingSuite:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.disconnect()

    # --- suite-level events (every instrument) -----------------------------------------

    async def on(self, event_type: EventType | str, handler: Handler) -> None:
        await self.events.on(event_type, handler)

    async def once(self, event_type: EventType | str, handler: Handler) -> None:
        await self.events.once(event_type, handler)

    async def off(
        self, event_type: EventType | str | None = None, handler: Handler | None = None
    ) -> None:
        await self.events.off(event_type, handler)

    async def on_any(self, handler: Handler) -> None:
        await self.events.on_any(handler)

    async def wait_for(self, event_type: EventType | str, timeout: float | None = None) -> Event:
        return await self.events.wait_for(event_type, timeout)

    async def get_stats(self) -> dict[str, Any]:
        """Feed counters and per-instrument statistics."""
        return {
            "connected": self.is_connected,
            "source": getattr(self.source, "describe", lambda: repr(self.source))(),
            "feed": dict(self.pipeline.stats),
            "instruments": {
                symbol: await ctx.data.get_stats() for symbol, ctx in self._contexts.items()
            },
        }

    # --- container ---------------------------------------------------------------------

    def __getitem__(self, symbol: str) -> InstrumentContext:
        try:
            return self._contexts[symbol.upper()]
        except KeyError:
            known = ", ".join(self._contexts)
            raise KeyError(f"{symbol!r} is not in this suite (instruments: {known})") from None

    def __contains__(self, symbol: object) -> bool:
        return isinstance(symbol, str) and symbol.upper() in self._contexts

    def __iter__(self) -> Iterator[str]:
        return iter(self._contexts)

    def __len__(self) -> int:
        return len(self._contexts)

    def keys(self) -> KeysView[str]:
        return self._contexts.keys()

    def values(self) -> ValuesView[InstrumentContext]:
        return self._contexts.values()

    def items(self) -> ItemsView[str, InstrumentContext]:
        return self._contexts.items()

    @property
    def orderbook(self) -> OrderBookView:
        """The order book of a one-instrument suite (``suite["MNQ"].orderbook`` otherwise)."""
        if len(self._contexts) != 1:
            raise AttributeError("this suite has several instruments: use suite[SYMBOL].orderbook")
        return next(iter(self._contexts.values())).orderbook

    @property
    def instruments(self) -> list[str]:
        return list(self._contexts)
