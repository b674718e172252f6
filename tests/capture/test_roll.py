"""Day roll: a recording that rolls (here every 2 s, through the same code path as a daily
roll) equals an uninterrupted reference recording of the same feed: every market record once,
in order, across the captures; each capture verifies on its own; the bars of a replay of all of
them equal the reference's; and the rows at each roll name where the tape continues."""

from __future__ import annotations

import asyncio
import itertools
import re
import threading
import time
from datetime import time as clock_time
from pathlib import Path

import orjson
import pytest
from chaos import harness
from click.testing import CliRunner
from helpers import replayed

from rtcap.capture.roll import RollSchedule, next_capture, parse_roll
from rtcap.cli import main
from rtcap.replay.source import Replay
from rtcap.storage.compact import is_cold_file
from rtcap.storage.integrity import read_frames
from rtcap.timeutil import parse_iso_ns

S = 1_000_000_000


def test_the_schedule_names_each_trading_day():
    utc = parse_roll(None, None, "00:00")
    assert utc == RollSchedule(at=clock_time(0, 0), tz="UTC")
    now = parse_iso_ns("2026-12-05T23:59:59Z")
    assert utc.next_after(now) == parse_iso_ns("2026-12-06T00:00:00Z")
    assert utc.day_of(now) == "2026-12-05"
    cme = parse_roll(None, None, "17:00 America/Chicago")
    friday_evening = parse_iso_ns("2026-12-04T23:30:00Z")  # 17:30 CT: Monday's session
    assert cme.next_after(friday_evening) == parse_iso_ns("2026-12-05T23:00:00Z")
    assert cme.day_of(friday_evening) == "2026-12-05"
    summer = parse_iso_ns("2026-07-01T21:00:00Z")  # 16:00 CDT
    assert cme.next_after(summer) == parse_iso_ns("2026-07-01T22:00:00Z")  # 17:00 CDT
    assert parse_roll("none", None, "00:00") is None
    assert parse_roll(None, 2 * S, "00:00").next_after(5 * S + 1) == 6 * S
    for bad in ("25:00", "17:00 Mars/Olympus", "noon"):
        with pytest.raises(ValueError, match="invalid --roll-at"):
            parse_roll(bad, None, "00:00")


def test_next_capture_names_never_collide(tmp_path):
    first = tmp_path / "cap"
    assert next_capture(first, "2026-12-05") == tmp_path / "cap.2026-12-05"
    (tmp_path / "cap.2026-12-05").mkdir()
    assert next_capture(first, "2026-12-05") == tmp_path / "cap.2026-12-05.2"


def market_records(captures: list[Path]) -> dict[tuple[str, str], list[bytes]]:
    """Every market record of ``captures`` in order, channel by channel."""
    timed = [item for capture in captures for item in harness.market_records(capture)]
    return {c: [r for _, r in items] for c, items in harness.by_channel(timed).items()}


