"""Pacing: when each replayed frame is due, on an absolute schedule against the monotonic clock.

Frame ``i`` is due at ``wall0 + (v_i - v_0) / speed`` where ``v`` is its receive time with idle
stretches longer than ``max_gap`` compressed to ``max_gap``. Every due time is computed from the
same anchor, so lateness never accumulates; frames already due go out together as one batch, and
waiting sleeps until shortly before the due time, then spins, because ``asyncio.sleep`` alone
wakes 1–2 ms late.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

SPIN_NS = 1_500_000  # the last stretch before a due time is spun, not slept
NS = 1_000_000_000
_SPEED = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*x?\s*$", re.IGNORECASE)


def parse_speed(text: str | float | None) -> float | None:
    """``"10x"``, ``"0.5x"``, ``"10"``, ``10.0`` → 10.0; ``"max"``/``None`` → ``None`` (as fast as
    possible). ``ValueError`` says what is accepted."""
    if text is None:
        return None
    if isinstance(text, int | float):
        value = float(text)
    else:
        if text.strip().lower() in ("max", "inf", "unlimited"):
            return None
        match = _SPEED.match(text)
        if not match:
            raise ValueError(f"invalid speed {text!r}: use 1x, 10x, 0.5x, a number, or max")
        value = float(match.group(1))
    if value <= 0:
        raise ValueError(f"speed must be above zero, got {text!r} (use max for no pacing)")
    return value


@dataclass
class PacingStats:
    """How the schedule was kept: lateness of emitted frames, in ns."""

    frames: int = 0
    batches: int = 0
    lateness: list[int] = field(default_factory=list)


class Pacer:
    """Maps receive times to wall deadlines and waits for them."""

    def __init__(
        self,
        speed: float | None,
        max_gap_ns: int | None = None,
        *,
        keep_lateness: bool = False,
        spin: bool = True,
    ) -> None:
        self.speed = speed
        self.max_gap_ns = max_gap_ns
        self.stats = PacingStats()
        self._keep = keep_lateness
        # A source sharing its event loop with others (the simulated feed) sleeps instead.
        self._spin = spin
        self._wall0: int | None = None
        self._virtual0 = 0
        self._last_recv: int | None = None
        self._virtual = 0  # compressed virtual time of the last frame

    def anchor(self, recv_ns: int) -> None:
        """Start the schedule now at ``recv_ns`` (instead of at the first frame's time)."""
        self.virtual(recv_ns)
        self._wall0 = time.monotonic_ns()

    def virtual(self, recv_ns: int) -> int:
        """Schedule time of a frame received at ``recv_ns`` (gaps compressed)."""
        if self._last_recv is None:
            self._last_recv = recv_ns
            self._virtual = recv_ns
            self._virtual0 = recv_ns
            return recv_ns
        step = recv_ns - self._last_recv
        if step > 0:
            if self.max_gap_ns is not None and step > self.max_gap_ns:
                step = self.max_gap_ns
            self._virtual += step
            self._last_recv = recv_ns
        return self._virtual

    def due(self, recv_ns: int) -> int:
        """Monotonic deadline of a frame (the first frame anchors the schedule)."""
        virtual = self.virtual(recv_ns)
        if self._wall0 is None:
            self._wall0 = time.monotonic_ns()
        if self.speed is None:
            return self._wall0
        return self._wall0 + int((virtual - self._virtual0) / self.speed)

    def recv_now(self) -> int | None:
        """The receive time that corresponds to now, for clock frames; ``None`` unpaced.

        Measured back from the last scheduled frame, so with gaps compressed it stays inside
        the compressed stretch: never past the frame that is due next, never before the last
        one emitted."""
        if self._wall0 is None or self.speed is None:
            return None
        virtual_now = self._virtual0 + int((time.monotonic_ns() - self._wall0) * self.speed)
        return min(self._last_recv, virtual_now + (self._last_recv - self._virtual))

    async def wait_until(self, deadline: int) -> None:
        now = time.monotonic_ns()
        if not self._spin:
            if deadline > now:
                await asyncio.sleep((deadline - now) / NS)
            return
        if deadline - now > SPIN_NS:
            await asyncio.sleep((deadline - now - SPIN_NS) / NS)
        while time.monotonic_ns() < deadline:
            pass  # spin the last stretch: sleeping would overshoot

    async def release(
        self,
        items: list,
        times: list[int],
        *,
        on_emit: Callable[[list], None],
        interlude: Callable[[int], AsyncIterator[list]] | None = None,
    ) -> AsyncIterator[list]:
        """``items`` (received at ``times``) in lists, each as soon as it is due.

        Before waiting for a deadline, whatever ``interlude(deadline)`` yields goes out first
        (replay's clock frames); ``on_emit`` sees each list of items, not the interludes."""
        batch: list = []
        deadlines: list[int] = []
        for item, at in zip(items, times, strict=True):
            due = self.due(at)
            if due > time.monotonic_ns():
                if batch:
                    self.emitted(deadlines)
                    on_emit(batch)
                    yield batch
                    batch, deadlines = [], []
                if interlude is not None:
                    async for extra in interlude(due):
                        yield extra
                await self.wait_until(due)
            batch.append(item)
            deadlines.append(due)
        if batch:
            self.emitted(deadlines)
            on_emit(batch)
            yield batch

    def emitted(self, deadlines: list[int]) -> None:
        now = time.monotonic_ns()
        self.stats.frames += len(deadlines)
        self.stats.batches += 1
        if self._keep:
            self.stats.lateness.extend(now - d for d in deadlines)
