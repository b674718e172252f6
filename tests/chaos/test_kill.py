"""kill -9 the recorder at random moments and at exact system calls inside sealing (the Nth
rename, the Nth fsync): after ``rtcap recover`` nothing sealed changed, and against an
uninterrupted reference recorder of the same feed nothing journaled is missing: the kept
records are one unbroken run, and the tail lost is at most one flush interval."""

from __future__ import annotations

import random
import shutil
import signal
import time

import harness
import pytest

from rtcap.storage.integrity import open_capture, read_frames
from rtcap.storage.segments import sha256_file

FLUSH_MS = 100
SLACK_MS = 400  # scheduling on a busy 2-core machine: the flusher may wake late
VICTIM = ("--flush-ms", str(FLUSH_MS), "--fsync", "always", "--segment-minutes", "0.01")
RENAMES = "rename,renameat,renameat2"


def sealed_hashes(capture):
    if not (capture / "manifest.json").exists():
        return {}
    manifest = harness.manifest(capture)
    return {f["path"]: f["sha256"] for s in manifest["segments"] for f in s["files"]}


def check_recovered(victim, sealed):
    result = harness.recover(victim)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    manifest = open_capture(victim)
    listed = {f["path"]: f["sha256"] for s in manifest["segments"] for f in s["files"]}
    for file, digest in sealed.items():
        assert listed[file] == digest == sha256_file(victim / file)  # sealed: untouched
    seqs = [f.seq for f in read_frames(victim)]
    assert seqs == list(range(len(seqs)))
    assert not list((victim / "journal").glob("*.rtj"))


def worst_loss(crashes, reference):
    """Compare every recovered victim with the finished reference; the worst tail in ms."""
    worst = 0.0
    for victim, fault_ns in crashes:
        loss = harness.compare(victim, reference.finish(), fault_ns)
        assert loss.tail_ms <= FLUSH_MS + SLACK_MS, f"{victim.name}: lost {loss.tail_ms:.0f} ms"
        worst = max(worst, loss.tail_ms)
    return worst


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_at_most_one_flush(sim, reference, tmp_path, full_length):
    rng = random.Random(20261124)
    trials = 12 if full_length else 2
    crashes = []
    for trial in range(trials):
        victim = tmp_path / f"victim{trial}"
        process = harness.start_recorder(victim, sim, *VICTIM)
        harness.wait_for_journal(victim, process)
        time.sleep(rng.uniform(0.2, 2.0))
        sealed = sealed_hashes(victim)
        fault_ns = time.time_ns()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        check_recovered(victim, sealed)
        crashes.append((victim, fault_ns))
    worst = worst_loss(crashes, reference)
    print(f"\nkill -9 at random: {trials} trials, worst loss {worst:.0f} ms of feed")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
@pytest.mark.parametrize("syscall", [RENAMES, "fsync"])
def test_kill_9_inside_seal_at_the_nth_call(sim, reference, tmp_path, syscall, full_length):
    """strace delivers SIGKILL exactly as the recorder makes its Nth rename (a segment or the
    manifest being published) or Nth fsync (a journal block, a segment, the manifest)."""
    rng = random.Random(hash(syscall) & 0xFFFF)
    trials = 8 if full_length else 2
    crashes = []
    for trial in range(trials):
        victim = tmp_path / f"victim{trial}"
        when = rng.randrange(3, 9) if syscall == RENAMES else rng.randrange(4, 40)
        wrap = (
            "strace",
            "-f",
            "-qq",
            "-o",
            "/dev/null",
            "-e",
            f"trace={syscall}",
            "-e",
            f"inject={syscall}:signal=SIGKILL:when={when}",
        )
        process = harness.start_recorder(victim, sim, *VICTIM, wrap=wrap)
        sealed = {}
        deadline = time.monotonic() + 30
        while process.poll() is None:
            sealed = sealed_hashes(victim) or sealed
            assert time.monotonic() < deadline, f"call {when} of {syscall} never came"
            time.sleep(0.01)
        fault_ns = time.time_ns()
        assert process.returncode != 0
        if not (victim / "journal").exists():
            continue  # killed before the first journal block: nothing was recorded yet
        check_recovered(victim, sealed)
        crashes.append((victim, fault_ns))
    worst = worst_loss(crashes, reference)
    print(f"\nkill -9 at {syscall} #N: {trials} trials, worst loss {worst:.0f} ms of feed")


@pytest.mark.slow
def test_kill_9_in_the_first_second_keeps_all_but_the_last_flush(
    sim, reference, tmp_path, full_length
):
    """The first journal block used to wait for pyarrow's first conversion (0.2-0.3 s, when it
    loads pandas) on top of the flush interval: a kill in the first half second after the
    connection opened lost every record. Now the first block follows the first frame by one
    flush interval, like every other."""
    rng = random.Random(20261205)
    wanted = 8 if full_length else 3
    crashes, attempts = [], 0
    while len(crashes) < wanted:
        attempts += 1
        assert attempts <= 3 * wanted, "the recorder never connected before the kill"
        victim = tmp_path / f"early{attempts}"
        process = harness.start_recorder(victim, sim, *VICTIM)
        deadline = time.monotonic() + 30
        while not list((victim / "journal").glob("segment-*.rtj")):  # the writer is open
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.005)
        time.sleep(rng.uniform(0.35, 0.6))  # the connection opens about 0.2 s later
        fault_ns = time.time_ns()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        check_recovered(victim, {})
        opened = [f for f in read_frames(victim) if f.kind == "open"]
        if not opened:
            continue  # killed before the connection opened: nothing was offered yet
        assert (fault_ns - opened[0].recv_ns) / 1e6 < 1000
        crashes.append((victim, fault_ns))
    worst = worst_loss(crashes, reference)
    print(f"\nkill -9 in the first second: {len(crashes)} trials, worst loss {worst:.0f} ms")
