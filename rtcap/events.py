"""The event bus: typed events, handlers run one after another in registration order.

Suite-level and instrument-level handlers live on one bus; an instrument handler sees events of
its instrument plus the feed-wide ones (connection events carry no instrument). Running handlers
sequentially, never concurrently, is what makes a replay reproduce a live session call for call.
A handler that raises is reported as an ``ERROR`` event and the others still run.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

log = logging.getLogger("rtcap.events")


class EventType(StrEnum):
    """Event names; values are the lower-case strings the ProjectX SDK uses."""

    NEW_BAR = "new_bar"
    BAR_CLOSED = "bar_closed"
    DATA_UPDATE = "data_update"
    QUOTE_UPDATE = "quote_update"
    TRADE_TICK = "trade_tick"
    MARKET_DEPTH_UPDATE = "market_depth_update"
    ORDERBOOK_UPDATE = "orderbook_update"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    RECONNECTING = "reconnecting"
    GAP = "gap"
    CONTRACT_ROLLED = "contract_rolled"  # a symbol's front contract changed (its data says)
    ERROR = "error"
    WARNING = "warning"


# Every member under a module-level name, for the kernel's hot paths: on CPython 3.11 reading a
# member off the Enum class is a descriptor call (~100 ns), and the pipeline asks whether an
# event type is wanted for every print.
EV_NEW_BAR = EventType.NEW_BAR
EV_BAR_CLOSED = EventType.BAR_CLOSED
EV_DATA_UPDATE = EventType.DATA_UPDATE
EV_QUOTE_UPDATE = EventType.QUOTE_UPDATE
EV_TRADE_TICK = EventType.TRADE_TICK
EV_MARKET_DEPTH_UPDATE = EventType.MARKET_DEPTH_UPDATE
EV_ORDERBOOK_UPDATE = EventType.ORDERBOOK_UPDATE
EV_CONNECTED = EventType.CONNECTED
EV_DISCONNECTED = EventType.DISCONNECTED
EV_RECONNECTING = EventType.RECONNECTING
EV_GAP = EventType.GAP
EV_CONTRACT_ROLLED = EventType.CONTRACT_ROLLED
EV_ERROR = EventType.ERROR
EV_WARNING = EventType.WARNING


@dataclass(slots=True)
class Event:
    """One bus event. ``timestamp`` is the event time in epoch ns (never the wall clock)."""

    type: EventType
    data: Any
    source: str | None = None
    timestamp: int = 0
    instrument: str | None = None


Handler = Callable[[Event], Any]
ANY = None  # subscription key meaning "every event type"


@dataclass(slots=True, eq=False)
class _Subscription:
    event_type: EventType | None
    handler: Handler
    instrument: str | None
    once: bool = False
    order: int = field(default=0)


def as_event_type(value: EventType | str) -> EventType:
    """Accept an ``EventType`` or its value/name; ``ValueError`` lists the known names."""
    if isinstance(value, EventType):
        return value
    try:
        return EventType(value.lower())
    except ValueError:
        try:
            return EventType[value.upper()]
        except KeyError:
            names = ", ".join(member.name for member in EventType)
            raise ValueError(f"unknown event type {value!r}: use one of {names}") from None


class EventBus:
    """Ordered, isolated dispatch of :class:`Event` objects to sync or async handlers."""

    def __init__(self) -> None:
        self._subscriptions: list[_Subscription] = []
        self._routes: dict[EventType, list[_Subscription]] = {}
        self._next_order = 0
        # Types with at least one subscriber. The pipeline holds this very set and skips building
        # payloads nobody listens to; it is updated in place.
        self.wanted: set[EventType] = set()

    # --- subscribing -------------------------------------------------------------------

    async def on(
        self, event_type: EventType | str, handler: Handler, *, instrument: str | None = None
    ) -> None:
        """Call ``handler(event)`` for every event of ``event_type``."""
        self._add(as_event_type(event_type), handler, instrument, once=False)

    async def once(
        self, event_type: EventType | str, handler: Handler, *, instrument: str | None = None
    ) -> None:
        """Call ``handler`` for the next event of ``event_type`` only."""
        self._add(as_event_type(event_type), handler, instrument, once=True)

    async def on_any(self, handler: Handler, *, instrument: str | None = None) -> None:
        """Call ``handler`` for every event of every type."""
        self._add(ANY, handler, instrument, once=False)

    async def off(
        self,
        event_type: EventType | str | None = None,
        handler: Handler | None = None,
        *,
        instrument: str | None = None,
    ) -> None:
        """Remove subscriptions matching every argument given (all of them when none is)."""
        wanted_type = None if event_type is None else as_event_type(event_type)
        self._subscriptions = [
            sub
            for sub in self._subscriptions
            if not (
                (wanted_type is None or sub.event_type == wanted_type)
                and (handler is None or sub.handler == handler)
                and (instrument is None or sub.instrument == instrument)
            )
        ]
        self._rebuild()

    async def wait_for(
        self,
        event_type: EventType | str,
        timeout: float | None = None,
        *,
        instrument: str | None = None,
    ) -> Event:
        """The next event of ``event_type``; ``TimeoutError`` after ``timeout`` seconds."""
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()

        def resolve(event: Event) -> None:
            if not future.done():
                future.set_result(event)

        sub = self._add(as_event_type(event_type), resolve, instrument, once=True)
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            if sub in self._subscriptions:
                self._subscriptions.remove(sub)
                self._rebuild()

    def handler_count(self, event_type: EventType | None = None) -> int:
        """How many subscriptions exist (for one type, or in all)."""
        if event_type is None:
            return len(self._subscriptions)
        return len(self._routes.get(event_type, ()))

    # --- emitting ----------------------------------------------------------------------

    async def emit(
        self,
        event: Event | EventType | str,
        data: Any = None,
        source: str | None = None,
        timestamp: int = 0,
        instrument: str | None = None,
    ) -> None:
        """Deliver one event (an :class:`Event`, or the fields to build one)."""
        if not isinstance(event, Event):
            event = Event(as_event_type(event), data, source, timestamp, instrument)
        route = self._routes.get(event.type)
        if route:
            await self._deliver(event, route)

    async def dispatch(self, events: Iterable[Event]) -> None:
        """Deliver events in order (the pipeline's output for one frame or clock advance)."""
        routes = self._routes
        for event in events:
            route = routes.get(event.type)
            if route:
                await self._deliver(event, route)

    async def _deliver(self, event: Event, route: list[_Subscription]) -> None:
        fired_once = False
        for sub in route:
            if sub.instrument is not None and event.instrument not in (None, sub.instrument):
                continue
            if sub.once:
                if sub not in self._subscriptions:
                    continue  # already consumed by an earlier event in this very call
                self._subscriptions.remove(sub)
                fired_once = True
            try:
                result = sub.handler(event)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:  # isolation: one bad handler must not stop the others
                await self._report(event, sub.handler, exc)
        if fired_once:
            self._rebuild()

    async def _report(self, event: Event, handler: Handler, exc: Exception) -> None:
        name = getattr(handler, "__qualname__", repr(handler))
        log.error("handler %s failed on %s: %r", name, event.type.value, exc)
        if event.type is EventType.ERROR:
            return  # never recurse on failing error handlers
        await self.emit(
            Event(
                EventType.ERROR,
                {"original_event": event, "handler": name, "error": exc},
                "EventBus",
                event.timestamp,
                event.instrument,
            )
        )

    # --- bookkeeping -------------------------------------------------------------------

    def _add(
        self, event_type: EventType | None, handler: Handler, instrument: str | None, once: bool
    ) -> _Subscription:
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {handler!r}")
        sub = _Subscription(
            event_type, handler, instrument.upper() if instrument else None, once, self._next_order
        )
        self._next_order += 1
        self._subscriptions.append(sub)
        self._rebuild()
        return sub

    def _rebuild(self) -> None:
        self._routes = {
            event_type: [sub for sub in self._subscriptions if sub.event_type in (event_type, ANY)]
            for event_type in EventType
        }
        self._routes = {key: value for key, value in self._routes.items() if value}
        self.wanted.clear()
        self.wanted.update(self._routes)
