"""The seeded simulated market paced in real time: the gateway's default frame source.

Message times are wall-clock times (the simulated market starts now), and messages are released
in batches as their time comes, by replay's own :class:`~rtcap.replay.pacing.Pacer` at 1x.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from rtcap.gateway.faults import FaultPlan
from rtcap.models import Frame
from rtcap.replay.pacing import Pacer
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
        pacer = Pacer(1.0, spin=False)
        pacer.anchor(self.start_ns)
        started = time.monotonic_ns()
        bursting = False
        batch: list[Frame] = []
        for frame in self.market.frames(max_frames=1 << 62):
            if self.closed:
                return
            due = pacer.due(frame.exch_ns)
            if due > time.monotonic_ns():
                if batch:
                    self.sent += len(batch)
                    yield batch
                    batch = []
                await pacer.wait_until(due)
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
