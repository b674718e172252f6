"""The kernel pipeline: frames and clock advances in, bus events out. Sans-I/O.

``Pipeline.feed(frame)`` decodes a frame, folds its trades (and optionally quotes) into bars of
every timeframe, checks exchange sequence ids and returns the events to deliver, in order.
``Pipeline.advance_to(ns)`` is the clock: it closes bars whose end (plus a grace period when
bucketing by exchange time) has passed. The pipeline's notion of *now* is the latest receive time
or clock advance it was given; it never reads the wall clock. Because a frame first advances time
to its own receive time, clock advances that never run ahead of the next frame change nothing:
the same frames give the same events however timers are interleaved and however frames are
batched.

With ``books=True`` the pipeline also keeps an L2 book per instrument (:mod:`rtcap.book`) and,
after each frame that changed one, emits one ``ORDERBOOK_UPDATE`` per changed instrument; a break
in the exchange's update ids is a ``GAP`` of kind ``book``, refused levels are ``ERROR`` events.
Without it, depth costs what it cost before: decoding and ``MARKET_DEPTH_UPDATE`` if wanted.

Lifecycle rows (frame kinds written by the recorder) become connection events:
``open`` → CONNECTED, ``close`` → DISCONNECTED, ``gap`` → GAP, ``error`` → ERROR (or RECONNECTING
when its JSON payload says ``"event": "reconnecting"``). ``sent`` rows are ignored and ``clock``
rows only advance time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from rtcap.accel import speedups
from rtcap.bars import BarBuilder, Print
from rtcap.book import Book, BookChange, book_for
from rtcap.codecs import AutoCodec, Codec, DecodeError, DecodeSink, Notice, codec_for
from rtcap.decimals import add, places_of
from rtcap.events import (
    EV_CONNECTED,
    EV_CONTRACT_ROLLED,
    EV_DATA_UPDATE,
    EV_DISCONNECTED,
    EV_ERROR,
    EV_GAP,
    EV_MARKET_DEPTH_UPDATE,
    EV_ORDERBOOK_UPDATE,
    EV_QUOTE_UPDATE,
    EV_RECONNECTING,
    EV_TRADE_TICK,
    EV_WARNING,
    Event,
    EventType,
)
from rtcap.instruments import ContractNames, session_of
from rtcap.lifecycle import (
    ErrorRow,
    SequenceGapRow,
    contract_roll_of,
    parse_detail,
    payload_detail,
)
from rtcap.models import (
    BINARY,
    CLOCK,
    CLOSE,
    DATA_KINDS,
    ERROR,
    GAP,
    OPEN,
    TEXT,
    Bar,
    DepthUpdate,
    Frame,
    Quote,
)
from rtcap.sequence import SequenceChecker, SequenceGap
from rtcap.timeframes import Grid, parse_timeframe
from rtcap.timeutil import NS, ns_to_datetime, zone

PRICE_SOURCES = ("trades", "trades+quotes")
TIME_SOURCES = ("auto", "exchange", "receive")
SOURCE = "Pipeline"
NEVER = 1 << 62
DEFAULT_EXCHANGE_GRACE_NS = NS
RECENT_TRADES = 10_000  # prints kept per instrument for order-book analytics
# The compiled stand-in for the trade handlers (None: the pure-Python handlers take every call)
trade_fold = speedups.TradeFold if speedups is not None else None


class _Sink:
    """The pipeline's bound handlers under the names codecs call (no extra call layer)."""

    __slots__ = ("depth", "error", "notice", "quote", "trade", "trades")
    trade: Callable[..., None]
    trades: Callable[..., None]
    quote: Callable[[Quote], None]
    depth: Callable[[DepthUpdate], None]
    error: Callable[[DecodeError], None]
    notice: Callable[[Notice], None]


# A print noted with the touch it traded against: (time ns, price, volume, side, bid, ask).
RecentTrade = tuple[int, float, int | float, str | None, float | None, float | None]


