"""The real ProjectX SDK (``project-x-py`` from the package index, in a Python 3.12 virtualenv
of its own) running an ordinary, unmodified TradingSuite strategy against ``rtcap sim`` and
against ``rtcap replay --serve`` of a recorded capture, pointed there by ``rtcap.sdk_shim``.

It must authenticate, find the contract, load non-empty history at 15 seconds and 1 minute,
receive quotes and trades and a NEW_BAR per timeframe; the gateway must log no 404 and no
unknown hub method. ``make test`` runs a short version against the sim (a NEW_BAR at 15 s);
``make test-slow`` waits for minute bars and adds the replay of a recorded capture.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from chaos import harness

import rtcap.sdk_shim

STRATEGY = Path(__file__).with_name("sdk_strategy.py")
SDK_PACKAGE = "project-x-py"


def python_312() -> str | None:
    """A working Python 3.12: ``python3.12`` on PATH if it runs (a pyenv shim may not), else a
    pyenv-installed one."""
    candidates = [
        shutil.which("python3.12"),
        *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12.*/bin/python"))),
    ]
    for candidate in filter(None, candidates):
        done = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 12))"],
            capture_output=True,
            text=True,
        )
        if done.returncode == 0 and done.stdout.strip() == "True":
            return candidate
    return None


@pytest.fixture(scope="session")
def sdk_python(request) -> str:
    """The SDK's virtualenv, made and filled once and kept in the pytest cache."""
    interpreter = python_312()
    if interpreter is None:
        reason = "no working Python 3.12 here (python3.12 or ~/.pyenv/versions/3.12.*)"
        if os.environ.get("RTCAP_REQUIRE_SDK"):  # set by .ci/run: CI must run these tests
            pytest.fail(reason)
        pytest.skip(reason)
    venv = Path(request.config.cache.mkdir("rtcap-sdk-venv"))
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import project_x_py; print(project_x_py.__version__)"]
    if not python.exists() or subprocess.run(check, capture_output=True).returncode != 0:
        subprocess.run([interpreter, "-m", "venv", "--clear", str(venv)], check=True)
        install = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", SDK_PACKAGE],
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert install.returncode == 0, install.stderr[-2000:]
    return str(python)


def hinted(banner_line: str) -> tuple[str, str]:
    """(API URL, shim path) of a gateway's ``SDK  PROJECTX_API_URL=… python PATH strategy.py``
    line: the command a user copies into the SDK's environment."""
    words = shlex.split(banner_line)
    assert words[0] == "SDK" and words[2] == "python" and words[-1] == "strategy.py", words
    variable, _, api_url = words[1].partition("=")
    assert variable == "PROJECTX_API_URL"
    return api_url, words[3]


