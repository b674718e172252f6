"""When a connected stream's quiet becomes a silence worth a ``gap`` row: judged by its own
recent rhythm, between a floor and the fixed ``--silence-after``.

One fixed threshold cannot fit every stream: 5 s of nothing on a feed that carried 1,500
messages a second is thousands of lost messages, while on a quiet overnight market or a sparse
account hub it is an ordinary pause. So each stream keeps the gaps between its last
:data:`WINDOW` messages, and a quiet stretch is a silence once it lasts longer than
:data:`FACTOR` times the longest of them, but never less than the floor (:data:`FLOOR_S`, or
the feed's own minimum, so jitter on a busy stream is never a silence) and never more than
``--silence-after`` (the upper bound: whatever the rhythm, that much quiet is always a row).
Until :data:`WARM_UP` gaps are known, the upper bound alone applies.

Pure: it is told arrival times, it never reads a clock.
"""

from __future__ import annotations

from collections import deque

WINDOW = 512  # recent inter-arrival gaps kept per stream
FACTOR = 4.0  # a silence is this many times longer than the longest recent gap
FLOOR_S = 0.5  # never shorter than this
SPARSE_FLOOR_S = 30.0  # the floor of feeds of sparse events (the ProjectX user hub)
WARM_UP = 32  # gaps needed before the rhythm is trusted
REFRESH = 64  # the threshold is recomputed every this many messages


class Rhythm:
    """One stream's recent inter-arrival gaps and the silence threshold they give."""

    def __init__(self, upper_ns: int, floor_ns: int = int(FLOOR_S * 1e9)) -> None:
        self.upper_ns = upper_ns
        self.floor_ns = min(floor_ns, upper_ns)
        self._gaps: deque[int] = deque(maxlen=WINDOW)
        self._last_ns: int | None = None
        self._since_refresh = 0
        self._threshold_ns = upper_ns

    def arrived(self, at_ns: int, *, after_silence: bool = False) -> None:
        """A message arrived at ``at_ns``; the quiet before it was judged already (a silence
        is not part of the rhythm it broke, so it never raises the threshold)."""
        if self._last_ns is not None and at_ns >= self._last_ns and not after_silence:
            self._gaps.append(at_ns - self._last_ns)
            self._since_refresh += 1
            if self._since_refresh >= REFRESH or len(self._gaps) == WARM_UP:
                self._refresh()
        self._last_ns = at_ns

    def restart(self) -> None:
        """A new connection: the quiet across a reconnect is not part of the rhythm."""
        self._last_ns = None

    def threshold_ns(self) -> int:
        """How long a quiet stretch must last to be a silence, now."""
        return self._threshold_ns

    def is_silence(self, quiet_ns: int) -> bool:
        return quiet_ns > self._threshold_ns

    def _refresh(self) -> None:
        self._since_refresh = 0
        if len(self._gaps) < WARM_UP:
            self._threshold_ns = self.upper_ns
            return
        judged = int(FACTOR * max(self._gaps))
        self._threshold_ns = max(self.floor_ns, min(self.upper_ns, judged))
