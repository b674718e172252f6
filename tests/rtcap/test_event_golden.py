"""Every event the kernel emits, hashed: the committed digests were taken before any of the
fast paths existed, so a faster kernel must give byte-identical event streams.

Both the compiled fast paths and the pure-Python reference (``kernel_path``) must give them.
Each stream is fed frame by frame, in batches, through ``feed_batch``, and with clock rows
between frames; every way must give the same digest. The real Binance input is always the
fixtures slice, so the digest does not depend on ../shared being present.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest
from helpers import event_signature

from rtcap.events import EventType
from rtcap.models import CLOCK, Frame
from rtcap.pipeline import Pipeline
from rtcap.simulator import MarketSimulator

BINANCE_SLICE = (
    Path(__file__).resolve().parents[2] / "fixtures" / "binance-spot" / "ethusdt_20240808_3min.gz"
)
TIMEFRAMES = ["15sec", "1min", "5min"]


def sim_frames(count: int = 40_000) -> list[Frame]:
    return list(
        MarketSimulator(seed=7, instruments=["MNQ", "ES"], rate=300).frames(max_frames=count)
    )


def binance_frames() -> list[Frame]:
    with gzip.open(BINANCE_SLICE, "rb") as lines:
        return [
            Frame(seq, int(stamp), payload=payload)
            for seq, (stamp, _, payload) in enumerate(
                line.rstrip(b"\n").partition(b" ") for line in lines
            )
        ]


def with_clock(frames: list[Frame], every_ns: int = 250_000_000) -> list[Frame]:
    """Clock rows between frames, as a recorder writes them (they never run ahead)."""
    out: list[Frame] = []
    next_tick = None
    for frame in frames:
        if next_tick is None:
            next_tick = frame.recv_ns + every_ns
        while next_tick < frame.recv_ns:
            out.append(Frame(-1, next_tick, kind=CLOCK))
            next_tick += every_ns
        out.append(frame)
    return out


def digest(pipeline: Pipeline, frames: list[Frame], how: str) -> tuple[str, int]:
    sha = hashlib.sha256()
    count = 0
    if how == "feed":
        batches = [[frame] for frame in frames]
    else:
        batches = [frames[start : start + 777] for start in range(0, len(frames), 777)]
    for batch in batches:
        if how == "feed_batch":
            events = [event for events in pipeline.feed_batch(batch) for event in events]
        else:
            events = pipeline.feed_many(batch)
        for event in events:
            sha.update(event_signature(event).encode() + b"\n")
        count += len(events)
    return sha.hexdigest(), count


def pipelines():
    yield "sim-books", sim_frames, dict(codec="projectx", books=True)
    yield (
        "sim-quotes-flat-receive",
        sim_frames,
        dict(codec="projectx", price_source="trades+quotes", fill_flat=True, time_source="receive"),
    )
    yield "binance-books", binance_frames, dict(codec="binance", books=True, timezone="UTC")
    yield (
        "binance-exchange-current",
        binance_frames,
        dict(codec="binance", time_source="exchange", late_policy="current", timezone="UTC"),
    )


GOLDEN = {
    "sim-books": ("b94520ebb158ec87ccef6bda5531b3a37a5164a7d268618a361c8dfdb5484e13", 93_166),
    "sim-quotes-flat-receive": (
        "0a7852609a70b4a2ecf895ccb9c5ee646655ef42fa7a00caa8a0e752cfba52de",
        99_176,
    ),
    # Binance digests changed once, when volume sums became exact decimal sums (56.318600000000075
    # became 56.3186): every other field of every event is as before.
    "binance-books": ("13be0d57bb699367c3d2ab425f2cf46e857dc7201123278f3edd410c35d8f0b1", 22_121),
    "binance-exchange-current": (
        "b28b5b8e4105ff8fccd91f5f3375bc8ad3ac770a142f33bb5a4914b53a9f6046",
        20_334,
    ),
}


def on_both_paths(cases):
    """Every case on the compiled and the pure path (Binance's codec has no compiled decoder,
    but its prints reach the pipeline's compiled trade fold)."""
    return [
        pytest.param(name, make_frames, options, path, id=f"{path}-{name}")
        for name, make_frames, options in cases
        for path in ("compiled", "pure")
    ]


@pytest.mark.parametrize(
    "name,make_frames,options,kernel_path", on_both_paths(pipelines()), indirect=["kernel_path"]
)
def test_event_stream_matches_the_committed_digest(name, make_frames, options, kernel_path):
    frames = make_frames()
    expected = GOLDEN[name]
    for how, feed_frames in (
        ("feed", frames),
        ("batches", frames),
        ("batches", with_clock(frames)),
        ("feed_batch", frames),
        ("feed_batch", with_clock(frames)),
    ):
        got = digest(Pipeline(None, TIMEFRAMES, **options), feed_frames, how)
        assert got == expected, (name, how, len(feed_frames))


SUBSET_CASES = [
    *pipelines(),
    # auto time, no books: the bar-only fast paths (a message's prints in one fold)
    ("sim-plain", sim_frames, {"codec": "projectx"}),
    ("binance-plain", binance_frames, {"codec": "binance", "timezone": "UTC"}),
]


@pytest.mark.parametrize(
    "name,make_frames,options,kernel_path", on_both_paths(SUBSET_CASES), indirect=["kernel_path"]
)
def test_a_subset_of_wanted_events_is_the_full_stream_filtered(
    name, make_frames, options, kernel_path
):
    """With only bar events wanted the kernel takes its fast paths; they must emit exactly the
    bar events of the full stream (which takes the per-print path), in the same order."""
    wanted = {EventType.NEW_BAR, EventType.BAR_CLOSED, EventType.GAP}
    frames = make_frames()
    full = Pipeline(None, TIMEFRAMES, **options).feed_many(frames)
    pipeline = Pipeline(None, TIMEFRAMES, wanted=wanted, **options)
    subset = [event for events in pipeline.feed_batch(frames) for event in events]
    expected = [event_signature(e) for e in full if e.type in wanted]
    assert [event_signature(e) for e in subset] == expected
    assert len(expected) > 20


@pytest.mark.parametrize("kernel_path", ["compiled", "pure"], indirect=True)
def test_feed_batch_counts_are_current_at_every_yield_and_when_abandoned(kernel_path):
    """Handlers run at feed_batch's yields: the counts they see are those feed gives."""
    frames = with_clock(sim_frames())
    reference = Pipeline(None, TIMEFRAMES, codec="projectx")
    seen = {}
    for index, frame in enumerate(frames):
        if reference.feed(frame):
            seen[index] = dict(reference.stats)
    pipeline = Pipeline(None, TIMEFRAMES, codec="projectx")
    yields = pipeline.feed_batch(frames)
    at = []
    for events, (index, stats) in zip(yields, seen.items(), strict=False):
        assert events and pipeline.stats == stats, index
        at.append(index)
    assert len(at) == len(seen) > 20
    assert pipeline.stats == reference.stats
    # a batch given up half way counts exactly the frames it fed
    pipeline = Pipeline(None, TIMEFRAMES, codec="projectx")
    batch = pipeline.feed_batch(frames)
    next(batch)
    next(batch)
    batch.close()
    assert pipeline.stats == seen[list(seen)[1]]
