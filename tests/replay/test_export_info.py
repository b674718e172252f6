"""``rtcap export`` round trip through ``rtcap sql``, and ``rtcap info``."""

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
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
    assert header == "timestamp,ts_ns,instrument,timeframe,open,high,low,close,volume,trades,gap"
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


def test_parquet_and_csv_exports_have_the_same_columns_with_portable_times(capture, tmp_path):
    for fmt in ("csv", "parquet"):
        out = tmp_path / fmt
        result = run("export", capture, "--out", out, "--timeframes", "1sec", "--format", fmt)
        assert result.exit_code == 0, result.output
    csvs = sorted((tmp_path / "csv").glob("bars_*.csv"))
    parquets = sorted((tmp_path / "parquet").glob("bars_*.parquet"))
    assert len(csvs) == len(parquets) == 2  # MNQ and ES
    instruments = set()
    for csv, parquet in zip(csvs, parquets, strict=True):
        table = pq.read_table(parquet)
        assert table.column_names == csv.read_text().splitlines()[0].split(",")
        assert table.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
        assert table.schema.field("ts_ns").type == table.schema.field("trades").type == pa.int64()
        rows = table.to_pylist()
        assert rows and all(r["ts_ns"] == int(r["timestamp"].timestamp()) * 10**9 for r in rows)
        assert sum(r["trades"] for r in rows) > 0
        lines = [line.split(",") for line in csv.read_text().splitlines()[1:]]
        assert [int(line[1]) for line in lines] == [r["ts_ns"] for r in rows]
        assert [int(line[9]) for line in lines] == [r["trades"] for r in rows]
        assert {line[2] for line in lines} == {r["instrument"] for r in rows}
        instruments |= {r["instrument"] for r in rows}
    assert instruments == {"MNQ", "ES"}
