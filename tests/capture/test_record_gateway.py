"""Recording the gateway on loopback while it injects faults: nothing sent is missing from the
capture, every disconnect is a gap row, and every subscription is restored after reconnects."""

import orjson
import pytest

from rtcap.capture.feeds import local_gateway_feed
from rtcap.capture.recorder import Recorder
from rtcap.capture.session import Backoff
from rtcap.codecs.signalr import RS
from rtcap.gateway.embedded import start_embedded_market
from rtcap.gateway.faults import FaultPlan
from rtcap.storage.integrity import open_capture, read_frames
from rtcap.storage.writer import CaptureWriter

SUBSCRIBE = {"SubscribeContractQuotes", "SubscribeContractTrades", "SubscribeContractMarketDepth"}


async def record(tmp_path, faults, seconds, stale_after=None, bars=None):
    market = await start_embedded_market(7, ["MNQ", "ES"], 300, faults=faults, history_days=0)
    writer = CaptureWriter(tmp_path / "cap", source=market.source_info(), fsync="never")
    writer.open()
    recorder = Recorder(
        [local_gateway_feed(market, ["MNQ", "ES"])],
        writer=writer,
        flush_ms=50,
        backoff=Backoff(initial_s=0.05, max_s=0.2),
        stale_after_s=stale_after,
        bar_timeframes=bars,
    )
    await recorder.prepare()
    try:
        await recorder.run(seconds)
    finally:
        await market.stop()
    server = sorted(market.server.closed_connections, key=lambda c: c.number)
    return list(read_frames(tmp_path / "cap")), server, market


def check_lossless(frames, server_connections):
    by_conn: dict[int, int] = {}
    for frame in frames:
        if frame.kind == "text":
            by_conn[frame.conn] = by_conn.get(frame.conn, 0) + frame.payload.count(RS)
    sent = {index: c.records_sent for index, c in enumerate(server_connections, start=1)}
    assert by_conn == sent


def check_gaps_and_resubscriptions(frames, contracts):
    closes = [f for f in frames if f.kind == "close"]
    rows = [orjson.loads(f.payload) for f in frames if f.kind == "gap"]
    gaps = [g for g in rows if g["kind"] == "connection"]
    opens = [f for f in frames if f.kind == "open"]
    assert len(opens) == len(closes) >= 3  # reconnected at least twice
    assert len(gaps) == len(closes) - 1  # every disconnect but our own final stop
    assert all(g["kind"] == "connection" and g["to_ns"] > g["from_ns"] for g in gaps)
    for gap, before, after in zip(gaps, closes, opens[1:], strict=False):
        # the gap starts when the connection was lost and ends as the next one opens
        assert before.recv_ns - 50_000_000 <= gap["from_ns"] <= before.recv_ns
        assert before.recv_ns <= gap["to_ns"] <= after.recv_ns
    for conn in range(1, len(opens) + 1):
        sent = [orjson.loads(f.payload[:-1]) for f in frames if f.kind == "sent" and f.conn == conn]
        subscribed = {
            (m["target"], m["arguments"][0]) for m in sent if m.get("target") in SUBSCRIBE
        }
        assert subscribed == {(method, c) for method in SUBSCRIBE for c in contracts}, conn
        seen = {
            f.symbol or c
            for f in frames
            if f.kind == "text" and f.conn == conn
            for c in contracts
            if c.encode() in f.payload
        }
        assert seen == set(contracts), conn  # data of every contract flows again
    seqs = [f.seq for f in frames]
    assert seqs == list(range(len(frames)))


@pytest.mark.parametrize(
    ("name", "faults", "stale_after"),
    [
        ("drop", FaultPlan(drop_after_s=0.8), None),
        ("stall", FaultPlan(stall_after_s=0.6, stall_for_s=5.0), 0.4),
        ("error_close", FaultPlan(error_close_after_s=0.8), None),
        (
            "malformed_oversized",
            FaultPlan(
                malformed_every=40,
                oversized_after_s=0.3,
                oversized_bytes=1_500_000,
                drop_after_s=0.9,
            ),
            None,
        ),
    ],
)
async def test_recording_under_faults_is_lossless(tmp_path, name, faults, stale_after):
    frames, server, market = await record(tmp_path, faults, 3.2, stale_after)
    contracts = list(market.feed.contracts.values())
    check_lossless(frames, server)
    check_gaps_and_resubscriptions(frames, contracts)
    manifest = open_capture(tmp_path / "cap")
    assert len(manifest["gaps"]) == len([f for f in frames if f.kind == "gap"])
    assert len(manifest["connections"]) == len(server)
    errors = [orjson.loads(f.payload) for f in frames if f.kind == "error"]
    if name == "stall":
        stale = [e for e in errors if e["event"] == "stale"]
        silences = [orjson.loads(f.payload) for f in frames if f.kind == "gap"]
        silences = [g for g in silences if g["kind"] == "silence"]
        assert stale and len(silences) == len(stale)  # the quiet time before each drop
        assert all(g["seconds"] >= stale_after for g in silences)
    if name == "malformed_oversized":
        assert max(len(f.payload) for f in frames) > 1_500_000
        assert sum(f.payload.count(b'"arguments":["CON.F.US.\x1e') for f in frames) >= 3
    if name == "error_close":
        assert sum(b"Simulated server error" in f.payload for f in frames) == len(server) - 1


async def test_live_bars_and_secrets_never_written(tmp_path):
    frames, server, _ = await record(tmp_path, FaultPlan(), 2.5, bars=["1sec"])
    check_lossless(frames, server)
    manifest = open_capture(tmp_path / "cap")
    assert manifest["live_bars"]["timeframes"] == ["1sec"] and manifest["live_bars"]["count"] > 2
    opens = [orjson.loads(f.payload) for f in frames if f.kind == "open"]
    assert opens[0]["url"].endswith("?access_token=REDACTED")
    everything = b"".join(p.read_bytes() for p in (tmp_path / "cap").rglob("*") if p.is_file())
    assert b"access_token=ey" not in everything and b"embedded-simulated-market" not in everything
