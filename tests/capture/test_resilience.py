"""Expiring tokens and full disks: the recorder re-authenticates, and stops cleanly without
harming anything already sealed."""

import os
import subprocess
import sys
import time

import orjson
import pytest
from rtcap.capture.feeds import ProjectXAuth, ProjectXMarketFeed
from rtcap.capture.recorder import Recorder
from rtcap.capture.session import Backoff
from rtcap.replay.faults import FaultPlan
from rtcap.replay.gateway import GatewayServer
from rtcap.replay.simfeed import SimulatedFeed
from rtcap.replay.tokens import TokenIssuer
from rtcap.storage.capture import CaptureWriter, read_frames
from rtcap.storage.segments import sha256_file


def test_expired_tokens_are_refused_by_the_gateway():
    issuer = TokenIssuer(lifetime_s=-1)
    assert "expired access token" in issuer.check(issuer.issue("me"))


async def test_recorder_logs_in_again_when_its_token_expires(tmp_path):
    feed = SimulatedFeed(7, ["MNQ"], 200, faults=FaultPlan(drop_after_s=0.7))
    server = GatewayServer(
        feed, feed.contracts, faults=feed.faults, tokens=TokenIssuer("key", lifetime_s=1)
    )
    await server.start()
    auth = ProjectXAuth(server.urls["api"], "me", "key")
    market = ProjectXMarketFeed(auth, server.urls["market_hub"], ["MNQ"])
    writer = CaptureWriter(tmp_path / "cap", source={"kind": "projectx"}, fsync="never")
    writer.open()
    recorder = Recorder([market], writer=writer, backoff=Backoff(0.05, max_s=0.1))
    try:
        await recorder.prepare()
        await recorder.run(3.0)
    finally:
        await server.stop()
    frames = list(read_frames(tmp_path / "cap"))
    opens = sum(f.kind == "open" for f in frames)
    errors = [orjson.loads(f.payload) for f in frames if f.kind == "error"]
    assert opens >= 3 and auth.logins >= opens  # a fresh token for every connection
    assert not [e for e in errors if e.get("error") == "HTTP 401"]
    assert sum(f.payload.count(b"GatewayTrade") for f in frames if f.kind == "text") > 20


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip("mounting a small tmpfs needs root; this run has no such privilege")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_stops_with_a_clear_error_and_keeps_sealed_segments(small_disk):
    capture = small_disk / "cap"
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rtcap",
            "record",
            str(capture),
            "--rate",
            "3000",
            "--quiet",
            "--segment-minutes",
            "0.01",
            "--duration",
            "60s",
            "--flush-ms",
            "50",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and time.monotonic() - started < 60
    assert "disk full" in result.stderr and "rtcap recover" in result.stderr
    assert "Traceback" not in result.stderr
    manifest = orjson.loads((capture / "manifest.json").read_bytes())
    files = [f for s in manifest["segments"] for f in s["files"]]
    assert files  # some segments were sealed before the disk filled
    for file in files:
        assert sha256_file(capture / file["path"]) == file["sha256"]
    os.sync()
