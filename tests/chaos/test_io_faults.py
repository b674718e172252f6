"""Real I/O errors while recording: segment writes fail (frames/ becomes a read-only mount)
and the disk fills up. Journaling never stops for a failed seal; a seal that fails is retried
until it succeeds, and one that never succeeds leaves every frame in the journal for
``rtcap recover``. Compared record by record with an uninterrupted reference recorder."""

from __future__ import annotations

import shutil
import time

import harness
import orjson
import pytest

from rtcap.storage.integrity import open_capture, read_frames
from rtcap.storage.journal import read_journal
from rtcap.storage.segments import sha256_file

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


@needs_mount
def test_full_disk_stops_with_a_clear_error_and_recover_keeps_everything(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    done = harness.subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    )
    assert done.returncode == 0, done.stderr
    sim = harness.start_sim(rate=3000)
    try:
        victim = mount / "cap"
        process = harness.start_recorder(victim, sim, *SMALL_SEGMENTS)
        _, err = process.communicate(timeout=90)  # it stops by itself
        err = err.decode()
        assert process.returncode == 1, err
        *warnings, error = err.strip().splitlines()
        assert all("recording goes on, the seal is retried" in w for w in warnings), err
        assert error.startswith("Error: disk full while") and "rtcap recover" in error
        journaled = sum(read_journal(p).rows for p in (victim / "journal").glob("segment-*.rtj"))
        manifest = harness.manifest(victim)
        sealed = manifest["frames"]
        assert journaled + sealed > 500
        files = [f for s in manifest["segments"] for f in s["files"]]
        assert files  # segments were sealed before the disk filled, and are intact
        assert all(sha256_file(victim / f["path"]) == f["sha256"] for f in files)
        moved = tmp_path / "freed"  # space again: the same files where there is room
        shutil.copytree(victim, moved)
        result = harness.recover(moved)
        assert result.returncode == 0, result.stderr
        seqs = [f.seq for f in read_frames(moved)]
        assert seqs == list(range(len(seqs))) and len(seqs) == journaled + sealed
    finally:
        sim.stop()
        harness.subprocess.run(["umount", "-l", str(mount)], check=False)
