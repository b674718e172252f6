"""Determinism: the same frames give the same events however they are batched and whatever
clock advances are interleaved (as long as the clock never runs ahead of the next frame)."""

import itertools

from helpers import event_signatures
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtcap.codecs import projectx
from rtcap.models import Frame
from rtcap.pipeline import Pipeline

START = 1_756_821_600_000_000_000  # 2025-09-02T14:00:00Z
MS = 1_000_000
CONTRACTS = ["CON.F.US.MNQ.Z25", "CON.F.US.EP.Z25"]

tick = st.tuples(
    st.one_of(st.integers(0, 3_000), st.integers(0, 400_000)),  # ms since the previous frame;
    # quiet spells cross many buckets of every timeframe
    st.integers(0, 1),  # instrument
    st.lists(st.tuples(st.integers(-8, 8), st.integers(1, 9)), min_size=1, max_size=4),
    st.integers(0, 400),  # receive latency, ms (exchange time lags receive time)
)


def build(ticks) -> list[Frame]:
    frames, exch = [], START
    last_recv = START
    for seq, (step, which, prints, latency) in enumerate(ticks):
        exch += step * MS
        contract = CONTRACTS[which]
        payload = projectx.encode_trades(
            contract, "F.US.X", [(exch, 100.0 + 0.25 * move, size, 0) for move, size in prints]
        )
        last_recv = max(last_recv, exch + latency * MS)
        frames.append(Frame(seq, last_recv, payload=payload, exch_ns=exch))
    return frames


def make(fill_flat, source):
    return Pipeline(
        ["MNQ", "ES"],
        ["15sec", "1min", "5min"],
        codec="projectx",
        fill_flat=fill_flat,
        time_source=source,
    )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ticks=st.lists(tick, min_size=1, max_size=60),
    fill_flat=st.booleans(),
    source=st.sampled_from(["auto", "receive"]),
    cuts=st.lists(st.integers(0, 60), max_size=8),
    advances=st.lists(st.tuples(st.integers(0, 60), st.floats(0, 1)), max_size=12),
)
def test_same_events_for_any_batching_and_clock_interleaving(
    ticks, fill_flat, source, cuts, advances
):
    frames = build(ticks)
    reference = make(fill_flat, source)
    expected = event_signatures(reference.feed_many(frames))

    batched = make(fill_flat, source)
    bounds = sorted({0, len(frames), *(c % (len(frames) + 1) for c in cuts)})
    got = []
    for lo, hi in itertools.pairwise(bounds):
        got += event_signatures(batched.feed_many(frames[lo:hi]))
    assert got == expected

    clocked = make(fill_flat, source)
    plan = {}
    for position, fraction in advances:
        plan.setdefault(position % len(frames), []).append(fraction)
    got = []
    for index, frame in enumerate(frames):
        previous = frames[index - 1].recv_ns if index else frame.recv_ns
        for fraction in sorted(plan.get(index, [])):  # clock ticks before this frame arrives
            got += event_signatures(
                clocked.advance_to(previous + int((frame.recv_ns - previous) * fraction))
            )
        got += event_signatures(clocked.feed(frame))
    assert got == expected
    assert [b.__repr__() for b in clocked.instrument("MNQ").builder.bars("1min")] == [
        b.__repr__() for b in reference.instrument("MNQ").builder.bars("1min")
    ]
