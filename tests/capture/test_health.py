"""A recorder's health from outside: Prometheus /metrics and /healthz scraped by a real HTTP
client, and ``rtcap status`` reading the status file of a capture another process records."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time

import aiohttp
import orjson
from chaos import harness
from click.testing import CliRunner
from helpers import samples

from rtcap.capture.feeds import local_gateway_feed
from rtcap.capture.metrics import MetricsServer
from rtcap.capture.recorder import Recorder
from rtcap.cli import main
from rtcap.gateway.embedded import start_embedded_market
from rtcap.storage.integrity import open_capture, read_frames
from rtcap.storage.writer import CaptureWriter


async def test_metrics_scraped_over_http_agree_with_the_capture(tmp_path):
    market = await start_embedded_market(instruments=["MNQ"], rate=300)
    writer = CaptureWriter(tmp_path / "cap", source=market.source_info())
    recorder = Recorder([local_gateway_feed(market, ["MNQ"])], writer=writer, max_frames=400)
    server = MetricsServer(recorder)
    try:
        await asyncio.to_thread(writer.open)
        await server.start()
        await recorder.prepare()
        url = f"http://127.0.0.1:{server.port}"
        async with aiohttp.ClientSession() as http:
            running = asyncio.create_task(recorder.run(30))
            await asyncio.sleep(0.8)
            during = await http.get(f"{url}/metrics")
            assert during.status == 200
            assert during.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            early = samples(await during.text())
            health = await http.get(f"{url}/healthz")
            assert (health.status, await health.text()) == (200, "ok\n")
            await running
            final = samples(await (await http.get(f"{url}/metrics")).text())
    finally:
        await server.stop()
        await market.stop()
    frames = list(read_frames(tmp_path / "cap"))
    data = [f for f in frames if f.kind == "text"]
    assert (
        0
        < early['rtcap_frames_total{stream="market"}']
        <= final['rtcap_frames_total{stream="market"}']
    )
    assert final['rtcap_frames_total{stream="market"}'] == len(data) >= 400
    assert final['rtcap_bytes_total{stream="market"}'] == sum(len(f.payload) for f in data)
    assert final["rtcap_rows_total"] == len(frames) == open_capture(tmp_path / "cap")["frames"]
    assert final["rtcap_journal_flush_seconds_count"] >= 3
    assert final['rtcap_connected{stream="market"}'] == 0  # it stopped
    assert final["rtcap_seal_backlog_segments"] == 0 and final["rtcap_journal_paused"] == 0
    assert final["rtcap_disk_free_bytes"] > 0


def test_a_stalled_feed_is_degraded_in_healthz_and_in_rtcap_status(tmp_path):
    sim = harness.start_sim(rate=300, extra=("--stall-after", "1s", "--stall-for", "20s"))
    capture = tmp_path / "cap"
    process = harness.start_recorder(capture, sim, "--metrics-port", "0")
    try:
        port = None
        deadline = time.monotonic() + 30
        while port is None and time.monotonic() < deadline:
            line = process.stderr.readline().decode()
            if match := re.search(r"http://127\.0\.0\.1:(\d+)/metrics", line):
                port = int(match.group(1))
        assert port, "record printed no metrics address"
        harness.wait_for_journal(capture, process)

        async def health():
            async with aiohttp.ClientSession() as http:
                answer = await http.get(f"http://127.0.0.1:{port}/healthz")
                return answer.status, await answer.text()

        assert asyncio.run(health())[0] == 200
        time.sleep(3)  # the stall began a second after connecting
        status, text = asyncio.run(health())
        assert status == 503 and text.startswith("degraded: market: no frame for"), text
        shown = CliRunner().invoke(main, ["status", str(tmp_path)])
        assert shown.exit_code == 1, shown.output
        assert "recording (pid" in shown.output and "degraded: market: no frame" in shown.output
        state = orjson.loads((capture / "status.json").read_bytes())
        assert state["health"] == "degraded" and state["pid"] == process.pid
    finally:
        harness.stop(process)
        sim.stop()
    shown = CliRunner().invoke(main, ["status", str(capture)])
    assert shown.exit_code == 0 and "finished, last seen" in shown.output


def test_status_of_a_recording_in_another_process_and_of_nothing(tmp_path):
    capture = tmp_path / "day" / "cap"
    process = subprocess.Popen(
        [sys.executable, "-m", "rtcap", "record", str(capture), "--duration", "6s", "--quiet"],
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not (capture / "status.json").exists():
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.05)
        time.sleep(1.5)
        shown = CliRunner().invoke(main, ["status", str(tmp_path)])
        assert shown.exit_code == 0, shown.output
        assert f"{capture}: recording (pid {process.pid}" in shown.output
        assert re.search(r"market\s+connected\s+[\d,]+ frames", shown.output)
    finally:
        process.terminate()
        process.wait(30)
    empty = CliRunner().invoke(main, ["status", str(tmp_path / "day" / "nothing")])
    assert empty.exit_code == 1 and "nothing at" in empty.output