def run_strategy(python: str, api_url: str, seconds: float, shim: str) -> dict:
    """The strategy in the SDK's virtualenv (no rtcap installed there), as the hint says."""
    env = {
        **os.environ,
        "PROJECT_X_USERNAME": "sdk-tester",
        "PROJECT_X_API_KEY": "any-key-longer-than-ten",
        "PROJECTX_API_URL": api_url,
        "SDK_RUN_SECONDS": str(seconds),
    }
    done = subprocess.run(
        [python, shim, str(STRATEGY)],
        capture_output=True,
        text=True,
        env=env,
        timeout=seconds + 180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"the SDK connects to {api_url}" in done.stderr
    errors = [line for line in done.stderr.splitlines() if '"level":"ERROR"' in line]
    assert not errors, errors[:3]
    return json.loads(done.stdout.strip().splitlines()[-1])


def gateway_log(process: subprocess.Popen) -> str:
    process.send_signal(2)
    _, err = process.communicate(timeout=30)
    return err if isinstance(err, str) else err.decode()


def check_counts(counts: dict, *, minute_bars: bool) -> None:
    assert counts["contract"].startswith("CON.F.US.MNQ.")
    assert counts["history"]["15sec"] > 100 and counts["history"]["1min"] > 100
    assert counts["quotes"] > 0 and counts["trades"] > 0
    assert counts["new_bar"]["15sec"] >= 1
    if minute_bars:
        assert counts["new_bar"]["1min"] >= 1


@pytest.mark.slow
def test_the_real_sdk_runs_an_unmodified_strategy_against_rtcap_sim(sdk_python, full_length):
    sim = harness.start_sim(rate=200)
    api_url, shim = hinted(sim.sdk_hint)
    assert api_url == sim.api
    try:
        counts = run_strategy(sdk_python, api_url, 80 if full_length else 20, shim)
    finally:
        log = gateway_log(sim.process)
    check_counts(counts, minute_bars=full_length)
    assert "unknown REST endpoint" not in log and "Unknown hub method" not in log, log
    print(f"\nSDK against rtcap sim: {counts}")


@pytest.mark.slow
def test_the_real_sdk_runs_against_a_recorded_capture_served_by_replay(
    sdk_python, tmp_path, full_length
):
    capture = tmp_path / "cap"
    duration = "75s" if full_length else "25s"  # minute bars need a minute of streaming
    record = subprocess.run(
        [
            *harness.RTCAP,
            "record",
            str(capture),
            "--duration",
            duration,
            "--rate",
            "100",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert record.returncode == 0, record.stderr
    port = harness.free_port()
    server = subprocess.Popen(
        [*harness.RTCAP, "replay", str(capture), "--serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        api = None
        while api is None and time.monotonic() < deadline:
            line = server.stdout.readline()
            if "REST base" in line:
                api = line.split()[-1]
        assert api, "rtcap replay --serve printed no REST base"
        copied = subprocess.run(  # the shim copied out, as README says for another machine
            [*harness.RTCAP, "sdk-shim", str(tmp_path)], capture_output=True, text=True
        )
        assert copied.returncode == 0, copied.stderr
        shim = tmp_path / "sdk_shim.py"
        assert shim.read_bytes() == Path(rtcap.sdk_shim.__file__).read_bytes()
        counts = run_strategy(sdk_python, api, 80 if full_length else 20, str(shim))
    finally:
        log = gateway_log(server)
    check_counts(counts, minute_bars=full_length)
    assert "unknown REST endpoint" not in log and "Unknown hub method" not in log, log
    print(f"\nSDK against rtcap replay --serve: {counts}")


LIFECYCLE = Path(__file__).with_name("lifecycle_strategy.py")


def lifecycle_traces(api_url: str, runs: dict[str, list[str]]) -> dict[str, list]:
    """The lifecycle script's trace under each library of ``runs`` (library: command), the runs
    started together against the same gateway."""
    env = {
        **os.environ,
        "PROJECT_X_USERNAME": "sdk-tester",
        "PROJECT_X_API_KEY": "any-key-longer-than-ten",
        "PROJECTX_API_URL": api_url,
        "SDK_RUN_SECONDS": "40",
    }
    for name in ("PROJECTX_USERNAME", "PROJECTX_API_KEY", "PROJECTX_MARKET_HUB_URL"):
        env.pop(name, None)
    # Start just after a 15-second bar boundary: the script's start-up (history, connect,
    # handlers) then ends well before the next one, which must come after the first quote. A
    # start-up straddling a boundary would see that bar close before any handler was there.
    time.sleep((1.0 - time.time()) % 15)
    # each run writes to files, not pipes: a run whose pipe filled would stall while the other
    # is waited for, and miss its bar boundary
    with contextlib.ExitStack() as files:
        outputs = {
            library: [files.enter_context(tempfile.TemporaryFile("w+")) for _ in "oe"]
            for library in runs
        }
        running = {
            library: subprocess.Popen(
                [*command, str(LIFECYCLE)],
                stdout=outputs[library][0],
                stderr=outputs[library][1],
                text=True,
                env={**env, "STRATEGY_LIBRARY": library},
            )
            for library, command in runs.items()
        }
        traces = {}
        for library, process in running.items():
            process.wait(timeout=200)
            out, err = (output.seek(0) or output.read() for output in outputs[library])
            assert process.returncode == 0, f"{library}: {err[-3000:]}"
            traces[library] = json.loads(out.strip().splitlines()[-1])
    return traces


@pytest.mark.slow
def test_one_script_sees_the_same_start_up_and_shut_down_from_the_sdk_and_from_rtcap(sdk_python):
    """create() returns connected, the first live print continues the partial bar history
    ended with (the first NEW_BAR comes at the next boundary, after quotes), and is_connected is
    False from disconnect() on, with no event after it: in the SDK and in rtcap alike."""
    sim = harness.start_sim(rate=200)
    api_url, shim = hinted(sim.sdk_hint)
    try:
        traces = lifecycle_traces(
            api_url, {"project_x_py": [sdk_python, shim], "rtcap": [sys.executable]}
        )
    finally:
        gateway_log(sim.process)
    expected = [
        ["created", True],
        ["event quote_update", True],
        ["event new_bar", True],
        ["disconnecting", True],
        ["disconnected", False],
        ["end", False],
    ]
    assert traces["project_x_py"] == expected
    assert traces["rtcap"] == traces["project_x_py"]
