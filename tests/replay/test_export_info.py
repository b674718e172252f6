"""``rtcap export`` round trip through ``rtcap sql``, and ``rtcap info``."""

import orjson
import pytest
from click.testing import CliRunner

from rtcap.cli import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    path = tmp_path_factory.mktemp("exp") / "cap"
    assert run("record", path, "--duration", "3.5s", "--rate", "300", "--quiet").exit_code == 0
    return path


def test_export_then_sql_gives_the_bars_replay_printed(capture, tmp_path):
    printed = run("replay", capture, "--timeframes", "1sec,2sec", "--format", "csv")
    replay_rows = sorted(
        (row[1], row[2], row[0], float(row[3]), float(row[6]), float(row[7]))
        for row in (line.split(",") for line in printed.stdout.splitlines()[1:])
    )
    result = run("export", capture, "--out", tmp_path / "out", "--timeframes", "1sec,2sec")
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert [n.split("_")[0] for n in names] == ["bars", "bars", "snapshot"]
    header = next((tmp_path / "out").glob("bars_*.csv")).read_text().splitlines()[0]
    assert header == "timestamp,timeframe,open,high,low,close,volume"
    counts = run(
        "sql",
        tmp_path / "out",
        "-c",
        "select timeframe, count(*) n from bars group by 1 order by 1",
        "--format",
        "json",
    )
    assert counts.exit_code == 0, counts.output
    by_tf = {row["timeframe"]: row["n"] for row in orjson.loads(counts.stdout)}
    assert by_tf == {tf: sum(r[1] == tf for r in replay_rows) for tf in ("1sec", "2sec")}
    exported = run(
        "sql",
        tmp_path / "out",
        "-c",
        "select instrument, timeframe, strftime(timestamp AT TIME ZONE 'America/Chicago', "
        "'%Y-%m-%dT%H:%M:%S') || '-06:00', open, close, volume from bars",
        "--format",
        "csv",
    )
    rows = sorted(
        (r[0], r[1], r[2], float(r[3]), float(r[4]), float(r[5]))
        for r in (line.split(",") for line in exported.stdout.splitlines()[1:])
    )
    assert rows == replay_rows and len(rows) >= 4
    snapshot = orjson.loads(next((tmp_path / "out").glob("snapshot_*.json")).read_bytes())
    assert set(snapshot) == {"export_timestamp", "capture", "data_summary", "recent_data"}
    assert snapshot["data_summary"]["bars"]["MNQ"]["1sec"] == sum(
        r[0] == "MNQ" and r[1] == "1sec" for r in replay_rows
    )
    mnq_1sec = sum(r[0] == "MNQ" and r[1] == "1sec" for r in replay_rows)
    assert len(snapshot["recent_data"]["bars"]["MNQ"]["1sec"]) == min(5, mnq_1sec)
    assert all(
        len(v) <= 5 for tfs in snapshot["recent_data"]["bars"].values() for v in tfs.values()
    )


def test_info_reports_and_checks_segments(capture, tmp_path):
    result = run("info", capture, "--verify-checksums")
    assert result.exit_code == 0, result.output
    assert "(closed, sim source)" in result.output
    assert "compression" in result.output and "  ok" in result.output
    assert "skew      receive − exchange time: median" in result.output
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(capture, copy)
    part = next((copy / "frames").rglob("*.parquet"))
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 1
    part.write_bytes(bytes(data))
    result = run("info", copy, "--verify-checksums")
    assert result.exit_code == 1
    assert f"{part.relative_to(copy)}" in result.output and "DAMAGED" in result.output
    assert f"{part} is damaged: sha256" in result.output
    assert result.output.strip().endswith("are missing or damaged (listed above)")
