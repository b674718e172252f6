"""Shared test configuration: the slow-mode switch and the real captures in ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BINANCE_CAPTURE = SHARED_DATA / "binance-spot" / "ethusdt_20240808.gz"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow",
        action="store_true",
        help="run tests marked slow at full length (by default they run a short version)",
    )


@pytest.fixture
def full_length(request: pytest.FixtureRequest) -> bool:
    """True under --run-slow: soak/chaos tests scale their trial counts up."""
    return bool(request.config.getoption("--run-slow"))


@pytest.fixture
def binance_capture() -> Path:
    """The real Binance spot capture; the test is skipped cleanly where shared/ is absent."""
    if not BINANCE_CAPTURE.exists():
        pytest.skip(f"real capture not available at {BINANCE_CAPTURE}")
    return BINANCE_CAPTURE
