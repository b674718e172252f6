"""Fault injection for the gateway: what to do to every client connection, and when.

Times count from the moment each connection opened, so a reconnecting client meets the same
faults again. Bursts act on the feed itself (every client sees them).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """All ``None`` (the default) means a well-behaved server."""

    drop_after_s: float | None = None  # abort the TCP connection, no close frame
    stall_after_s: float | None = None  # go silent (no data, no pings), socket open…
    stall_for_s: float = 5.0  # …for this long; messages due meanwhile are not sent
    malformed_every: int | None = None  # after every N-th record, one malformed record
    oversized_after_s: float | None = None  # one frame of ``oversized_bytes``
    oversized_bytes: int = 2 * 1024 * 1024
    error_close_after_s: float | None = None  # SignalR Close with an error, then close
    burst_rate: float | None = None  # messages/s during bursts…
    burst_every_s: float = 10.0  # …starting every this many seconds…
    burst_for_s: float = 2.0  # …and lasting this long

    def __post_init__(self) -> None:
        for name in ("drop_after_s", "stall_after_s", "oversized_after_s", "error_close_after_s"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative, got {value}")
        if self.malformed_every is not None and self.malformed_every < 1:
            raise ValueError(f"malformed_every must be at least 1, got {self.malformed_every}")
        if self.burst_rate is not None and self.burst_rate <= 0:
            raise ValueError(f"burst_rate must be positive, got {self.burst_rate}")
        if self.oversized_bytes < 1024:
            raise ValueError("oversized_bytes must be at least 1024")

    @property
    def any(self) -> bool:
        return any(
            value is not None
            for value in (
                self.drop_after_s,
                self.stall_after_s,
                self.malformed_every,
                self.oversized_after_s,
                self.error_close_after_s,
                self.burst_rate,
            )
        )

    def in_burst(self, elapsed_s: float) -> bool:
        """Whether the feed is bursting ``elapsed_s`` after it started."""
        if self.burst_rate is None:
            return False
        return elapsed_s % self.burst_every_s < self.burst_for_s


MALFORMED_RECORD = b'{"type":1,"target":"GatewayQuote","arguments":["CON.F.US.\x1e'
