"""Replay: throughput through the pipeline, raw passthrough, and pacing accuracy.

1. Max speed through decode + 3 timeframes + the bus with one handler (a TradingSuite on a
   Replay source), against bare ``orjson.loads`` of the same payloads in the same run; then
   the whole simulated market (two instruments' trades, quotes and depth) the way
   ``rtcap replay`` runs it.
2. Raw passthrough (payloads out of the capture, undecoded), against reading the same
   payloads back from a zstd-3 line file.
3. Pacing at 1x and 10x: lateness of each frame against its scheduled time (p50/p99/max) and
   drift (mean lateness of the last tenth minus the first), against a naive pacer that sleeps
   the gap before every frame.

    python bench/replay.py [--frames 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import orjson
import zstandard
from timing import best_of_interleaved

from rtcap import EventType, TradingSuite
from rtcap.events import EventBus
from rtcap.models import Frame
from rtcap.pipeline import Pipeline
from rtcap.replay.source import Replay
from rtcap.simulator import MarketSimulator
from rtcap.storage.integrity import read_frames
from rtcap.storage.writer import CaptureWriter


def build(path: Path, frames: list[Frame]) -> None:
    writer = CaptureWriter(path, source={"kind": "bench"}, fsync="never")
    writer.open()
    for frame in frames:
        writer.append(
            Frame(
                0,
                frame.recv_ns,
                0,
                0,
                "market",
                "text",
                frame.payload,
                frame.target,
                frame.symbol,
                frame.exch_ns,
            )
        )
        if writer.pending >= 4096:
            writer.flush()
    writer.close()


async def through_suite(path: Path) -> int:
    bars = 0

    def on_bar(event) -> None:
        nonlocal bars
        bars += 1

    timeframes = ["1min", "5min", "15min"]
    suite = await TradingSuite.create(
        "MNQ", timeframes, source=Replay(path), codec="projectx", auto_connect=False, initial_days=0
    )
    await suite.on(EventType.NEW_BAR, on_bar)
    await suite.connect()
    await suite.wait_until_done()
    return bars


async def through_replay_command(path: Path) -> int:
    """What ``rtcap replay --speed max`` does: every frame of the capture through the pipeline
    in batches, the events of each frame dispatched on the bus to one BAR_CLOSED handler."""
    bars = 0

    def on_bar(event) -> None:
        nonlocal bars
        bars += 1

    bus = EventBus()
    await bus.on(EventType.BAR_CLOSED, on_bar)
    pipeline = Pipeline(None, ["1min", "5min", "15min"], codec="auto", wanted=bus.wanted)
    async for batch in Replay(path).batches():
        for events in pipeline.feed_batch(batch):
            await bus.dispatch(events)
    return bars


async def raw(path: Path) -> int:
    count = 0
    async for batch in Replay(path).raw_batches():
        count += len(batch)
    return count


def parse_all(payloads: list[bytes]) -> None:
    loads = orjson.loads
    for payload in payloads:  # results dropped at once, as a handler would
        loads(payload)


def read_lines(path: Path) -> int:
    with open(path, "rb") as handle:
        data = zstandard.ZstdDecompressor().stream_reader(handle).read()
    return len([line.split(b" ", 1)[1] for line in data.splitlines()])


async def paced(path: Path, speed: str) -> list[int]:
    source = Replay(path, speed, keep_lateness=True, clock_interval_s=0)
    async for _ in source.batches():
        pass
    return source.pacer.stats.lateness


async def naive(frames: list[Frame]) -> list[int]:
    """Sleep the gap before each frame: what per-frame ``asyncio.sleep`` pacing does."""
    lateness = []
    started = time.monotonic_ns()
    first = frames[0].recv_ns
    previous = first
    for frame in frames:
        await asyncio.sleep((frame.recv_ns - previous) / 1e9)
        previous = frame.recv_ns
        lateness.append(time.monotonic_ns() - (started + frame.recv_ns - first))
    return lateness


def describe(name: str, lateness: list[int]) -> str:
    ordered = sorted(lateness)
    tenth = max(1, len(lateness) // 10)
    drift = statistics.mean(lateness[-tenth:]) - statistics.mean(lateness[:tenth])
    return (
        f"  {name:28s}: p50 {ordered[len(ordered) // 2] / 1e6:6.3f} ms  "
        f"p99 {ordered[int(len(ordered) * 0.99)] / 1e6:6.3f} ms  "
        f"max {ordered[-1] / 1e6:7.3f} ms  drift {drift / 1e6:+8.3f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rtcap-replay-bench-"))
    try:
        market = MarketSimulator(11, ["MNQ"], rate=400.0)
        trades = [
            f for f in market.frames(max_frames=args.frames * 4) if f.target == "GatewayTrade"
        ]
        trades = trades[: args.frames]
        build(work / "trades", trades)
        payloads = [f.payload[:-1] for f in trades]
        n = len(trades)
        base, full = best_of_interleaved(
            args.runs,
            lambda: parse_all(payloads),
            lambda: asyncio.run(through_suite(work / "trades")),
        )
        print(f"replay at max speed, {n:,} ProjectX trade frames, 3 timeframes, 1 handler:")
        print(f"  baseline orjson.loads       : {n / base:12,.0f} frames/s")
        print(
            f"  replay through the pipeline : {n / full:12,.0f} frames/s "
            f"({full / base:.2f}x baseline time; target >= 300,000)"
        )
        market = list(MarketSimulator(17, ["MNQ", "ES"], rate=2000).frames(max_frames=args.frames))
        build(work / "market", market)
        records = [f.payload[:-1] for f in market if f.target]
        counts = {t: sum(f.target == t for f in market) for t in ("GatewayTrade", "GatewayQuote")}
        base, full = best_of_interleaved(
            args.runs,
            lambda: parse_all(records),
            lambda: asyncio.run(through_replay_command(work / "market")),
        )
        n = len(market)
        print(
            f"replay at max speed, {n:,} frames of the simulated market (MNQ and ES: "
            f"{counts['GatewayTrade']:,} trade, {counts['GatewayQuote']:,} quote, "
            f"{n - sum(counts.values()):,} depth and other), as `rtcap replay` runs it:"
        )
        print(f"  baseline orjson.loads       : {n / base:12,.0f} frames/s")
        print(
            f"  replay through the pipeline : {n / full:12,.0f} frames/s "
            f"({full / base:.2f}x baseline time)"
        )
        n = len(trades)
        lines = work / "lines.zst"
        with (
            open(lines, "wb") as raw_file,
            zstandard.ZstdCompressor(level=3).stream_writer(raw_file) as out,
        ):
            for frame in read_frames(work / "trades"):
                out.write(b"%d %s\n" % (frame.recv_ns, frame.payload))
        line_time, raw_time = best_of_interleaved(
            args.runs, lambda: read_lines(lines), lambda: asyncio.run(raw(work / "trades"))
        )
        print("raw passthrough (payloads out, undecoded):")
        print(f"  baseline zstd-3 line file   : {n / line_time:12,.0f} frames/s")
        print(
            f"  replay raw_batches          : {n / raw_time:12,.0f} frames/s "
            f"({raw_time / line_time:.2f}x baseline time; target >= 1,500,000)"
        )
        sim = list(MarketSimulator(13, ["MNQ", "ES"], rate=200.0).frames(duration_s=30))
        build(work / "paced", sim)
        one = [f for f in sim if f.recv_ns - sim[0].recv_ns < 5_000_000_000]
        build(work / "paced1x", one)
        print(f"pacing ({len(one):,} frames over 5 s at 1x; {len(sim):,} over 30 s at 10x):")
        print(describe("naive per-frame sleep, 1x", asyncio.run(naive(one))))
        print(describe("rtcap schedule, 1x", asyncio.run(paced(work / "paced1x", "1x"))))
        print(describe("rtcap schedule, 10x", asyncio.run(paced(work / "paced", "10x"))))
        print("  (target: p99 under 1 ms, no drift)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
