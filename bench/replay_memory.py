"""Memory of ``rtcap replay --speed max`` over a long capture: the RSS curve must stay flat.

Writes a capture of ``--frames`` simulated ProjectX frames (two instruments: trades, quotes and
depth, as the recorder stores them), then replays it at max speed in its own process with three
timeframes, sampling the replayer's RSS from /proc. Row groups are read and replayed one at a
time, so memory must not grow with the length of the capture.

Figures are ratios within the run: peak RSS over the RSS after warm-up (flat is about 1.0x), and
the RSS at the end over the RSS after warm-up.

    python bench/replay_memory.py [--frames 5000000] [--rate 2000] [--warmup 10]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rss import rss_mb, trend

from rtcap.simulator import MarketSimulator
from rtcap.storage.writer import CaptureWriter


def build(path: Path, frames: int, rate: float) -> None:
    writer = CaptureWriter(path, source={"kind": "bench"}, fsync="never")
    writer.open()
    market = MarketSimulator(17, ["MNQ", "ES"], rate=rate)
    for frame in market.frames(max_frames=frames):
        writer.append(frame)
        if writer.pending >= 8192:
            writer.flush()
    writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=5_000_000)
    parser.add_argument("--rate", type=float, default=2000, help="simulated messages/s")
    parser.add_argument("--warmup", type=float, default=10, help="seconds before the baseline")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rtcap-replay-memory-"))
    try:
        capture = work / "cap"
        started = time.monotonic()
        build(capture, args.frames, args.rate)
        built_s = time.monotonic() - started
        size_mb = sum(p.stat().st_size for p in capture.rglob("*.parquet")) / 1e6
        command = [
            sys.executable,
            "-m",
            "rtcap",
            "replay",
            str(capture),
            "--speed",
            "max",
            "--timeframes",
            "1min,5min,15min",
        ]
        started = time.monotonic()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        samples: list[tuple[float, float]] = []
        while process.poll() is None:
            samples.append((time.monotonic() - started, rss_mb(process.pid)))
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        err = process.stderr.read().decode()
        samples = [(at, rss) for at, rss in samples if rss > 1]
        print(
            f"replay --speed max of {args.frames:,} frames ({size_mb:.0f} MB of segments, "
            f"built in {built_s:.0f} s): {elapsed:.1f} s, {args.frames / elapsed:,.0f} frames/s"
        )
        for at, rss in samples[:: max(1, len(samples) // 12)]:
            print(f"  t={at:6.1f} s  RSS {rss:7.1f} MB")
        warm = [rss for at, rss in samples if at >= args.warmup] or [samples[-1][1]]
        print(
            f"  RSS after warm-up {warm[0]:.1f} MB, peak {max(warm):.1f} MB, end {warm[-1]:.1f} MB"
        )
        print(
            f"  peak / after warm-up: {max(warm) / warm[0]:.2f}x   end / after warm-up: "
            f"{warm[-1] / warm[0]:.2f}x   exit {process.returncode}"
        )
        print(trend([(at, rss) for at, rss in samples if at >= args.warmup]))
        if process.returncode:
            print(err, file=sys.stderr)
            raise SystemExit(1)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
