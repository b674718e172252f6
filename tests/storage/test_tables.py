"""A dataset root is a set of tables: ``ROOT/frames`` and ``ROOT/bars``, hive-partitioned by the
UTC date of the rows, then source and recorder, which any engine reads; rtcap keeps reading the
same captures through their manifests, recovers them, moves older roots in with ``migrate``,
and keeps them on a store the same way. (The four engines together, Spark included, are in
tests/spark.)"""

import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import orjson
import polars as pl
import pyarrow.dataset as ds
import pyarrow.fs as pafs
from click.testing import CliRunner
from helpers import across_midnight, write_capture

from rtcap.analysis import sparkplan, sparktasks
from rtcap.cli import main
from rtcap.simulator import MarketSimulator
from rtcap.storage.dataset import capture_path
from rtcap.storage.integrity import read_frames


def run(*args, env=None):
    return CliRunner(env=env).invoke(main, [str(a) for a in args])


def sql_rows(*args):
    result = run("sql", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return orjson.loads(result.output)


def test_rows_are_partitioned_by_their_own_utc_date(tmp_path):
    root = tmp_path / "root"
    capture = across_midnight(root)
    assert not (capture / "frames").exists()
    dates = sorted(p.name for p in (root / "frames").iterdir())
    assert dates == ["date=2026-03-02", "date=2026-03-03"]
    wrong = duckdb.sql(f"""
        select count(*) filter (where date <> cast(recv_time as date)), count(*)
        from read_parquet('{root}/frames/**/*.parquet', hive_partitioning = true)
    """).fetchall()[0]
    frames = list(read_frames(capture))
    assert wrong == (0, len(frames))
    # what rtcap reads through the manifest is what the tables hold
    (mine,) = sql_rows(root, "-c", "select count(*) as n, sum(seq)::bigint as s from frames")
    assert mine == {"n": len(frames), "s": sum(f.seq for f in frames)}
    manifest = orjson.loads((capture / "manifest.json").read_bytes())
    assert manifest["tables"] == {"source": "sim", "recorder": "m", "day": "2026-03-02"}
    assert all(f["path"].startswith("../../../frames/date=2026-03-0")
               for s in manifest["segments"] for f in s["files"])  # fmt: skip
    assert run("verify", root).exit_code == 0


def test_three_engines_read_the_tables_as_rtcap_sql_reads_the_root(tmp_path):
    root = tmp_path / "root"
    for recorder in ("a", "b"):  # one after the other: the same feed, never at once
        result = run("record", "--dataset", root, "--recorder", recorder, "--duration", "2s",
                     "--rate", "300", "--bars", "1sec", "--quiet")  # fmt: skip
        assert result.exit_code == 0, result.output
    across_midnight(root)
    query = "select capture, count(*) as n, sum(seq)::bigint as s from frames group by 1"
    want = sorted(
        (r["capture"].rsplit("=", 1)[-1], r["n"], r["s"]) for r in sql_rows(root, "-c", query)
    )
    glob = f"{root}/frames/**/*.parquet"
    polars = pl.scan_parquet(glob, hive_partitioning=True).group_by("recorder").agg(
        pl.len().alias("n"), pl.col("seq").sum().alias("s")).collect()  # fmt: skip
    duck = duckdb.sql(f"select recorder, count(*), sum(seq) from read_parquet('{glob}', "
                      "hive_partitioning = true) group by 1").fetchall()  # fmt: skip
    arrow = ds.dataset(root / "frames", partitioning="hive").to_table()
    arrow_rows = (
        pl.from_arrow(arrow).group_by("recorder").agg(pl.len().alias("n"), pl.col("seq").sum())
    )
    assert sorted(polars.iter_rows()) == want
    assert sorted((r, n, int(s)) for r, n, s in duck) == want
    assert sorted(arrow_rows.iter_rows()) == want
    bars = sql_rows(root, "-c", "select count(*) as n from bars")[0]["n"]
    assert bars >= 2
    assert duckdb.sql(f"select count(*) from read_parquet('{root}/bars/**/*.parquet', "
                      "hive_partitioning = true)").fetchall()[0][0] == bars  # fmt: skip


def test_a_crashed_dataset_recorder_is_recovered_into_the_tables(tmp_path):
    """A recorder killed mid-seal leaves a journal, a temporary in the tables and (simulated
    here) a sealed file its manifest never listed: recover seals, adopts and removes only what
    is the capture's own."""
    root = tmp_path / "root"
    capture = across_midnight(root, seconds=60)
    manifest = orjson.loads((capture / "manifest.json").read_bytes())
    listed = manifest["segments"].pop()  # sealed, but the manifest never heard of it
    manifest["frames"] -= listed["rows"]
    manifest["last_seq"] = listed["first_seq"] - 1
    manifest.pop("feeds", None)
    (capture / "manifest.json").write_bytes(orjson.dumps(manifest))
    folder = root / "frames" / "date=2026-03-03" / "source=sim" / "recorder=m"
    temporary = folder / ".part-20260302-000099.parquet.tmp"
    temporary.write_bytes(b"half a file")
    other = root / "frames" / "date=2026-03-03" / "source=sim" / "recorder=x"
    other.mkdir(parents=True)
    (other / ".part-20260302-000001.parquet.tmp").write_bytes(b"someone else's")
    result = run("recover", capture)
    assert result.exit_code == 0, result.output
    assert not temporary.exists() and (other / ".part-20260302-000001.parquet.tmp").exists()
    frames = list(read_frames(capture))
    assert [f.seq for f in frames] == list(range(listed["last_seq"] + 1))
    assert run("verify", capture).exit_code == 0


def test_migrate_moves_an_older_root_into_the_tables(tmp_path):
    root = tmp_path / "root"
    old = Path(capture_path(root, "sim", "2025-09-02", "a"))
    frames = list(MarketSimulator(3, ("MNQ",), rate=100).frames(duration_s=60))
    write_capture(old, frames, source={"kind": "sim", "seed": 3},
                  segment_max_bytes=60_000).close()  # fmt: skip
    totals = "select count(*) as n, sum(seq)::bigint as s, sum(bytes)::bigint as b from frames"
    before = sql_rows(root, "-c", totals)
    replay = run("replay", root, "--timeframes", "15sec", "--format", "csv")
    assert (old / "frames").is_dir() and not (root / "frames").exists()
    migrated = run("migrate", root)
    assert migrated.exit_code == 0, migrated.output
    assert "in the tables" in migrated.output
    assert not (old / "frames").exists()
    assert len(list((root / "frames").glob("date=2025-09-02/source=sim/recorder=a/*.parquet")))
    assert sql_rows(root, "-c", totals) == before
    after = run("replay", root, "--timeframes", "15sec", "--format", "csv")
    assert after.stdout == replay.stdout and after.stdout.count("\n") >= 2
    again = run("migrate", root)
    assert again.exit_code == 0 and "nothing to do" in again.output


def test_tables_on_a_store(tmp_path, monkeypatch):
    """record --dataset s3://… stages the dataset's tree and uploads into the root's tables;
    readers take the root or one capture's URI, and an engine reads the tables on the store."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chaos"))
    import harness

    moto, endpoint = harness.start_moto()
    try:
        env = {**os.environ, **harness.store_env(endpoint, tmp_path / "cache")}
        fs = harness.store_fs(endpoint)
        fs.create_dir("tapes")
        done = subprocess.run(
            [*harness.RTCAP, "record", "--dataset", "s3://tapes/ds", "--recorder", "a",
             "--duration", "2s", "--rate", "300", "--quiet"],
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        uri = re.search(r"into (s3://[^ :]+)", done.stdout + done.stderr).group(1)
        selector = pafs.FileSelector("tapes/ds", recursive=True)
        keys = sorted(i.path for i in fs.get_file_info(selector) if i.type == pafs.FileType.File)
        assert [k for k in keys if k.endswith(".parquet")] and all(
            k.startswith(("tapes/ds/frames/date=", "tapes/ds/bars/date="))
            for k in keys if k.endswith(".parquet")
        )  # fmt: skip
        table = ds.dataset("tapes/ds/frames", filesystem=fs, partitioning="hive").to_table()
        counted = subprocess.run([*harness.RTCAP, "sql", "s3://tapes/ds", "-c",
                                  "select count(*) from frames", "--format", "csv"],
                                 env=env, capture_output=True, text=True, check=True)  # fmt: skip
        assert int(counted.stdout.split()[-1]) == table.num_rows > 100
        verified = subprocess.run([*harness.RTCAP, "verify", uri], env=env, capture_output=True,
                                  text=True, check=False)  # fmt: skip
        assert verified.returncode == 0, verified.stderr
        assert set(table.column("recorder").to_pylist()) == {"a"}
        # Spark's tasks read the same tables through the store's URIs (planned from manifests)
        for name, value in harness.store_env(endpoint, tmp_path / "cache").items():
            monkeypatch.setenv(name, str(value))
        plan = sparkplan.plan("s3://tapes/ds")
        read = sum(sparktasks.read_piece(piece).num_rows for piece in plan.pieces)
        assert plan.pieces[0]["uri"].startswith("s3://tapes/ds/frames/date=")
        assert read == table.num_rows
    finally:
        moto.terminate()


def test_a_manifest_claiming_another_captures_tables_is_refused(tmp_path):
    """A capture lists files three levels up only as the tables of the folder it is in: a
    manifest copied beside another recorder's folder would read (and recovery would tidy)
    files that are not its own."""
    root = tmp_path / "root"
    capture = across_midnight(root, seconds=30)
    elsewhere = Path(capture_path(root, "sim", "2026-03-02", "x"))
    elsewhere.mkdir(parents=True)
    (elsewhere / "manifest.json").write_bytes((capture / "manifest.json").read_bytes())
    for command in (["info", elsewhere], ["replay", elsewhere]):
        result = run(*command)
        assert result.exit_code == 1, result.output
        assert "its 'tables' are not those of the folder it is in" in result.output
    before = sorted(p.name for p in (root / "frames").rglob("*.parquet"))
    recovered = run("recover", elsewhere)  # keeps the manifest aside, adopts nothing of m's
    assert recovered.exit_code == 0 and "kept as manifest.json.damaged" in recovered.output
    assert sorted(p.name for p in (root / "frames").rglob("*.parquet")) == before
    assert orjson.loads((elsewhere / "manifest.json").read_bytes())["frames"] == 0
    assert run("verify", capture).exit_code == 0
