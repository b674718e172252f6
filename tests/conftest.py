"""Shared test configuration: the slow-mode switch and the real Binance capture (the whole
recording in ../shared/data when it is there, else the 3-minute slice in fixtures/).

Recordings made by tests do not roll at midnight (``RTCAP_ROLL_AT=none``, inherited by every
``rtcap`` subprocess): a test that happens to run across 00:00 UTC must not find two captures
where it made one. tests/capture/test_roll.py rolls them on purpose, with ``--roll-every``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["RTCAP_ROLL_AT"] = "none"

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BINANCE_CAPTURE = SHARED_DATA / "binance-spot" / "ethusdt_20240808.gz"
BINANCE_SLICE = (
    Path(__file__).resolve().parents[1] / "fixtures" / "binance-spot" / "ethusdt_20240808_3min.gz"
)
# What each file holds (the READMEs beside them say the same).
BINANCE_COUNTS = {
    BINANCE_CAPTURE.name: {
        "lines": 33_618,
        "bookTicker": 24_077,
        "trade": 6_106,
        "depth@100ms": 3_434,
        "depthSnapshot": 1,
        "trade_minutes": 7,
        "book_ticker_pairs": 577,
    },
    BINANCE_SLICE.name: {
        "lines": 17_492,
        "bookTicker": 12_896,
        "trade": 2_807,
        "depth@100ms": 1_788,
        "depthSnapshot": 1,
        "trade_minutes": 4,
        "book_ticker_pairs": 287,
    },
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow",
        action="store_true",
        help="run tests marked slow at full length (by default they run a short version)",
    )


@pytest.fixture(scope="session")
def full_length(request: pytest.FixtureRequest) -> bool:
    """True under --run-slow: soak/chaos tests scale their trial counts up."""
    return bool(request.config.getoption("--run-slow"))


@pytest.fixture(scope="session")
def binance_capture() -> Path:
    """The real Binance spot capture: the whole one in ../shared/data, else the slice."""
    return BINANCE_CAPTURE if BINANCE_CAPTURE.exists() else BINANCE_SLICE


@pytest.fixture
def binance_counts(binance_capture: Path) -> dict[str, int]:
    """Lines per kind in the capture ``binance_capture`` gives."""
    return BINANCE_COUNTS[binance_capture.name]


@pytest.fixture(params=["compiled", "pure"])
def kernel_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test once on the compiled fast paths and once on the pure-Python reference
    (``rtcap.accel``). The compiled run skips, saying why, where the extension was not built;
    with ``RTCAP_REQUIRE_SPEEDUPS=1`` (CI) test_speedups fails instead."""
    from rtcap import accel, book, pipeline
    from rtcap.codecs import projectx
    from rtcap.storage import schema

    if request.param == "compiled":
        if accel.speedups is None:
            pytest.skip(f"no compiled fast paths in this process: {accel.describe()}")
    else:
        monkeypatch.setattr(projectx, "decode_trades", None)
        monkeypatch.setattr(pipeline, "trade_fold", None)
        monkeypatch.setattr(book, "apply_levels_compiled", None)
        monkeypatch.setattr(schema, "speedups", None)
    return request.param
