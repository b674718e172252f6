from click.testing import CliRunner

from rtcap.cli import main


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_simulate_table_prints_bars_and_indicators():
    result = run(
        "simulate",
        "--instruments",
        "MNQ",
        "--seconds",
        "600",
        "--indicators",
        "sma:3,rsi:5",
        "--tail",
        "4",
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("simulated 600s of market (seed 7):")
    assert "MNQ 1min bars (America/Chicago), last 4:" in result.output
    assert "sma_3" in result.output and "rsi_5" in result.output
    assert "MNQ 5min bars" in result.output


def test_simulate_jsonl_rows():
    import orjson

    result = run("simulate", "--seconds", "120", "--timeframes", "1min", "--format", "jsonl")
    rows = [orjson.loads(line) for line in result.output.splitlines()]
    assert [r["timestamp"] for r in rows] == [
        "2025-09-02T13:30:00+00:00",
        "2025-09-02T13:31:00+00:00",
    ]
    assert all(r["volume"] > 0 and r["complete"] for r in rows)


def test_bad_options_give_one_line_errors_and_exit_2():
    result = run("simulate", "--timeframes", "1week")
    assert result.exit_code == 2
    assert "unknown timeframe '1week'" in result.output
    result = run("simulate", "--instruments", "DOGE")
    assert result.exit_code == 2 and "unknown instrument 'DOGE'" in result.output
    result = run("simulate", "--indicators", "wat:3")
    assert result.exit_code == 2 and "unknown indicator" in result.output


def test_version_and_help():
    assert run("--version").output.startswith("rtcap, version ")
    assert "simulate" in run("--help").output
