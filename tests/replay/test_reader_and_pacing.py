"""Ordered reading with pushdown, and pacing on an absolute schedule."""

import asyncio
import time

import helpers
import pytest
from helpers import write_capture

from rtcap.models import Frame
from rtcap.replay.pacing import parse_speed
from rtcap.replay.source import Replay
from rtcap.simulator import MarketSimulator
from rtcap.storage.reader import CaptureReader, FrameFilter, resolve_time

S = 1_000_000_000


def make_capture(path, frames, *, journal_tail=0, **options):
    """A capture of ``frames``; with ``journal_tail``, the last ones left unsealed in the journal
    of a recorder that stopped without sealing."""
    sealed = frames[: len(frames) - journal_tail]
    writer = write_capture(path, sealed, flush_every=500, **options)
    if not journal_tail:
        writer.close()
        return
    writer.seal_now(writer.rotate())
    for frame in frames[len(frames) - journal_tail :]:
        writer.append(Frame(0, frame.recv_ns, 0, 0, frame.stream, frame.kind, frame.payload))
    writer.flush()
    helpers.crash(writer)


def sim(seconds, rate=50):
    return list(MarketSimulator(9, ["MNQ", "ES"], rate=rate).frames(duration_s=seconds))


def test_time_window_skips_row_groups_and_filters_rows(tmp_path):
    frames = sim(120)
    make_capture(tmp_path / "c", frames, row_group_rows=500)
    reader = CaptureReader(tmp_path / "c")
    first, last = reader.span
    where = FrameFilter(resolve_time("+30s", first, last), resolve_time("+40s", first, last))
    got = [f for batch in reader.frames(where) for f in batch]
    expected = [f for f in frames if first + 30 * S <= f.recv_ns < first + 40 * S]
    assert [f.payload for f in got] == [f.payload for f in expected]
    assert reader.row_groups_skipped > reader.row_groups_read >= 1
    es = FrameFilter(symbols=frozenset({MarketSimulator(9, ["ES"]).contracts["ES"]}))
    assert {f.symbol for b in CaptureReader(tmp_path / "c").frames(es) for f in b} == {
        "CON.F.US.EP.U25"
    }


def test_relative_and_absolute_times():
    assert resolve_time("+5m", 100 * S, 900 * S) == 400 * S
    assert resolve_time("-30s", 100 * S, 900 * S) == 870 * S
    assert resolve_time("2025-09-02T13:30:00Z", 0, 0) == 1_756_819_800 * S
    with pytest.raises(ValueError, match=r"\+5m"):
        resolve_time("soon", 0, 0)


def test_include_open_adds_the_unsealed_journal_in_order(tmp_path):
    frames = sim(20)
    make_capture(tmp_path / "c", frames, journal_tail=100)
    with pytest.raises(Exception, match="rtcap recover"):
        CaptureReader(tmp_path / "c")
    reader = CaptureReader(tmp_path / "c", include_open=True)
    got = [f for batch in reader.frames() for f in batch]
    assert [f.seq for f in got] == list(range(len(frames)))
    assert [f.payload for f in got] == [f.payload for f in frames]


@pytest.mark.parametrize(
    ("text", "value"),
    [("10x", 10.0), ("0.5x", 0.5), ("10", 10.0), ("10.0", 10.0), (" 2X ", 2.0), ("max", None)],
)
def test_speed_forms(text, value):
    assert parse_speed(text) == value


@pytest.mark.parametrize("text", ["fast", "0x", "-1x", "x10"])
def test_bad_speeds_are_refused(text):
    with pytest.raises(ValueError):
        parse_speed(text)


def test_sixty_seconds_at_10x_take_about_six_and_never_run_early(tmp_path):
    frames = sim(60, rate=30)
    make_capture(tmp_path / "c", frames)
    source = Replay(tmp_path / "c", "10x", keep_lateness=True, clock_interval_s=0.05)

    async def run():
        emitted = []
        started = time.monotonic_ns()
        async for batch in source.batches():
            now = time.monotonic_ns()
            emitted.extend((f, now) for f in batch if f.kind != "clock")
        return started, emitted, time.monotonic_ns()

    started, emitted, ended = asyncio.run(run())
    span = frames[-1].recv_ns - frames[0].recv_ns
    elapsed = (ended - started) / S
    assert span / S / 10 - 0.05 <= elapsed < span / S / 10 + 1.5
    anchor = emitted[0][1]
    for frame, at in emitted:  # never before its place on the schedule
        assert at >= anchor + (frame.recv_ns - frames[0].recv_ns) // 10 - 1_000_000
    assert min(source.pacer.stats.lateness) >= 0
    assert len(emitted) == len(frames)


def test_max_gap_compresses_idle_stretches(tmp_path):
    frames = sim(3, rate=100)
    shifted = [
        Frame(
            f.seq,
            f.recv_ns + (120 * S if i >= len(frames) // 2 else 0),
            0,
            0,
            f.stream,
            f.kind,
            f.payload,
        )
        for i, f in enumerate(frames)
    ]
    make_capture(tmp_path / "c", shifted)
    source = Replay(tmp_path / "c", "10x", max_gap=1.0)

    async def run():
        count = 0
        started = time.monotonic()
        async for batch in source.batches():
            count += sum(f.kind != "clock" for f in batch)
        return count, time.monotonic() - started

    count, elapsed = asyncio.run(run())
    assert count == len(frames) and elapsed < 2.0  # not the 12 s the two-minute hole would take
