"""``Replay(..., follow=True)`` / ``rtcap replay --follow``: a capture read while a recorder
writes it, across segment rotations, gives exactly the frames and events of a replay of the
finished capture, and ends when the recording does."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

from click.testing import CliRunner
from helpers import replayed

from rtcap.cli import main
from rtcap.replay.source import Replay
from rtcap.storage.integrity import open_capture


def test_following_a_recording_gives_what_a_replay_of_the_finished_capture_gives(tmp_path):
    capture = tmp_path / "cap"
    recorder = subprocess.Popen(
        [sys.executable, "-m", "rtcap", "record", str(capture), "--duration", "6s", "--rate",
         "200", "--bars", "1sec", "--segment-minutes", "0.03", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not any((capture / "journal").glob("segment-*.rtj")):
        assert time.monotonic() < deadline and recorder.poll() is None
        time.sleep(0.02)
    time.sleep(0.3)
    followed = asyncio.run(replayed(Replay(capture, "max", follow=True, poll_s=0.05)))
    _, err = recorder.communicate(timeout=60)
    assert recorder.returncode == 0, err
    finished = asyncio.run(replayed(Replay(capture, "max")))
    assert followed[0] == finished[0] and len(finished[0]) > 800
    assert [f[0] for f in followed[0]] == sorted({f[0] for f in followed[0]})  # once, in order
    assert followed[1] == finished[1] and len(finished[1]) > 1000
    assert len(open_capture(capture)["segments"]) >= 3  # it followed across rotations
    verified = CliRunner().invoke(main, ["verify", str(capture)])
    assert verified.exit_code == 0, verified.output


def test_follow_takes_one_capture(tmp_path):
    for name in ("a", "b"):
        result = CliRunner().invoke(
            main, ["record", str(tmp_path / "root" / name), "--duration", "1s", "--quiet"]
        )
        assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["replay", str(tmp_path / "root"), "--follow"])
    assert result.exit_code == 1 and "--follow reads one capture" in result.output
