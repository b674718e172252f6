"""Clocks: the only way kernel code learns that time has passed without a frame.

The pipeline asks a :class:`Clock` for a timer at its next deadline (a bar boundary). Replay uses
:class:`VirtualClock`, advanced explicitly; live shells implement the same protocol on the event
loop and deliver the callback through the same ordered path as frames.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Protocol


class TimerHandle(Protocol):
    """A scheduled callback that can be cancelled before it fires."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Current time and timers, in epoch ns."""

    def now_ns(self) -> int: ...

    def call_at(self, when_ns: int, callback: Callable[[], None]) -> TimerHandle: ...


class _VirtualTimer:
    __slots__ = ("callback", "cancelled", "order", "when_ns")

    def __init__(self, when_ns: int, order: int, callback: Callable[[], None]) -> None:
        self.when_ns = when_ns
        self.order = order
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __lt__(self, other: _VirtualTimer) -> bool:
        return (self.when_ns, self.order) < (other.when_ns, other.order)


class VirtualClock:
    """A clock that moves only when told to; timers fire in (deadline, scheduling) order."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns
        self._timers: list[_VirtualTimer] = []
        self._scheduled = 0

    def now_ns(self) -> int:
        return self._now

    def call_at(self, when_ns: int, callback: Callable[[], None]) -> _VirtualTimer:
        timer = _VirtualTimer(when_ns, self._scheduled, callback)
        self._scheduled += 1
        heapq.heappush(self._timers, timer)
        return timer

    def next_deadline(self) -> int | None:
        """When the earliest live timer is due, if any."""
        while self._timers and self._timers[0].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0].when_ns if self._timers else None

    def advance_to(self, ns: int) -> int:
        """Move to ``ns`` (never backwards), firing due timers; returns how many fired.

        The clock reads each timer's own deadline while its callback runs, and callbacks may
        schedule further timers, which fire in the same call when due.
        """
        fired = 0
        while self._timers and self._timers[0].when_ns <= ns:
            timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._now = max(self._now, timer.when_ns)
            timer.callback()
            fired += 1
        self._now = max(self._now, ns)
        return fired
