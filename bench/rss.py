"""Resident memory of a process, sampled from /proc, and the growth figures the memory
benchmarks print (``record_memory.py``, ``replay_memory.py``)."""

from __future__ import annotations

import statistics


def rss_mb(pid: int) -> float:
    """VmRSS of ``pid`` in MB (0 once the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def trend(samples: list[tuple[float, float]]) -> str:
    """Growth after warm-up, robust to the saw-tooth of segment seals: the median RSS of the
    first and last tenth of ``(seconds, MB)`` samples, and the least-squares slope."""
    if len(samples) < 10:
        return "  (too few samples after warm-up for a trend)"
    tenth = len(samples) // 10
    first = statistics.median(rss for _, rss in samples[:tenth])
    last = statistics.median(rss for _, rss in samples[-tenth:])
    times = [at for at, _ in samples]
    slope = statistics.linear_regression(times, [rss for _, rss in samples]).slope * 60
    return (
        f"  median RSS, first tenth {first:.1f} MB -> last tenth {last:.1f} MB "
        f"({last / first:.2f}x); slope {slope:+.2f} MB/min"
    )
