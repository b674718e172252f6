"""kill -9 the recorder at random moments: after ``rtcap recover`` no sealed segment is damaged
and the frames lost are at most those of the last flush interval."""

import random
import signal
import subprocess
import sys
import time

import orjson
import pytest

from rtcap.storage.integrity import open_capture, read_frames
from rtcap.storage.segments import sha256_file

FLUSH_MS = 100
SLACK_MS = 400  # scheduling on a busy 2-core machine: the flusher may wake late


def wait_for_journal(path, process, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        journals = list((path / "journal").glob("*.rtj")) if (path / "journal").exists() else []
        if journals and journals[0].stat().st_size > 0:
            return
        assert process.poll() is None, process.stderr.read().decode()
        time.sleep(0.02)
    raise AssertionError("the recorder never wrote its journal")


@pytest.mark.slow
def test_kill_9_then_recover_keeps_sealed_segments_and_all_but_the_last_flush(
    tmp_path, full_length
):
    rng = random.Random(20261123)
    trials = 20 if full_length else 3
    worst_loss_ms = 0.0
    for trial in range(trials):
        path = tmp_path / f"cap{trial}"
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rtcap",
                "record",
                str(path),
                "--rate",
                "800",
                "--quiet",
                "--flush-ms",
                str(FLUSH_MS),
                "--fsync",
                "always",
                "--segment-minutes",
                "0.01",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_for_journal(path, process)
        time.sleep(rng.uniform(0.2, 2.5))
        sealed = {}
        if (path / "manifest.json").exists():
            manifest = orjson.loads((path / "manifest.json").read_bytes())
            sealed = {f["path"]: f["sha256"] for s in manifest["segments"] for f in s["files"]}
        killed_ns = time.time_ns()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        result = subprocess.run(
            [sys.executable, "-m", "rtcap", "recover", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"recovered {path}")
        manifest = open_capture(path)
        listed = {f["path"]: f["sha256"] for s in manifest["segments"] for f in s["files"]}
        for file, digest in sealed.items():
            assert listed[file] == digest == sha256_file(path / file)  # sealed: untouched
        frames = list(read_frames(path))
        assert [f.seq for f in frames] == list(range(len(frames)))
        last_data = max(f.recv_ns for f in frames if f.kind == "text")
        loss_ms = (killed_ns - last_data) / 1e6
        worst_loss_ms = max(worst_loss_ms, loss_ms)
        assert loss_ms <= FLUSH_MS + SLACK_MS, f"trial {trial}: lost the last {loss_ms:.0f} ms"
    print(f"\n{trials} kill -9 trials: worst data loss {worst_loss_ms:.0f} ms of feed")
