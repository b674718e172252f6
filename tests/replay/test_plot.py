"""``rtcap plot``: the chart's content, and that it really draws in headless Chromium."""

import asyncio
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from rtcap.capture.feeds import local_gateway_feed
from rtcap.capture.recorder import Recorder
from rtcap.capture.session import Backoff
from rtcap.cli import main
from rtcap.gateway.embedded import start_embedded_market
from rtcap.gateway.faults import FaultPlan
from rtcap.storage.writer import CaptureWriter

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def capture_with_gaps(tmp_path_factory):
    path = tmp_path_factory.mktemp("plot") / "cap"

    async def record():
        market = await start_embedded_market(
            5, ["MNQ"], 300, history_days=0, faults=FaultPlan(drop_after_s=1.5)
        )
        writer = CaptureWriter(path, source=market.source_info(), fsync="never")
        writer.open()
        recorder = Recorder(
            [local_gateway_feed(market, ["MNQ"])], writer=writer, backoff=Backoff(0.2, max_s=0.4)
        )
        await recorder.prepare()
        try:
            await recorder.run(4.0)
        finally:
            await market.stop()

    asyncio.run(record())
    return path


def test_plot_writes_candles_volume_indicators_and_shaded_gaps(capture_with_gaps, tmp_path):
    out = tmp_path / "chart.html"
    result = CliRunner().invoke(
        main,
        [
            "plot",
            str(capture_with_gaps),
            "--timeframe",
            "1sec",
            "--indicators",
            "sma:3,rsi:3",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "MNQ 1sec" in result.output
    gaps = int(result.output.split(" gaps shaded")[0].rsplit(", ", 1)[1])
    assert gaps >= 1
    html = out.read_text()
    assert '"type":"candlestick"' in html and '"name":"volume"' in html
    assert '"name":"sma_3"' in html and '"name":"rsi_3"' in html
    assert html.count('"text":"gap"') == gaps
    assert "plotly.js" in html[:5000] or "Plotly" in html  # self-contained, opens offline


def test_plot_from_an_exported_csv_and_bad_input(capture_with_gaps, tmp_path):
    runner = CliRunner()
    assert (
        runner.invoke(
            main,
            [
                "export",
                str(capture_with_gaps),
                "--out",
                str(tmp_path / "x"),
                "--timeframes",
                "1sec",
            ],
        ).exit_code
        == 0
    )
    (csv,) = (tmp_path / "x").glob("bars_*.csv")
    result = runner.invoke(
        main, ["plot", str(csv), "--timeframe", "1sec", "-o", str(tmp_path / "c.html")]
    )
    assert result.exit_code == 0 and (tmp_path / "c.html").stat().st_size > 100_000
    result = runner.invoke(
        main, ["plot", str(csv), "--timeframe", "5min", "-o", str(tmp_path / "d.html")]
    )
    assert result.exit_code == 1 and "has no 5min bars" in result.output
    result = runner.invoke(main, ["plot", str(csv), "--indicators", "magic:3"])
    assert result.exit_code == 2 and "unknown indicator" in result.output


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed here")
def test_chart_draws_in_headless_chromium(capture_with_gaps, tmp_path):
    from PIL import Image

    out = tmp_path / "chart.html"
    assert (
        CliRunner()
        .invoke(
            main,
            [
                "plot",
                str(capture_with_gaps),
                "--timeframe",
                "1sec",
                "--indicators",
                "ema:3",
                "-o",
                str(out),
            ],
        )
        .exit_code
        == 0
    )
    shot = tmp_path / "chart.png"
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--hide-scrollbars",
            "--window-size=1200,1000",
            "--virtual-time-budget=5000",
            f"--screenshot={shot}",
            out.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 1000)
    pixels = list(image.get_flattened_data())
    non_white = sum(1 for p in pixels if sum(p) < 740) / len(pixels)
    greens = sum(1 for r, g, b in pixels if g > r + 40 and g > b)  # rising candles
    reds = sum(1 for r, g, b in pixels if r > g + 60 and r > b + 60)  # falling candles, gaps
    assert non_white > 0.03, "the page is blank"
    assert greens > 200 and reds > 200
    assert len(set(pixels)) > 100
