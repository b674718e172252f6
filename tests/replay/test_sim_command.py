"""``rtcap sim`` as a user runs it: a real process on loopback, stopped with SIGTERM."""

import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import websockets
from chaos import harness
from click.testing import CliRunner
from gateway_client import collect, invoke, pushes

from rtcap.cli import main


async def test_rtcap_sim_prints_urls_serves_and_stops_on_sigterm():
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rtcap",
            "sim",
            "--port",
            "0",
            "--rate",
            "300",
            "--instruments",
            "MNQ",
            "--api-key",
            "k3y",
            "--history-days",
            "0.5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [process.stdout.readline() for _ in range(8)]
        banner = "".join(lines)
        assert re.match(
            r"rtcap sim: simulated market \(seed 7, MNQ\) on 127\.0\.0\.1:\d+", lines[0]
        )
        api = re.search(r"REST base\s+(\S+)", banner).group(1)
        hub = re.search(r"market hub\s+(\S+)", banner).group(1)
        contract = re.search(r"MNQ=(\S+)", banner).group(1)
        assert "the one given with --api-key" in banner
        async with aiohttp.ClientSession() as http:
            refused = await http.post(f"{api}/Auth/loginKey", json={"userName": "u", "apiKey": "x"})
            assert refused.status == 401
            answer = await (
                await http.post(f"{api}/Auth/loginKey", json={"userName": "u", "apiKey": "k3y"})
            ).json()
        ws = await websockets.connect(
            hub.replace("http", "ws") + "?access_token=" + answer["token"]
        )
        await ws.send('{"protocol":"json","version":1}\x1e')
        assert await ws.recv() == "{}\x1e"
        await invoke(ws, "SubscribeContractQuotes", contract)
        quotes = pushes(await collect(ws, 1.0), "GatewayQuote")
        assert len(quotes) > 20 and quotes[0]["arguments"][1]["symbol"] == "F.US.MNQ"
        await ws.close()
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert re.search(r"stopped after serving \d+ records to 1 connections", out)
    assert "k3y" not in out + err and answer["token"] not in out + err


def test_rtcap_sim_refuses_a_port_in_use():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "rtcap", "sim", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert f"cannot serve on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_sdk_hint_runs_where_rtcap_is_not_installed(tmp_path):
    """The banner's SDK line names the shim by a path that a Python with nothing but its
    standard library runs (``python -m rtcap.sdk_shim`` fails in the SDK's own environment)."""
    sim = harness.start_sim(rate=20)
    try:
        words = shlex.split(sim.sdk_hint)
    finally:
        sim.stop()
    assert words[:3] == ["SDK", f"PROJECTX_API_URL={sim.api}", "python"]
    assert words[-1] == "strategy.py" and words[3].endswith("sdk_shim.py")
    bare = subprocess.run(  # -I -S: no site-packages, no rtcap, no project-x-py
        [sys.executable, "-I", "-S", words[3], "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=30,
    )
    assert bare.returncode == 0 and "rtcap sdk-shim" in bare.stdout
    copied = CliRunner().invoke(main, ["sdk-shim", str(tmp_path)])
    assert copied.exit_code == 0, copied.output
    assert (tmp_path / "sdk_shim.py").read_bytes() == Path(words[3]).read_bytes()
