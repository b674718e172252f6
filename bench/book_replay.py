"""What order books cost a replay: max-speed replay of a depth-heavy capture through the pipeline
with ``features=["orderbook"]`` (books kept, with and without ``ORDERBOOK_UPDATE`` subscribers)
against the same replay without books, all measured in this run.

Captures: the real Binance capture (imported; depth diffs plus bookTicker and trades) and its
depth-only frames, and the simulated market with depth. "Neither subscribed" is also compared
with a pipeline whose depth handler has no book branch at all, to show that the feature costs
nothing when unused.

    python bench/book_replay.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from click.testing import CliRunner

from rtcap.cli import main as cli
from rtcap.events import EventType
from rtcap.models import DepthUpdate, Frame
from rtcap.pipeline import Pipeline
from rtcap.replay.source import Replay
from rtcap.simulator import MarketSimulator

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = [
    ROOT.parent / "shared" / "data" / "binance-spot" / "ethusdt_20240808.gz",
    ROOT / "fixtures" / "binance-spot" / "ethusdt_20240808_3min.gz",
]
sys.path.insert(0, str(ROOT / "tests"))
from helpers import write_capture  # noqa: E402


class NoBookBranch(Pipeline):
    """The depth handler as it is without order books: sequence checks and raw depth events."""

    def _on_depth(self, update: DepthUpdate) -> None:
        state = self._state(update.symbol)
        if state is None:
            self.stats["unrouted"] += 1
            return
        state.depth_updates += 1
        state.last_event_ns = update.recv_ns
        if update.last_id is not None:
            gap = self.sequences.check_depth(update)
            if gap is not None:
                self._sequence_gap(state, gap, update.recv_ns, self._out)


VARIANTS = {
    "no book branch (reference)": (NoBookBranch, False, {EventType.NEW_BAR}),
    "books off, neither subscribed": (Pipeline, False, {EventType.NEW_BAR}),
    "books on, no subscribers": (Pipeline, True, {EventType.NEW_BAR}),
    "books on, ORDERBOOK_UPDATE": (Pipeline, True, {EventType.NEW_BAR, EventType.ORDERBOOK_UPDATE}),
}


async def replay(path: Path, kind, books: bool, wanted) -> tuple[float, int]:
    pipeline = kind(None, ["1min", "5min"], codec="auto", books=books, wanted=wanted)
    started = time.perf_counter()
    events = 0
    async for batch in Replay(path).batches():
        for frame in batch:
            events += len(pipeline.feed(frame))
    return time.perf_counter() - started, events


def kernel(frames: list[Frame], kind, books: bool, wanted) -> tuple[float, int]:
    pipeline = kind(None, ["1min", "5min"], codec="auto", books=books, wanted=wanted)
    started = time.perf_counter()
    events = 0
    for frame in frames:
        events += len(pipeline.feed(frame))
    return time.perf_counter() - started, events


def measure(label: str, path: Path, repeat: int) -> None:
    frames = [f for batch in _batches(path) for f in batch]
    print(f"\n{label}: {len(frames):,} frames")
    replay_times = {}
    for name, run in (("replay", None), ("kernel only", frames)):
        times = {}
        for variant, (kind, books, wanted) in VARIANTS.items():
            best = min(
                (
                    asyncio.run(replay(path, kind, books, wanted))
                    if run is None
                    else kernel(run, kind, books, wanted)
                )[0]
                for _ in range(repeat)
            )
            times[variant] = best
        if run is None:
            replay_times = times
        base = times["books off, neither subscribed"]
        for variant, seconds in times.items():
            print(
                f"  {name:<12} {variant:<30} {len(frames) / seconds:>11,.0f} frames/s  "
                f"{seconds / base:5.2f}x"
            )
    base = replay_times["books off, neither subscribed"]
    print(
        f"  replay with features=['orderbook'] vs without: "
        f"{replay_times['books on, no subscribers'] / base:.2f}x, with an ORDERBOOK_UPDATE "
        f"handler {replay_times['books on, ORDERBOOK_UPDATE'] / base:.2f}x (target <= 1.5x); "
        f"unused feature: {base / replay_times['no book branch (reference)']:.2f}x"
    )


def _batches(path: Path):
    async def collect():
        return [batch async for batch in Replay(path).batches()]

    return asyncio.run(collect())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    source = next(p for p in CAPTURES if p.exists())
    with tempfile.TemporaryDirectory() as folder:
        real = Path(folder) / "binance"
        result = CliRunner().invoke(
            cli, ["import", "--format", "hftbacktest", str(source), str(real)]
        )
        assert result.exit_code == 0, result.output
        frames = [f for batch in _batches(real) for f in batch]
        depth_only = Path(folder) / "depth"
        keep = [
            f for f in frames if b"depth" in f.payload[:40] or b"lastUpdateId" in f.payload[:40]
        ]
        write_capture(depth_only, keep).close()
        sim = Path(folder) / "sim"
        write_capture(
            sim, MarketSimulator(7, ("MNQ", "ES"), rate=400).frames(duration_s=300)
        ).close()
        measure(f"real Binance capture {source.name}", real, args.repeat)
        measure("its depth frames only (snapshot + diffs)", depth_only, args.repeat)
        measure("simulated market, 300 s at 400 msg/s (20% depth)", sim, args.repeat)


if __name__ == "__main__":
    main()