def test_a_rolling_recording_equals_an_uninterrupted_one(tmp_path):
    sim = harness.start_sim(rate=300)
    root = tmp_path / "rolled"
    try:
        reference = harness.start_recorder(tmp_path / "reference", sim, "--roll-at", "none",
                                           "--bars", "1sec")  # fmt: skip
        roller = harness.start_recorder(root / "cap", sim, "--roll-every", "2s", "--bars", "1sec")
        harness.wait_for_journal(root / "cap", roller)
        harness.wait_for_journal(tmp_path / "reference", reference)
        followed: list = []  # a live tail from the first capture, on through every roll
        follower = threading.Thread(
            target=lambda: followed.extend(
                asyncio.run(replayed(Replay(root / "cap", "max", follow=True, poll_s=0.05)))
            )
        )
        follower.start()
        time.sleep(7.5)
        code, out, err = harness.stop(roller)
        assert code == 0, err
        assert "capture(s) after it (rolled" in out
        reported = int(out.split("recorded ", 1)[1].split(" rows", 1)[0])
        code, _, err = harness.stop(reference)
        assert code == 0, err
    finally:
        sim.stop()
    follower.join(60)
    assert followed and not follower.is_alive()
    assert followed == list(asyncio.run(replayed(Replay(root, "max"))))  # = all days, merged
    captures = sorted(root.iterdir(), key=lambda p: (len(p.name), p.name))
    assert len(captures) >= 4 and captures[0].name == "cap"
    assert sum(len(list(read_frames(c))) for c in captures) == reported  # every row counted
    # The rows at each roll name where the tape goes on, both ways.
    for before, after in itertools.pairwise(captures):
        last = list(read_frames(before))[-1]
        first = next(iter(read_frames(after)))
        assert orjson.loads(last.payload) == {"event": "rolled", "continues_in": str(after)}
        assert orjson.loads(first.payload) == {
            "event": "rolled_from",
            "continued_from": str(before),
        }
    # Every market record once, in order: the union is one unbroken run of the reference's,
    # channel by channel (each starts when its own subscription is answered).
    ours = market_records(captures)
    theirs = market_records([tmp_path / "reference"])
    assert sorted(ours) == sorted(theirs)
    compared = 0
    for channel, records in ours.items():
        offered = theirs[channel]
        start = harness.run_start(offered, records)
        if start is None:  # the roller subscribed first: start where the reference did
            cut = harness.run_start(records, offered)
            assert cut is not None, f"{channel}: the reference's first records are not ours"
            records, start = records[cut:], 0
        length = min(len(records), len(offered) - start)  # whichever stopped first
        assert offered[start : start + length] == records[:length], channel
        compared += length
    assert compared > 1000
    # Each capture verifies on its own (its live bars are its own).
    for capture in captures:
        verified = CliRunner().invoke(main, ["verify", str(capture), "--speed", "50x"])
        assert verified.exit_code == 0, (capture, verified.output)

    # A replay of all of them gives the reference's bars where both recorded the whole second.
    def bars(path):
        result = CliRunner().invoke(
            main, ["replay", str(path), "--timeframes", "1sec", "--format", "csv"]
        )
        assert result.exit_code == 0, result.output
        return result.stdout.splitlines()[1:]

    rolled, whole = bars(root), bars(tmp_path / "reference")

    def second(line: str) -> str:
        return line.split(",")[0]

    # Seconds both recorded whole: not the first or last second either of them saw.
    low = max(min(map(second, rolled)), min(map(second, whole)))
    high = min(max(map(second, rolled)), max(map(second, whole)))
    inner = [line for line in rolled if low < second(line) < high]
    assert len(inner) >= 8
    assert inner == [line for line in whole if low < second(line) < high]


def test_a_rolling_recording_compacts_each_day_it_closes(tmp_path):
    """Each capture a roll closes is compacted by a low-priority child while recording goes on;
    stopping interrupts a compaction still running, and every capture is whole either way."""
    sim = harness.start_sim(rate=300)
    root = tmp_path / "rolled"
    roller = harness.start_recorder(root / "cap", sim, "--roll-every", "1s")
    try:
        harness.wait_for_journal(root / "cap", roller)
        deadline = time.monotonic() + 90

        def compacted_days() -> int:
            manifests = [c / "manifest.json" for c in root.iterdir()]
            return sum(1 for m in manifests if m.exists() and "cold" in harness.manifest(m.parent))

        while compacted_days() < 2:  # the first day's child has surely ended by the second's
            assert roller.poll() is None and time.monotonic() < deadline, "never compacted"
            time.sleep(0.1)
    finally:
        code, out, err = harness.stop(roller)
        sim.stop()
    assert code == 0, err
    compacted = re.search(r"(\d+) closed capture\(s\) compacted", out)
    assert compacted and int(compacted.group(1)) >= 1, out
    first = harness.manifest(root / "cap")
    assert first["status"] != "recording" and first["cold"]["form"] == "typed/2"
    files = [root / "cap" / f["path"] for s in first["segments"] for f in s["files"]]
    assert files and all(is_cold_file(f) for f in files)
    frames = list(read_frames(root / "cap"))
    # the first day ends at the first whole second, so it may hold a fraction of a second
    assert len(frames) == first["frames"] > 0
    typed = sum(f.get("typed", 0) for s in first["segments"] for f in s["files"])
    assert 0 < typed < len(frames)  # market frames typed; the open/close rows stay raw
    assert orjson.loads(frames[-1].payload)["event"] == "rolled"
    captures = sorted(root.iterdir(), key=lambda p: (len(p.name), p.name))
    assert len(captures) >= 2
    for capture in captures:  # compacted, interrupted or never started: each whole
        assert len(list(read_frames(capture))) == harness.manifest(capture)["frames"]
        assert not [p for p in capture.rglob("*") if p.name.endswith(".tmp")]
        verified = CliRunner().invoke(main, ["verify", str(capture), "--speed", "50x"])
        assert verified.exit_code == 0, (capture, verified.output)
