"""Capture storage: ingest throughput and size on disk.

1. Frames/s from memory into the journal and sealed Parquet (what ``rtcap record`` does per
   frame, minus the network), against writing the same payloads as plain newline-delimited
   lines through a zstd-3 stream in the same run. The writer's sealer thread seals the blocks
   as they are journaled, as in a live recorder; the time is split into journaling (appends
   and flushes, with the sealer running beside them: the pace a recorder keeps) and what is
   left to seal at close (the last row group, up to 100,000 frames, whatever the length of the
   recording: a million frames keep it from swamping the ratio, as it would not in a live
   recorder, whose segments' last row groups are sealed while the next one records). The
   cost of zstd-6 over the bare payload bytes is printed for scale: Parquet compresses a
   column on one thread, so no ingest that seals at zstd-6 can take less.
2. Bytes per frame of the real Binance capture (``../shared/data``) sealed by rtcap, against
   gzip-6 and zstd-3 files of the same ``<ns> <frame>`` lines written in the same run.

    python bench/storage.py [--frames 1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import gc
import gzip
import shutil
import tempfile
import time
from pathlib import Path

import zstandard

from rtcap.models import Frame
from rtcap.simulator import MarketSimulator
from rtcap.storage.importer import import_lines
from rtcap.storage.integrity import open_capture
from rtcap.storage.segments import SEAL_LEVEL
from rtcap.storage.writer import CaptureWriter

BINANCE = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "binance-spot" / "ethusdt_20240808.gz"
)


def ingest(frames: list[Frame], directory: Path, seal_level: int) -> tuple[float, float]:
    """Seconds spent journaling (appends and flushes, while the sealer thread seals what is
    journaled) and then finishing the seal at close."""
    writer = CaptureWriter(
        directory, source={"kind": "bench"}, fsync="never", seal_level=seal_level
    )
    writer.open()
    started = time.perf_counter()
    append = writer.append
    for index, frame in enumerate(frames, start=1):
        append(
            Frame(
                0,
                frame.recv_ns,
                frame.mono_ns,
                0,
                "market",
                "text",
                frame.payload,
                frame.target,
                frame.symbol,
                frame.exch_ns,
            )
        )
        if index % 4096 == 0:  # a 100 ms flush at ~40k frames/s
            writer.flush()
    journaled = time.perf_counter()
    writer.close()
    return journaled - started, time.perf_counter() - journaled


def zstd_lines(frames: list[Frame], path: Path) -> float:
    started = time.perf_counter()
    with open(path, "wb") as raw, zstandard.ZstdCompressor(level=3).stream_writer(raw) as out:
        for frame in frames:
            out.write(b"%d %s\n" % (frame.recv_ns, frame.payload))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3, help="best of this many runs")
    args = parser.parse_args()
    frames = list(MarketSimulator(5, ["MNQ", "ES"], rate=400).frames(max_frames=args.frames))
    work = Path(tempfile.mkdtemp(prefix="rtcap-bench-"))
    try:
        levels = (1, 3, 6)
        compressor = zstandard.ZstdCompressor(level=6)
        payloads = b"".join(frame.payload for frame in frames)
        base = alone = float("inf")
        best: dict[int, tuple[float, float]] = {}
        # the paths take turns, run after run, so a burst of load on a shared machine slows
        # the baseline and rtcap alike and their ratio holds
        for run in range(args.runs):
            gc.collect()
            base = min(base, zstd_lines(frames, work / f"lines{run}.zst"))
            for level in levels:
                gc.collect()
                times = ingest(frames, work / f"cap{level}-{run}", level)
                if level not in best or sum(times) < sum(best[level]):
                    best[level] = times
            started = time.perf_counter()
            compressor.compress(payloads)
            alone = min(alone, time.perf_counter() - started)
        mean = sum(len(f.payload) for f in frames) / len(frames)
        print(f"ingest of {len(frames):,} simulated ProjectX frames ({mean:.0f} B payload each):")
        print(f"  baseline zstd-3 line file : {len(frames) / base:10,.0f} frames/s")
        for level in levels:
            journal, seal = best[level]
            seconds = journal + seal
            print(
                f"  journal + Parquet zstd-{level} : {len(frames) / seconds:10,.0f} frames/s "
                f"({seconds / base:.2f}x baseline time: journaling {journal / base:.2f}x, "
                f"then sealing the last row group {seal / base:.2f}x)"
            )
        print(f"  (zstd-6 of the payload bytes alone: {alone / base:.2f}x baseline time)")
        if not BINANCE.exists():
            print(f"(real Binance capture not found at {BINANCE}: size comparison skipped)")
            return
        lines = gzip.decompress(BINANCE.read_bytes()).splitlines(keepends=True)
        count = len(lines)
        payload = sum(len(line.split(b" ", 1)[1]) - 1 for line in lines)
        with gzip.open(work / "lines.gz", "wb", compresslevel=6) as out:
            out.writelines(lines)
        compressor = zstandard.ZstdCompressor(level=3)
        with open(work / "lines3.zst", "wb") as raw, compressor.stream_writer(raw) as out:
            for line in lines:
                out.write(line)
        import_lines(BINANCE, work / "eth", "hftbacktest")
        sealed = sum(f["bytes"] for s in open_capture(work / "eth")["segments"] for f in s["files"])
        print(
            f"size of the real Binance capture ({count:,} frames, {payload / 1e6:.1f} MB payload):"
        )
        for name, size in (
            ("gzip-6 lines", (work / "lines.gz").stat().st_size),
            ("zstd-3 lines", (work / "lines3.zst").stat().st_size),
            (f"rtcap Parquet (zstd-{SEAL_LEVEL})", sealed),
        ):
            print(
                f"  {name:24s}: {size / count:6.1f} bytes/frame, {payload / size:5.2f}x compression"
            )
        gz = (work / "lines.gz").stat().st_size
        verdict = "smaller" if sealed < gz else "LARGER"
        print(f"rtcap vs gzip: {sealed / gz:.2f} of the size ({verdict})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
