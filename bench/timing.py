"""Timing helper shared by the throughput benches: the best time of each of several functions,
the functions taking turns run after run, so a burst of load on a shared machine slows the
baseline and the measured path alike and their ratio holds."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable


def best_of_interleaved(runs: int, *fns: Callable[[], object]) -> list[float]:
    """The best wall time, in seconds, of each of ``fns`` over ``runs`` turns."""
    best = [float("inf")] * len(fns)
    for _ in range(runs):
        for index, fn in enumerate(fns):
            gc.collect()
            started = time.perf_counter()
            fn()
            best[index] = min(best[index], time.perf_counter() - started)
    return best
