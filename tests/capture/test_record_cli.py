"""``rtcap record`` as users run it: the sim default, Binance and generic feeds, and errors."""

import asyncio
import gzip
import socket
import subprocess
import sys

import orjson
import pytest
import websockets
from click.testing import CliRunner

from rtcap.cli import main
from rtcap.gateway.server import GatewayServer
from rtcap.gateway.simfeed import SimulatedFeed
from rtcap.gateway.tokens import TokenIssuer
from rtcap.storage.integrity import open_capture, read_frames, read_live_bars


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_record_defaults_to_the_embedded_simulated_market(tmp_path):
    result = run(
        "record",
        tmp_path / "cap",
        "--duration",
        "2.5s",
        "--bars",
        "1sec",
        "--quiet",
        "--symbols",
        "MNQ",
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("recorded ")
    manifest = open_capture(tmp_path / "cap")
    assert manifest["source"]["kind"] == "sim" and manifest["frames"] > 20
    assert manifest["subscriptions"][0]["subscriptions"][0]["symbol"] == "MNQ"
    assert read_live_bars(tmp_path / "cap").num_rows >= 1
    kinds = {f.kind for f in read_frames(tmp_path / "cap")}
    assert {"open", "sent", "text", "close", "clock"} <= kinds


def test_max_frames_stops_the_recording(tmp_path):
    result = run("record", tmp_path / "cap", "--max-frames", "50", "--rate", "300", "--quiet")
    assert result.exit_code == 0, result.output
    frames = list(read_frames(tmp_path / "cap"))
    assert 50 <= sum(f.kind == "text" for f in frames) <= 60


async def serve_lines(lines):
    """A websocket server replaying Binance frames to every client (and recording what
    clients send); it keeps each connection open until the client closes it, so a recorder
    slower than the server (a loaded machine) still stops by --max-frames, not by a close."""
    received = []

    async def handler(ws):
        async def listen():
            async for message in ws:
                received.append(message)

        listener = asyncio.create_task(listen())
        for index, line in enumerate(lines):
            await ws.send(line)
            if index % 50 == 0:
                await asyncio.sleep(0.001)
        await ws.wait_closed()
        listener.cancel()

    server = await websockets.serve(handler, "127.0.0.1", 0)
    return server, received


def test_binance_recording_turns_trade_id_jumps_into_gap_rows(tmp_path, binance_capture):
    with gzip.open(binance_capture, "rt") as handle:
        lines = [
            line.split(" ", 1)[1].rstrip("\n") for line, _ in zip(handle, range(3000), strict=False)
        ]
    trades = [i for i, line in enumerate(lines) if '"@trade"' in line or "@trade" in line[:40]]
    del lines[trades[100] : trades[103]]  # three prints lost on the wire

    async def scenario():
        server, _ = await serve_lines(lines)
        port = server.sockets[0].getsockname()[1]
        try:
            return await asyncio.to_thread(
                run,
                "record",
                tmp_path / "bn",
                "--source",
                "binance",
                "--symbols",
                "ethusdt",
                "--binance-url",
                f"ws://127.0.0.1:{port}",
                "--max-frames",
                len(lines),
                "--quiet",
            )
        finally:
            server.close()

    result = asyncio.run(scenario())
    assert result.exit_code == 0, result.output
    frames = list(read_frames(tmp_path / "bn"))
    assert sum(f.kind == "text" for f in frames) == len(lines)
    (gap,) = [orjson.loads(f.payload) for f in frames if f.kind == "gap"]
    assert gap["kind"] == "trade_id" and gap["missing"] == 3 and gap["symbol"] == "ETHUSDT"
    opened = orjson.loads(next(f.payload for f in frames if f.kind == "open"))
    assert "ethusdt@trade/ethusdt@bookTicker/ethusdt@depth@100ms" in opened["url"]


def test_generic_ws_records_sent_messages_with_secrets_redacted(tmp_path):
    async def scenario():
        server, received = await serve_lines([f'{{"n":{i}}}' for i in range(100)])
        port = server.sockets[0].getsockname()[1]
        try:
            result = await asyncio.to_thread(
                run,
                "record",
                tmp_path / "ws",
                "--source",
                "ws",
                "--url",
                f"ws://127.0.0.1:{port}/feed?apiKey=SECRET123",
                "--send",
                '{"op":"auth","apiKey":"SECRET123","args":["x"]}',
                "--send",
                '{"op":"subscribe"}',
                "--max-frames",
                "100",
                "--quiet",
            )
            return result, received
        finally:
            server.close()

    result, received = asyncio.run(scenario())
    assert result.exit_code == 0, result.output
    assert received[0] == '{"op":"auth","apiKey":"SECRET123","args":["x"]}'  # the server got it
    frames = list(read_frames(tmp_path / "ws"))
    sent = [orjson.loads(f.payload) for f in frames if f.kind == "sent"]
    assert sent == [{"op": "auth", "apiKey": "REDACTED", "args": "REDACTED"}, {"op": "subscribe"}]
    assert [orjson.loads(f.payload)["n"] for f in frames if f.kind == "text"] == list(range(100))
    everything = b"".join(p.read_bytes() for p in (tmp_path / "ws").rglob("*") if p.is_file())
    assert b"SECRET123" not in everything


def test_unreachable_url_is_a_clear_error(tmp_path):
    result = run(
        "record",
        tmp_path / "x",
        "--source",
        "ws",
        "--url",
        "ws://127.0.0.1:9/none",
        "--backoff-max",
        "0.05s",
        "--quiet",
    )
    assert result.exit_code == 1
    assert "cannot connect to ws://127.0.0.1:9/none" in result.output
    assert "check the URL and the network" in result.output
    assert open_capture(tmp_path / "x")["status"] == "closed"  # what there was is sealed


def test_wrong_api_key_is_a_clear_401_error(tmp_path):
    async def scenario():
        feed = SimulatedFeed(7, ["MNQ"], 50)
        server = GatewayServer(feed, feed.contracts, tokens=TokenIssuer("right"))
        await server.start()
        try:
            return await asyncio.to_thread(
                run,
                "record",
                tmp_path / "px",
                "--source",
                "projectx",
                "--symbols",
                "MNQ",
                "--username",
                "me",
                "--api-key",
                "wrong",
                "--api-url",
                server.urls["api"],
                "--market-hub-url",
                server.urls["market_hub"],
                "--quiet",
            )
        finally:
            await server.stop()

    result = asyncio.run(scenario())
    assert result.exit_code == 1
    assert "refused" in result.output and "API key" in result.output
    assert "wrong" not in result.output.replace("wrong or missing", "")


def test_the_sdk_spelling_of_the_credential_variables_works_too(tmp_path, monkeypatch):
    """Only the SDK's variables, and only the API URL: the hubs follow it (the session token
    never goes to TopstepX's hubs because the hub URLs were left out)."""
    for name in ("PROJECTX_USERNAME", "PROJECTX_API_KEY", "PROJECTX_MARKET_HUB_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("PROJECTX_USER_HUB_URL", raising=False)
    monkeypatch.setenv("PROJECT_X_USERNAME", "sdk-user")
    monkeypatch.setenv("PROJECT_X_API_KEY", "right")
    server_urls = {}

    async def scenario():
        feed = SimulatedFeed(7, ["MNQ"], 200)
        server = GatewayServer(feed, feed.contracts, tokens=TokenIssuer("right"))
        await server.start()
        server_urls.update(server.urls)
        monkeypatch.setenv("PROJECTX_API_URL", server.urls["api"])
        try:
            return await asyncio.to_thread(
                run,
                "record",
                tmp_path / "px",
                "--source",
                "projectx",
                "--symbols",
                "MNQ",
                "--max-frames",
                "20",
                "--quiet",
            )
        finally:
            await server.stop()

    result = asyncio.run(scenario())
    assert result.exit_code == 0, result.output
    manifest = open_capture(tmp_path / "px")
    assert manifest["source"]["username"] == "sdk-user"
    assert manifest["source"]["market_hub_url"] == server_urls["market_hub"]
    assert sum(f.kind == "text" for f in read_frames(tmp_path / "px")) >= 20
    from rtcap.capture.endpoints import projectx_credentials

    assert projectx_credentials() == ("sdk-user", "right")
    monkeypatch.setenv("PROJECTX_USERNAME", "rtcap-user")  # rtcap's own name wins
    assert projectx_credentials() == ("rtcap-user", "right")


def test_hub_urls_follow_the_api_url_unless_given(monkeypatch):
    from rtcap.capture.endpoints import (
        TOPSTEPX_API,
        TOPSTEPX_MARKET_HUB,
        TOPSTEPX_USER_HUB,
        projectx_urls,
    )

    for name in ("PROJECTX_API_URL", "PROJECTX_MARKET_HUB_URL", "PROJECTX_USER_HUB_URL"):
        monkeypatch.delenv(name, raising=False)
    assert projectx_urls() == (TOPSTEPX_API, TOPSTEPX_MARKET_HUB, TOPSTEPX_USER_HUB)
    local = "http://127.0.0.1:8123/api"
    assert projectx_urls(local) == (
        local,
        "http://127.0.0.1:8123/hubs/market",
        "http://127.0.0.1:8123/hubs/user",
    )
    monkeypatch.setenv("PROJECTX_API_URL", local)
    monkeypatch.setenv("PROJECTX_USER_HUB_URL", "http://elsewhere/hubs/user")
    assert projectx_urls()[1:] == (
        "http://127.0.0.1:8123/hubs/market",
        "http://elsewhere/hubs/user",
    )
    assert projectx_urls(market_hub_url="http://x/m")[1] == "http://x/m"


def test_missing_credentials_and_busy_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("PROJECTX_API_KEY", raising=False)
    result = run("record", tmp_path / "p", "--source", "projectx", "--symbols", "MNQ")
    assert result.exit_code == 1 and "PROJECTX_API_KEY" in result.output
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rtcap",
            "record",
            str(tmp_path / "busy"),
            "--duration",
            "20s",
            "--quiet",
        ],
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(300):
            if (tmp_path / "busy" / "journal").exists():
                break
            asyncio.run(asyncio.sleep(0.05))
        second = run("record", tmp_path / "busy", "--duration", "1s", "--quiet")
        assert second.exit_code == 1 and "is in use by a recorder" in second.output
    finally:
        first.terminate()
        first.wait(timeout=20)
    assert first.returncode == 0  # SIGTERM flushes and seals
    assert open_capture(tmp_path / "busy")["status"] == "closed"


@pytest.mark.parametrize("speed_option", [["--flush-ms", "0"], ["--fsync", "sometimes"]])
def test_bad_options_exit_2(tmp_path, speed_option):
    result = run("record", tmp_path / "c", *speed_option)
    assert result.exit_code == 2


def test_a_recording_that_fails_before_its_first_row_leaves_nothing_and_can_be_retried(
    tmp_path, monkeypatch
):
    """Host unreachable (or a bad symbol): the error, no empty "closed" capture left behind,
    and running the same command again fails the same way instead of "already holds"."""
    monkeypatch.setenv("PROJECTX_USERNAME", "me")
    monkeypatch.setenv("PROJECTX_API_KEY", "key")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = ["record", tmp_path / "cap", "--source", "projectx", "--symbols", "MNQ",
               "--api-url", f"http://127.0.0.1:{port}/api", "--quiet"]  # fmt: skip
    first, second = run(*command), run(*command)
    for result in (first, second):
        assert result.exit_code == 1
        assert "cannot reach" in result.output and "already" not in result.output
    assert not (tmp_path / "cap").exists()
    existing = tmp_path / "mine"
    existing.mkdir()
    (existing / "notes.txt").write_text("keep me")
    result = run(*[existing if a == tmp_path / "cap" else a for a in command])
    assert result.exit_code == 1 and (existing / "notes.txt").read_text() == "keep me"
