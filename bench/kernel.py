"""Kernel throughput: ProjectX trade frames through decode + 3 timeframes + the event bus.

The pipeline runs the way a TradingSuite runs it (an in-memory source delivering batches, one
NEW_BAR handler on the bus). The baseline is bare ``orjson.loads`` over the same payloads, timed
in the same process, so the ratio holds on a busy machine where absolute numbers wander. Each
figure is the best of several runs, the three taking turns.

    python bench/kernel.py [--frames 200000] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio

import orjson
from timing import best_of_interleaved

from rtcap import EventType, ListSource, TradingSuite
from rtcap.codecs import ProjectXCodec
from rtcap.simulator import MarketSimulator

TIMEFRAMES = ["1min", "5min", "15min"]


def trade_frames(count: int):
    market = MarketSimulator(seed=11, instruments=["MNQ"], rate=400.0)
    frames = []
    for frame in market.frames(max_frames=count * 4):
        if frame.target == "GatewayTrade":
            frames.append(frame)
            if len(frames) == count:
                break
    return frames


def baseline(payloads: list[bytes]) -> None:
    loads = orjson.loads
    for payload in payloads:
        loads(payload)


class _DiscardingSink:
    """Takes what the codec reports and keeps nothing: isolates the cost of decoding."""

    def trade(self, *fields) -> None:
        pass

    def trades(self, *fields) -> None:
        pass


def decode_only(frames) -> None:
    decode, sink = ProjectXCodec().decode_into, _DiscardingSink()
    for frame in frames:
        decode(frame, sink)


async def through_suite(frames) -> int:
    bars = 0

    def on_bar(event) -> None:
        nonlocal bars
        bars += 1

    suite = await TradingSuite.create(
        "MNQ",
        TIMEFRAMES,
        source=ListSource(frames, yield_every=4096),
        codec="projectx",
        auto_connect=False,
    )
    await suite.on(EventType.NEW_BAR, on_bar)
    await suite.connect()
    await suite.wait_until_done()
    await suite.disconnect()
    return bars


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    frames = trade_frames(args.frames)
    payloads = [frame.payload[:-1] for frame in frames]  # JSON without the 0x1E separator
    prints = sum(payload.count(b'"price"') for payload in payloads)
    bar_count = asyncio.run(through_suite(frames))

    base, decode, full = best_of_interleaved(
        args.runs,
        lambda: baseline(payloads),
        lambda: decode_only(frames),
        lambda: asyncio.run(through_suite(frames)),
    )
    n = len(frames)
    print(
        f"frames: {n:,} ProjectX GatewayTrade frames, {prints / n:.2f} prints/frame, "
        f"{len(TIMEFRAMES)} timeframes, 1 NEW_BAR handler ({bar_count} bars)"
    )
    for name, seconds in (
        ("baseline orjson.loads", base),
        ("codec decode only", decode),
        ("kernel end to end", full),
    ):
        print(
            f"{name:22s}: {n / seconds:10,.0f} frames/s {prints / seconds:10,.0f} prints/s "
            f"({seconds / n * 1e6:.2f} us/frame, {seconds / base:.2f}x baseline)"
        )
    target = 300_000
    verdict = "meets" if n / full >= target else "below"
    print(f"target >= {target:,} frames/s end to end on one core: {verdict}")


if __name__ == "__main__":
    main()
