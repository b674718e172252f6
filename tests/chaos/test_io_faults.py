"""Real I/O errors while recording: segment writes fail (frames/ becomes a read-only mount)
and the disk fills up. Journaling never stops for a failed seal; a seal that fails is retried
until it succeeds, and one that never succeeds leaves every frame in the journal for
``rtcap recover``. Compared record by record with an uninterrupted reference recorder."""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time

import harness
import orjson
import pytest

from rtcap.storage.integrity import open_capture, read_frames

needs_mount = pytest.mark.skipif(
    not harness.can_mount(), reason="bind mounts need root (CI has it)"
)
SMALL_SEGMENTS = ("--segment-minutes", "0.01", "--flush-ms", "50")


def error_rows(capture):
    return [orjson.loads(f.payload) for f in read_frames(capture) if f.kind == "error"]


@needs_mount
def test_failed_segment_writes_are_retried_while_journaling_goes_on(sim, reference, tmp_path):
    victim = tmp_path / "victim"
    (victim / "frames").mkdir(parents=True)
    process = harness.start_recorder(victim, sim, *SMALL_SEGMENTS)
    harness.wait_for_journal(victim, process)
    time.sleep(0.5)
    with harness.read_only(victim / "frames"):
        time.sleep(2.5)  # several seals fail: EROFS on frames/
        journals = sorted(p.name for p in (victim / "journal").glob("segment-*.rtj"))
        assert len(journals) >= 3  # closed segments wait, the open one keeps journaling
    time.sleep(3.0)  # the retries succeed once the mount is writable again
    code, _, err = harness.stop(process)
    assert code == 0, err
    manifest = open_capture(victim)
    assert manifest["status"] == "closed" and not list((victim / "journal").glob("*.rtj"))
    seqs = [f.seq for f in read_frames(victim)]
    assert seqs == list(range(len(seqs)))
    failures = [e for e in error_rows(victim) if e.get("event") == "seal_failed"]
    assert failures and all("no permission while sealing" in e["error"] for e in failures)
    loss = harness.compare(victim, reference.finish(), time.time_ns())
    assert loss.kept > 1000  # one unbroken run of the reference's records, seals or not


@needs_mount
def test_a_seal_that_never_succeeds_keeps_every_frame_for_recover(sim, reference, tmp_path):
    victim = tmp_path / "victim"
    (victim / "frames").mkdir(parents=True)
    with harness.read_only(victim / "frames"):
        process = harness.start_recorder(victim, sim, *SMALL_SEGMENTS)
        harness.wait_for_journal(victim, process)
        time.sleep(2.0)
        stopped_ns = time.time_ns()
        code, _, err = harness.stop(process)
        assert code == 1
        *warnings, error = err.strip().splitlines()
        assert warnings and all("recording goes on, the seal is retried" in w for w in warnings)
        assert error.startswith("Error: could not seal segment(s)")
        assert "every frame is safe in its journal" in error and "rtcap recover" in error
        assert harness.manifest(victim)["status"] == "unsealed"
        failed = harness.recover(victim)
        assert failed.returncode == 1 and "Traceback" not in failed.stderr
        assert "nothing was deleted" in failed.stderr
    result = harness.recover(victim)
    assert result.returncode == 0, result.stderr
    seqs = [f.seq for f in read_frames(victim)]
    assert seqs == list(range(len(seqs)))
    loss = harness.compare(victim, reference.finish(), stopped_ns)
    assert loss.tail_ms <= 500, loss  # only what arrived while the recorder was stopping


def lines_of(stream, into: list[str]) -> threading.Thread:
    """Collect a process's stderr lines as they come (on a thread)."""

    def read():
        for line in iter(stream.readline, b""):
            into.append(line.decode())

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def wait_for_line(lines: list[str], needle: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not any(needle in line for line in lines):
        assert time.monotonic() < deadline, f"no {needle!r} in {lines}"
        time.sleep(0.05)


@contextlib.contextmanager
def small_disk(folder, size="1m"):
    folder.mkdir()
    done = harness.subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    )
    assert done.returncode == 0, done.stderr
    try:
        yield folder
    finally:
        harness.subprocess.run(["umount", "-l", str(folder)], check=False)


@needs_mount
@pytest.mark.parametrize("hold_mb", ["256", "0.03"])
def test_a_full_disk_pauses_journaling_until_space_returns(tmp_path, hold_mb):
    """The disk fills: the recorder holds rows in memory and retries; a file is deleted and
    journaling resumes with everything held written in order. With a hold too small for the
    pause, what could not be held is one stretch, which an ``unrecorded`` gap row describes."""
    sim = harness.start_sim(rate=400)
    try:
        with small_disk(tmp_path / "small") as disk:
            ballast = disk / "ballast"
            ballast.write_bytes(os.urandom(896 * 1024))  # what someone deletes to free space
            victim = disk / "cap"
            process = harness.start_recorder(
                victim, sim, "--flush-ms", "50", "--hold-mb", hold_mb, "--segment-minutes", "10"
            )
            lines: list[str] = []
            reader = lines_of(process.stderr, lines)
            wait_for_line(lines, "journaling paused", timeout=60)
            time.sleep(3)  # paused for a while: 400 msg/s arrive meanwhile
            ballast.unlink()
            wait_for_line(lines, "journaling resumed", timeout=30)
            time.sleep(0.5)
            code, _, _ = harness.stop(process)
            reader.join(5)
            assert code == 0, "\n".join(lines)
            frames = list(read_frames(victim))
            listed_gaps = harness.manifest(victim)["gaps"]
    finally:
        sim.stop()
    seqs = [f.seq for f in frames]
    assert seqs == list(range(len(seqs)))
    events = [orjson.loads(f.payload).get("event") for f in frames if f.kind == "error"]
    assert events.count("journal_paused") == 1 and events.count("journal_resumed") == 1
    paused = next(f for f in frames if f.kind == "error" and b"journal_paused" in f.payload)
    resumed = next(f for f in frames if f.kind == "error" and b"journal_resumed" in f.payload)
    during = [f for f in frames if paused.seq < f.seq < resumed.seq and f.kind == "text"]
    lost = [orjson.loads(f.payload) for f in frames if f.kind == "gap"]
    lost = [g for g in lost if g.get("kind") == "unrecorded"]
    if hold_mb == "256":  # everything was held: the pause's rows are all in the tape
        assert not lost and len(during) > 400 * 2
        gaps = [b.recv_ns - a.recv_ns for a, b in itertools.pairwise(during)]
        assert max(gaps) < 1e9  # no stretch of the pause is missing (400 messages a second)
    else:
        assert len(lost) == 1 and lost[0]["missing"] > 100 and lost[0]["bytes"] > 0
        inside = [f for f in frames if lost[0]["from_ns"] <= f.recv_ns <= lost[0]["to_ns"]]
        assert [f.kind for f in inside if f.kind == "text"] == []  # the loss is one stretch
        assert (
            15_000 < sum(len(f.payload) for f in during) < 32_000
        )  # the hold, less the failed block
    listed = [g for g in listed_gaps if g.get("kind") == "unrecorded"]
    assert [{k: v for k, v in g.items() if k not in ("stream", "seq")} for g in listed] == lost
