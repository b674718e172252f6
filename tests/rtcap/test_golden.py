"""A fixed simulator seed gives the committed bar table, byte for byte."""

from pathlib import Path

from click.testing import CliRunner

from rtcap.cli import main

GOLDEN = Path(__file__).resolve().parents[2] / "fixtures" / "golden" / "sim_seed7_bars.csv"
COMMAND = [
    "simulate",
    "--seed",
    "7",
    "--instruments",
    "MNQ,ES",
    "--seconds",
    "1800",
    "--timeframes",
    "1min,5min,15min",
    "--fill-flat",
    "--format",
    "csv",
]


def test_seed_7_reproduces_the_committed_bar_table():
    result = CliRunner().invoke(main, COMMAND)
    assert result.exit_code == 0, result.output
    expected = GOLDEN.read_text()
    assert result.output == expected
    rows = expected.splitlines()
    assert (
        rows[0]
        == "instrument,timeframe,timestamp,open,high,low,close,volume,trades,flat,gap,complete"
    )
    assert len(rows) - 1 == 2 * (30 + 6 + 2)  # two instruments, every bucket of 30 minutes
