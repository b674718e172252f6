"""The seeded simulated market paced in real time: the gateway's default frame source.

Message times are wall-clock times (the simulated market starts now), and messages are released
in batches as their time comes, against the monotonic clock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from rtcap.replay.faults import FaultPlan

from rtcap.models import Frame
from rtcap.simulator import MarketSimulator
from rtcap.timeutil import NS

MS = 1_000_000


class SimulatedFeed:
    """Frames of a :class:`MarketSimulator` as they fall due; bursts follow ``faults``."""

    def __init__(
        self,
        seed: int = 7,
        instruments: list[str] | tuple[str, ...] = ("MNQ", "ES"),
        rate: float = 40.0,
        *,
        faults: FaultPlan | None = None,
        start_ns: int | None = None,
    ) -> None:
        now = time.time_ns() if start_ns is None else start_ns
        self.start_ns = now - now % MS
        self.rate = rate
        self.faults = faults or FaultPlan()
        self.market = MarketSimulator(seed, list(instruments), start_ns=self.start_ns, rate=rate)
        self.seed = seed
        self.sent = 0
        self.closed = False

    @property
    def contracts(self) -> dict[str, str]:
        return self.market.contracts

    async def batches(self) -> AsyncIterator[list[Frame]]:
        started = time.monotonic_ns()
        bursting = False
        batch: list[Frame] = []
        for frame in self.market.frames(max_frames=1 << 62):
            if self.closed:
                return
            due = started + (frame.exch_ns - self.start_ns)
            now = time.monotonic_ns()
            if due > now:
                if batch:
                    self.sent += len(batch)
                    yield batch
                    batch = []
                    now = time.monotonic_ns()
                if due > now:
                    await asyncio.sleep((due - now) / NS)
            batch.append(frame)
            burst = self.faults.in_burst((time.monotonic_ns() - started) / NS)
            if burst != bursting:
                bursting = burst
                self.market.set_rate(self.faults.burst_rate if burst else self.rate)
            if len(batch) >= 1024:
                self.sent += len(batch)
                yield batch
                batch = []

    async def close(self) -> None:
        self.closed = True

    def describe(self) -> str:
        return f"simulated market (seed {self.seed}, {', '.join(self.contracts)})"