@dataclass(slots=True)
class InstrumentState:
    """Everything the pipeline keeps about one instrument."""

    symbol: str
    tz: ZoneInfo
    builder: BarBuilder
    trades: int = 0
    quotes: int = 0
    depth_updates: int = 0
    volume: int | float = 0
    missing_exchange_time: int = 0
    last_trade_price: float | None = None
    last_quote: Quote | None = None
    last_event_ns: int | None = None
    sequence_gaps: int = 0
    # order book (``books=True``): the book, counters, and (when it keeps levels) the latest
    # prints with the touch they traded against: (time ns, price, volume, side, bid, ask)
    book: Book | None = None
    book_updates: int = 0
    book_gaps: int = 0
    book_errors: int = 0
    book_ns: int | None = None
    recent_trades: deque[RecentTrade] | None = field(default=None, repr=False)


def add_volume(state: InstrumentState, volume: int | float) -> int | float:
    """The instrument's running volume plus ``volume``, as an exact decimal sum."""
    total = state.volume
    if type(total) is int and type(volume) is int:
        return total + volume
    return add(total, volume, max(state.builder.volume_places, places_of(volume)))


class Pipeline:
    """Codec → bar builder → events, for a set of instruments and timeframes."""

    def __init__(
        self,
        instruments: Iterable[str] | str | None = None,
        timeframes: Iterable[str] | str = ("1min",),
        *,
        codec: str | Codec = "auto",
        timezone: str | None = None,
        session_start: str | None = None,
        price_source: str = "trades",
        time_source: str = "auto",
        fill_flat: bool = False,
        late_policy: str = "drop",
        max_bars: int = 5000,
        close_grace_ns: int | None = None,
        wanted: Collection[EventType] | None = None,
        books: bool = False,
        book_levels: bool = True,
        contracts: Mapping[str, str] | None = None,
    ) -> None:
        """``contracts``: contract id → trader symbol as the gateway itself named them (a
        capture records it); contracts not in it are named by :mod:`rtcap.instruments`."""
        if price_source not in PRICE_SOURCES:
            raise ValueError(f"price_source must be one of {PRICE_SOURCES}, got {price_source!r}")
        if time_source not in TIME_SOURCES:
            raise ValueError(f"time_source must be one of {TIME_SOURCES}, got {time_source!r}")
        if max_bars < 1:
            raise ValueError(f"max_bars must be at least 1, got {max_bars}")
        if isinstance(timeframes, str):
            timeframes = [timeframes]
        self.timeframes = [parse_timeframe(tf) for tf in timeframes]
        if not self.timeframes:
            raise ValueError("at least one timeframe is needed, e.g. '1min'")
        if isinstance(instruments, str):
            instruments = [instruments]
        names = self._names = ContractNames(contracts)
        self.codec = codec_for(codec, names) if isinstance(codec, str) else codec
        self.timezone = timezone
        self.session_start = session_start
        self.price_source = price_source
        self.quotes_move_bars = price_source == "trades+quotes"
        self.time_source = time_source
        self._auto_time = time_source == "auto"
        self.fill_flat = fill_flat
        self.late_policy = late_policy
        self.max_bars = max_bars
        if close_grace_ns is None:
            close_grace_ns = 0 if time_source == "receive" else DEFAULT_EXCHANGE_GRACE_NS
        self.close_grace_ns = close_grace_ns
        self.wanted: Collection[EventType] = set(EventType) if wanted is None else wanted
        self.books = books
        # False: books follow the exchange's update ids (breaks become GAPs) but keep no levels
        self.book_levels = book_levels
        self._touched: dict[str, list[Any]] = {}  # books changed by the frame being fed
        # stream → its codec's decode_into
        self._decoders: dict[str, Callable[[Frame, DecodeSink], None]] = {}
        self.only: frozenset[str] | None = (
            None if instruments is None else frozenset(s.upper() for s in instruments)
        )
        self.instruments: dict[str, InstrumentState] = {}
        for symbol in sorted(self.only or ()):
            self._create(symbol)
        self.sequences = SequenceChecker()
        self.now_ns: int | None = None
        self._deadline = NEVER
        self.stats: dict[str, int] = {
            "frames": 0,
            "data_frames": 0,
            "decode_errors": 0,
            "notices": 0,
            "unrouted": 0,
            "clock_advances": 0,
            "connections": 0,
            "disconnects": 0,
        }
        self.stream_connected: dict[str, bool] = {}
        self._data_streams: set[str] = set()
        self._out: list[Event] = []  # events of the frame being fed
        self._sink = _Sink()
        self._sink.trade = self._on_trade
        self._sink.trades = self._on_trades
        if trade_fold is not None and self._auto_time:
            # Prints inside every forming bar (most of them) fold in C; whatever could cause
            # an event, or is not of the plain types, reaches the handlers above unchanged.
            fold = partial(
                trade_fold,
                instruments=self.instruments,
                wanted=self.wanted,
                refused=(EV_TRADE_TICK, EV_DATA_UPDATE),
                state_cls=InstrumentState,
                builder_cls=BarBuilder,
            )
            self._sink.trade = fold(self._on_trade, many=False)
            self._sink.trades = fold(self._on_trades, many=True)
        self._sink.quote = self._on_quote
        self._sink.depth = self._on_depth
        self._sink.error = self._on_error
        self._sink.notice = self._on_notice

    # --- inputs ------------------------------------------------------------------------

    def feed(self, frame: Frame) -> list[Event]:
        """Process one frame; returns the events it caused, in delivery order."""
        out: list[Event] = []
        stats = self.stats
        stats["frames"] += 1
        now = self.now_ns
        if now is None or frame.recv_ns > now:
            self.now_ns = now = frame.recv_ns
        if now >= self._deadline:
            self._advance(now, out)
        kind = frame.kind
        if kind in (TEXT, BINARY):
            stats["data_frames"] += 1
            self._out = out
            decode = self._decoders.get(frame.stream) or self._decoder(frame.stream)
            decode(frame, self._sink)
            if self._touched:
                self._book_events(out)
        elif kind == CLOCK:
            stats["clock_advances"] += 1
        elif kind in (OPEN, CLOSE, GAP, ERROR):
            self._lifecycle(frame, out)
        return out

    def feed_batch(self, frames: Iterable[Frame]) -> Iterator[list[Event]]:
        """Process frames in order, yielding the events of every frame that caused any (the
        lists :meth:`feed` would return, skipping empty ones).

        Callers may run handlers at each yield: the pipeline's state is then exactly what it
        is after that frame. Data frames that arrive before the next bar deadline go straight
        to their decoder, with the lookups hoisted out of the loop.
        """
        feed = self.feed
        stats = self.stats
        decoders = self._decoders
        sink = self._sink
        out: list[Event] = []  # a frame's events; a new list only once one was yielded
        self._out = out
        fast = 0  # frames taken by the fast path, not yet counted in stats
        # the last fast frame's stream and its (remembered) decoder
        stream: str | None = None
        decode: Callable[[Frame, DecodeSink], None] | None = None
        try:
            for frame in frames:
                recv_ns = frame.recv_ns
                now = self.now_ns
                if (
                    frame.kind in DATA_KINDS
                    and now is not None
                    and (recv_ns if recv_ns > now else now) < self._deadline
                ):
                    if recv_ns > now:
                        self.now_ns = recv_ns
                    fast += 1
                    if decode is None or frame.stream != stream:
                        stream = frame.stream
                        decode = decoders.get(stream)
                        if decode is None:  # an automatic codec may not have chosen yet
                            decode, stream = self._decoder(stream), None
                    decode(frame, sink)
                    if self._touched:
                        self._book_events(out)
                    if not out:
                        continue
                    events, out = out, []  # the yielded list is the caller's
                else:
                    events = feed(frame)  # which points self._out at its own list
                self._out = out
                if events:
                    stats["frames"] += fast  # handlers run at the yield: counts are current
                    stats["data_frames"] += fast
                    fast = 0
                    yield events
        finally:
            stats["frames"] += fast
            stats["data_frames"] += fast

    def _decoder(self, stream: str) -> Callable[[Frame, DecodeSink], None]:
        """The decode function for a stream's data frames (an automatic codec's choice once it
        has made one), remembered per stream."""
        self._data_streams.add(stream)
        codec = self.codec
        if isinstance(codec, AutoCodec):
            chosen = codec.chosen(stream)
            if chosen is None:
                return codec.decode_into  # undecided: ask again on the next frame
            codec = chosen
        decode = self._decoders[stream] = codec.decode_into
        return decode

    def feed_many(self, frames: Iterable[Frame]) -> list[Event]:
        """Process frames in order; the concatenation of their :meth:`feed` results."""
        out: list[Event] = []
        for frame in frames:
            out.extend(self.feed(frame))
        return out

    def advance_to(self, ns: int) -> list[Event]:
        """The clock reached ``ns`` with no frame: close what has ended. Never goes backwards."""
        out: list[Event] = []
        if self.now_ns is None or ns > self.now_ns:
            self.now_ns = ns
        if self.now_ns >= self._deadline:
            self._advance(self.now_ns, out)
        return out

    def next_deadline(self) -> int | None:
        """The clock time at which :meth:`advance_to` would next produce something."""
        return None if self._deadline == NEVER else self._deadline

    # --- history -----------------------------------------------------------------------

    def seed_history(
        self, symbol: str, timeframe: str, bars: Iterable[Bar], as_of_ns: int | None = None
    ) -> int:
        """Load bars fetched from a history service, oldest first; returns how many.

        Bars are closed, except one that ends after ``as_of_ns`` (when given): a service's
        partial bar, which becomes the forming bar that live prints continue, as the SDK's
        history does (its first live print then opens no new bar)."""
        state = self._state(symbol)
        if state is None:
            raise ValueError(f"{symbol!r} is not one of this pipeline's instruments")
        label = parse_timeframe(timeframe).label
        series = state.builder.series.get(label)
        if series is None:
            raise ValueError(f"timeframe {label!r} is not configured for {symbol!r}")
        count = 0
        for bar in bars:
            if series.closed_until is not None and bar.start_ns < series.closed_until:
                continue
            if as_of_ns is not None and bar.end_ns > as_of_ns:
                state.builder.resume(label, bar)
                count += 1
                break  # nothing comes after the forming bar
            series.closed.append(bar)
            series.closed_until = bar.end_ns
            series.last_close = bar.close
            count += 1
        self._refresh_deadline()
        return count

    # --- queries -----------------------------------------------------------------------

    def instrument(self, symbol: str) -> InstrumentState:
        """State of one instrument; ``KeyError`` names the ones that exist."""
        state = self.instruments.get(symbol.upper())
        if state is None:
            known = ", ".join(self.instruments) or "none yet"
            raise KeyError(f"no instrument {symbol!r} in this pipeline (known: {known})")
        return state

    @property
    def connected(self) -> bool | None:
        """``True``/``False`` from lifecycle rows of data streams; ``None`` if none seen."""
        states = [self.stream_connected[s] for s in self.stream_connected]
        return all(states) if states else None

    # --- internals ---------------------------------------------------------------------

    def _create(self, symbol: str) -> InstrumentState:
        tz_name, session = session_of(symbol)
        tz = zone(self.timezone or tz_name)
        grids = [Grid(tf, tz, self.session_start or session) for tf in self.timeframes]
        builder = BarBuilder(
            symbol,
            grids,
            max_bars=self.max_bars,
            fill_flat=self.fill_flat,
            late_policy=self.late_policy,
            grace_ns=self.close_grace_ns,
            tz=tz,
        )
        state = InstrumentState(symbol, tz, builder)
        if self.books and self.book_levels:  # prints against the touch need a book's levels
            state.recent_trades = deque(maxlen=RECENT_TRADES)
        self.instruments[symbol] = state
        return state

    def _state(self, symbol: str) -> InstrumentState | None:
        state = self.instruments.get(symbol)
        if state is None:
            symbol = symbol.upper()
            state = self.instruments.get(symbol)
            if state is None and self.only is None and symbol:
                state = self._create(symbol)
        return state

    def _bucket_time(self, state: InstrumentState, exch_ns: int | None, recv_ns: int) -> int | None:
        source = self.time_source
        if source == "auto":
            return recv_ns if exch_ns is None else exch_ns
        if source == "receive":
            return recv_ns
        if exch_ns is None:
            state.missing_exchange_time += 1
        return exch_ns

    def _on_error(self, error: DecodeError) -> None:
        self.stats["decode_errors"] += 1
        if EV_ERROR in self.wanted:
            data = {"reason": error.reason, "seq": error.seq, "raw": error.excerpt()}
            self._out.append(Event(EV_ERROR, data, "codec", error.recv_ns, None))

    def _on_notice(self, notice: Notice) -> None:
        self.stats["notices"] += 1
        kind = EV_ERROR if notice.level == "error" else EV_WARNING
        if kind in self.wanted:
            data = {"reason": notice.reason, "seq": notice.seq, **notice.detail}
            self._out.append(Event(kind, data, "codec", notice.recv_ns, None))

    def _on_trade(
        self,
        symbol: str,
        price: float,
        volume: float,
        side: str | None,
        exch_ns: int | None,
        recv_ns: int,
        seq: int,
        trade_id: int | None = None,
        aggregated: bool = False,
    ) -> None:
        state = self.instruments.get(symbol) or self._state(symbol)
        if state is None:
            self.stats["unrouted"] += 1
            return
        out = self._out
        state.trades += 1
        state.volume = add_volume(state, volume)
        state.last_trade_price = price
        state.last_event_ns = recv_ns
        if trade_id is not None:
            gap = self.sequences.check_trade(state.symbol, trade_id, aggregated)
            if gap is not None:
                self._sequence_gap(state, gap, recv_ns, out)
        t: int | None
        if self._auto_time:
            t = recv_ns if exch_ns is None else exch_ns
        else:
            t = self._bucket_time(state, exch_ns, recv_ns)
        wanted = self.wanted
        if state.recent_trades is not None:
            self._note_trade(state, recv_ns if t is None else t, price, volume, side)
        if EV_TRADE_TICK in wanted:
            event_ns = recv_ns if t is None else t
            data = {
                "symbol": state.symbol,
                "price": price,
                "volume": volume,
                "side": side,
                "timestamp": ns_to_datetime(event_ns, state.tz),
            }
            out.append(Event(EV_TRADE_TICK, data, SOURCE, event_ns, state.symbol))
        if t is not None:
            if state.builder.add(t, price, volume, True, wanted, out):
                self._refresh_deadline()
            if EV_DATA_UPDATE in wanted:
                self._data_update(state, t, price, volume, out)

    def _on_trades(self, symbol: str, prints: list[Print], recv_ns: int, seq: int) -> None:
        """Several prints of one message: one bar-builder call when only bars are wanted
        (the common case), else :meth:`_on_trade` per print. Both give the same events."""
        state = self.instruments.get(symbol) or self._state(symbol)
        wanted = self.wanted
        if (
            state is None
            or not self._auto_time
            or state.recent_trades is not None
            or EV_TRADE_TICK in wanted
            or EV_DATA_UPDATE in wanted
        ):
            trade = self._on_trade
            for price, volume, side, exch_ns in prints:
                trade(symbol, price, volume, side, exch_ns, recv_ns, seq)
            return
        for item in prints:
            state.volume = add_volume(state, item[1])
        state.trades += len(prints)
        state.last_trade_price = prints[-1][0]
        state.last_event_ns = recv_ns
        if state.builder.add_trades(prints, recv_ns, wanted, self._out):
            self._refresh_deadline()

    def _on_quote(self, quote: Quote) -> None:
        state = self._state(quote.symbol)
        if state is None:
            self.stats["unrouted"] += 1
            return
        out = self._out
        state.quotes += 1
        state.last_quote = quote
        state.last_event_ns = quote.recv_ns
        t = self._bucket_time(state, quote.exch_ns, quote.recv_ns)
        event_ns = quote.recv_ns if t is None else t
        last = quote.last if quote.last is not None else state.last_trade_price
        if EV_QUOTE_UPDATE in self.wanted:
            data = {
                "symbol": state.symbol,
                "bid": quote.bid,
                "ask": quote.ask,
                "last": last,
                "volume": quote.volume,
                "timestamp": ns_to_datetime(event_ns, state.tz),
            }
            out.append(Event(EV_QUOTE_UPDATE, data, SOURCE, event_ns, state.symbol))
        if self.quotes_move_bars and t is not None:
            price = quote.last
            if price is None and quote.bid is not None and quote.ask is not None:
                price = (quote.bid + quote.ask) / 2
            if price is None:
                price = quote.bid if quote.bid is not None else quote.ask
            if price is not None:
                if state.builder.add(t, price, 0, False, self.wanted, out):
                    self._refresh_deadline()
                if EV_DATA_UPDATE in self.wanted:
                    self._data_update(state, t, price, 0, out)

    def _on_depth(self, update: DepthUpdate) -> None:
        state = self._state(update.symbol)
        if state is None:
            self.stats["unrouted"] += 1
            return
        out = self._out
        state.depth_updates += 1
        state.last_event_ns = update.recv_ns
        if update.last_id is not None:
            gap = self.sequences.check_depth(update)
            if gap is not None:
                self._sequence_gap(state, gap, update.recv_ns, out)
        if self.books:
            self._apply_book(state, update, out)
        if EV_MARKET_DEPTH_UPDATE in self.wanted:
            at = update.event_ns
            data = {
                "symbol": state.symbol,
                "levels": [
                    {"price": lv.price, "volume": lv.volume, "side": lv.side, "type": lv.type}
                    for lv in update.levels
                ],
                "snapshot": update.snapshot,
                "timestamp": ns_to_datetime(at, state.tz),
            }
            out.append(Event(EV_MARKET_DEPTH_UPDATE, data, SOURCE, at, state.symbol))

    def _apply_book(self, state: InstrumentState, update: DepthUpdate, out: list[Event]) -> None:
        book = state.book
        if book is None:
            book = state.book = book_for(state.symbol, update, levels=self.book_levels)
        at = update.event_ns
        wanted = self.wanted
        announce = EV_ORDERBOOK_UPDATE in wanted
        for change in book.apply(update, announce):
            if change.gap is not None:
                state.book_gaps += 1
                if EV_GAP in wanted:
                    out.append(Event(EV_GAP, change.gap, "OrderBook", at, state.symbol))
            if change.rejected:
                state.book_errors += change.rejected
                if EV_ERROR in wanted:
                    data = {
                        "reason": "depth levels refused (negative size, non-finite price or "
                        "unknown DOM type)",
                        "symbol": state.symbol,
                        "rejected": change.rejected,
                        "seq": update.seq,
                    }
                    out.append(Event(EV_ERROR, data, "OrderBook", at, state.symbol))
            if change.applied or change.gap is not None:
                state.book_updates += change.applied
                state.book_ns = at
                if announce:
                    self._touch(state, change, update)

    def _touch(self, state: InstrumentState, change: BookChange, update: DepthUpdate) -> None:
        pending = self._touched.get(state.symbol)
        if pending is None:
            self._touched[state.symbol] = [state, change.changed or [], change.update_id, update]
        else:
            pending[1].extend(change.changed or ())
            pending[2] = change.update_id
            pending[3] = update

    def _book_events(self, out: list[Event]) -> None:
        """One ``ORDERBOOK_UPDATE`` per instrument whose book the frame changed."""
        for state, changes, update_id, update in self._touched.values():
            book = state.book
            levels = book.book
            bid, ask = levels.best_bid(), levels.best_ask()
            at = state.book_ns
            data = {
                "symbol": state.symbol,
                "timestamp": ns_to_datetime(at, state.tz),
                "best_bid": bid[0] if bid else None,
                "best_bid_size": bid[1] if bid else None,
                "best_ask": ask[0] if ask else None,
                "best_ask_size": ask[1] if ask else None,
                "spread": ask[0] - bid[0] if bid and ask else None,
                "changes": changes,
                "update_id": update_id,
                "exchange_ns": update.exch_ns,
                "valid": book.valid,
                "crossed": levels.crossed,
            }
            out.append(Event(EV_ORDERBOOK_UPDATE, data, "OrderBook", at, state.symbol))
        self._touched.clear()

    @staticmethod
    def _note_trade(
        state: InstrumentState, t: int, price: float, volume: float, side: str | None
    ) -> None:
        levels = state.book.book if state.book is not None else None
        bid = levels.best_bid() if levels is not None else None
        ask = levels.best_ask() if levels is not None else None
        assert state.recent_trades is not None  # the caller checked
        state.recent_trades.append(
            (t, price, volume, side, bid[0] if bid else None, ask[0] if ask else None)
        )

    def _data_update(
        self, state: InstrumentState, t: int, price: float, volume: float, out: list[Event]
    ) -> None:
        data = {"timestamp": ns_to_datetime(t, state.tz), "price": price, "volume": volume}
        out.append(Event(EV_DATA_UPDATE, data, SOURCE, t, state.symbol))

    def _sequence_gap(
        self, state: InstrumentState, gap: SequenceGap, at_ns: int, out: list[Event]
    ) -> None:
        state.sequence_gaps += 1
        if EV_GAP in self.wanted:
            out.append(Event(EV_GAP, gap.as_dict(), "SequenceChecker", at_ns, state.symbol))

    def _advance(self, now: int, out: list[Event]) -> None:
        # Step through deadlines in time order, so one big jump emits exactly what many small
        # clock advances would (bars of every instrument closing at 10:01 before any at 10:05).
        self._refresh_deadline()
        while self._deadline <= now:
            step = self._deadline
            for state in self.instruments.values():
                state.builder.advance(step, self.wanted, out)
            self._refresh_deadline()

    def _refresh_deadline(self) -> None:
        deadlines = [
            d for d in (s.builder.deadline() for s in self.instruments.values()) if d is not None
        ]
        self._deadline = min(deadlines) if deadlines else NEVER

    def _lifecycle(self, frame: Frame, out: list[Event]) -> None:
        payload = payload_detail(frame.payload)
        row = parse_detail(frame.kind, payload)
        detail = {"stream": frame.stream, "conn": frame.conn, **payload}
        kind = frame.kind
        carries_data = frame.stream in self._data_streams or not self._data_streams
        if kind == OPEN:
            event_type = EV_CONNECTED
            detail["connected"] = True  # what SDK handlers read: event.data.get("connected")
            self.stats["connections"] += 1
            self.stream_connected[frame.stream] = True
            if carries_data:
                for state in self.instruments.values():
                    state.builder.mark_connected(frame.recv_ns)
        elif kind == CLOSE:
            event_type = EV_DISCONNECTED
            detail["connected"] = False
            self.stats["disconnects"] += 1
            self.stream_connected[frame.stream] = False
            if carries_data:
                for state in self.instruments.values():
                    state.builder.mark_disconnected(frame.recv_ns)
        elif kind == GAP:
            if isinstance(row, SequenceGapRow):
                return  # re-derived from the data by the sequence checker
            event_type = EV_GAP
            detail.setdefault("kind", "connection")
        elif isinstance(row, ErrorRow) and row.event == "reconnecting":
            event_type = EV_RECONNECTING
        elif (roll := contract_roll_of(row)) is not None:
            symbol, old, new = roll
            self._names.roll(symbol, old, new)
            if EV_CONTRACT_ROLLED in self.wanted:
                out.append(Event(EV_CONTRACT_ROLLED, detail, "recorder", frame.recv_ns, symbol))
            return
        else:
            event_type = EV_ERROR
        if event_type in self.wanted:
            out.append(Event(event_type, detail, "connection", frame.recv_ns, None))


def sequence_gap_row(event: Event, frame: Frame) -> Frame | None:
    """A ``gap`` row recording an exchange sequence jump the pipeline found in ``frame``
    (recorders and importers write these down; replays re-derive and ignore them)."""
    if event.type is not EV_GAP or frame.kind == GAP:
        return None
    row = parse_detail(GAP, event.data)
    if not isinstance(row, SequenceGapRow):
        return None
    return row.to_frame(frame.recv_ns, frame.mono_ns, frame.conn, frame.stream)
