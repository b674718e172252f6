"""Handing freed memory back to the system, so a recorder that runs for weeks stays flat.

The recorder allocates in several threads (the event loop, journal writes, seals, uploads).
glibc's allocator keeps what those threads free in per-thread arenas instead of returning it, so
the resident size creeps up for hours although nothing is held: measured at 2,000 msg/s with a
roll every 30 s, +24 MB in five minutes and still rising, against a flat line with
``malloc_trim`` every 10 s. Elsewhere (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable

TRIM_EVERY_S = 10.0


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def release_free_memory() -> bool:
    """Return the allocator's free pages to the system; whether this platform can."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
