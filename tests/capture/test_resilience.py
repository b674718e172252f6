"""Expiring tokens: the recorder logs in again (full disks: tests/chaos/test_io_faults.py)."""

import orjson

from rtcap.capture.feeds import ProjectXAuth, ProjectXMarketFeed
from rtcap.capture.recorder import Recorder
from rtcap.capture.session import Backoff
from rtcap.gateway.faults import FaultPlan
from rtcap.gateway.server import GatewayServer
from rtcap.gateway.simfeed import SimulatedFeed
from rtcap.gateway.tokens import TokenIssuer
from rtcap.storage.integrity import read_frames
from rtcap.storage.writer import CaptureWriter


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
