"""While the journal's disk is full: hold rows in memory up to a bound, retry every flush, and
count what could not be held, so the tape says exactly what it lacks.

A full disk is often brief (a log rotated, a download finished, someone deleted a file); ending
the recording then would lose everything after it. So the recorder pauses journaling instead:
new rows wait in memory (up to ``--hold-mb``) behind the block that failed, every flush tries
again, and when a write succeeds everything held goes to disk in order. Rows arriving once the
bound is reached are not kept, until space returns: they are one stretch, and an ``unrecorded``
gap row written on resumption says when it began and ended, how many rows and bytes it lost.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from rtcap.lifecycle import UnrecordedGap
from rtcap.models import Frame

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
HOLD_MB = 256


def is_disk_full(exc: OSError) -> bool:
    return exc.errno in DISK_FULL_ERRNOS


@dataclass
class JournalPause:
    """One stretch of time the journal could not be written."""

    since_ns: int
    limit_bytes: int
    held_bytes: int = 0
    lost_rows: int = 0
    lost_bytes: int = 0
    first_lost_ns: int | None = None
    last_lost_ns: int | None = None

    def admit(self, frame: Frame) -> bool:
        """Whether ``frame`` can wait in memory; else it is counted as lost. Once one row is
        lost every later one is too, until space returns, so the loss is one stretch."""
        size = len(frame.payload)
        if not self.lost_rows and self.held_bytes + size <= self.limit_bytes:
            self.held_bytes += size
            return True
        self.lost_rows += 1
        self.lost_bytes += size
        if self.first_lost_ns is None:
            self.first_lost_ns = frame.recv_ns
        self.last_lost_ns = frame.recv_ns
        return False

    def loss(self) -> UnrecordedGap | None:
        """The gap row for what was lost (``None`` if nothing was)."""
        if not self.lost_rows or self.first_lost_ns is None or self.last_lost_ns is None:
            return None
        return UnrecordedGap(
            self.first_lost_ns,
            self.last_lost_ns,
            round((self.last_lost_ns - self.first_lost_ns) / 1e9, 6),
            self.lost_rows,
            self.lost_bytes,
        )
