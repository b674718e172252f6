"""Spark (local mode, Java 17) over a dataset root of a real Binance capture and a simulated
feed split across recorders in time: the views agree with ``rtcap sql``'s, Spark SQL 1-minute
bars = DuckDB 1-minute bars = kernel bars on the real capture, and the distributed bar job
(one piece of a segment per task) equals ``rtcap export ROOT`` bar for bar."""

import os
import re
import shutil
import subprocess
import sys

import orjson
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from helpers import across_midnight, bar_rows, downgrade, exported_bars, write_capture

from rtcap.analysis.views import connect
from rtcap.cli import main
from rtcap.models import Frame
from rtcap.pipeline import Pipeline
from rtcap.simulator import MarketSimulator
from rtcap.storage.integrity import read_frames
from rtcap.timeutil import NS

spark_module = pytest.importorskip("rtcap.analysis.spark")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def spark():
    if shutil.which("java") is None:
        if os.environ.get("RTCAP_REQUIRE_SPARK"):
            pytest.fail("Spark needs Java 17 and none is installed (.ci/run installs it)")
        pytest.skip("no Java runtime here: Spark's local mode cannot start")
    session = spark_module.session(master="local[2]")
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def root(tmp_path_factory, binance_capture, full_length):
    folder = tmp_path_factory.mktemp("dataset")
    result = run("import", "--format", "hftbacktest", binance_capture, folder / "binance-eth")
    assert result.exit_code == 0, result.output
    # one simulated feed, recorded by several recorders one after the other
    recorders = 3 if full_length else 2
    market = MarketSimulator(20, ("MNQ", "ES"), rate=150)
    frames = list(market.frames(duration_s=120 * recorders))
    size = len(frames) // recorders
    for index in range(recorders):
        part = frames[index * size : (index + 1) * size]
        write_capture(folder / f"sim-{index}", with_lifecycle(part),
                      source={"kind": "sim", "seed": 20, "rate": 150},
                      segment_max_bytes=1_000_000, row_group_rows=5_000).close()  # fmt: skip
    return folder


def with_lifecycle(frames):
    """The session's connection rows around the market frames, and a silence in the middle."""
    first, middle, last = frames[0].recv_ns, frames[len(frames) // 2], frames[-1].recv_ns

    def row(row_kind, at, /, **detail):
        return Frame(0, at, 0, 1, "market", row_kind, orjson.dumps(detail))

    silence = row(
        "gap", middle.recv_ns, kind="silence", from_ns=middle.recv_ns - 6 * NS,
        to_ns=middle.recv_ns, seconds=6.0,
    )  # fmt: skip
    return [
        row("open", first - 1, url="ws://127.0.0.1:1/hubs/market"),
        *frames[: len(frames) // 2],
        silence,
        *frames[len(frames) // 2 :],
        row("close", last + 1, code=1000, reason="", by="client"),
    ]


def duck(root, sql):
    return sorted(connect([root]).execute(sql).fetchall())


def test_views_match_rtcap_sql(spark, root):
    assert spark_module.register_views(spark, root) == list(spark_module.VIEWS)
    for sql in (
        "select capture, count(*), sum(bytes), min(recv_ns), max(seq) from frames group by 1",
        "select capture, symbol, count(*), round(sum(price * volume), 4) from trades group by 1, 2",
        "select capture, symbol, count(*), round(sum(bid + ask), 4) from quotes group by 1, 2",
        "select capture, kind, count(*) from lifecycle group by 1, 2",
        "select capture, gap_kind, count(*), sum(missing) from gaps group by 1, 2",
    ):
        mine = sorted(tuple(row) for row in spark.sql(sql).collect())
        assert mine == duck(root, sql), sql
        assert mine, sql
    trades = {
        r[0]: r[1] for r in spark.sql("select capture, count(*) from trades group by 1").collect()
    }
    assert trades["binance-eth"] > 1000 and trades["sim-0"] > 1000


def test_one_minute_bars_agree_in_spark_sql_duckdb_and_the_kernel(spark, root):
    spark_module.register_views(spark, root)
    query = """
        select floor(unix_micros(exch_time) / 60000000) * 60000 as minute,
               min_by(price, seq * 1000 + print_index), max(price), min(price),
               max_by(price, seq * 1000 + print_index), sum(volume), count(*)
        from trades where capture = 'binance-eth' group by 1 order by 1
    """
    spark_bars = [tuple(r) for r in spark.sql(query).collect()]
    duck_bars = duck(
        root,
        """
        select floor(epoch_us(exch_time) / 60000000) * 60000, arg_min(price, seq), max(price),
               min(price), arg_max(price, seq), sum(volume), count(*)
        from trades where capture = 'binance-eth' group by 1 order by 1
        """,
    )
    pipeline = Pipeline(None, ["1min"], codec="auto")
    for frame in read_frames(root / "binance-eth"):
        pipeline.feed(frame)
    kernel = [
        (b.start_ns // 1_000_000, b.open, b.high, b.low, b.close, b.volume, b.trades)
        for b in pipeline.instrument("ETHUSDT").builder.bars("1min")
    ]
    assert len(kernel) >= 4
    for a, b, c in zip(spark_bars, duck_bars, kernel, strict=True):
        assert a[0] == b[0] == c[0] and a[1:5] == b[1:5] == c[1:5] and a[6] == b[6] == c[6]
        assert a[5] == pytest.approx(b[5], rel=1e-12) and b[5] == pytest.approx(c[5], rel=1e-12)


def test_distributed_bar_job_equals_export_of_the_root_bar_for_bar(spark, root, tmp_path):
    out = tmp_path / "spark-bars"
    spark_module.bars_job(spark, f"file://{root}", ["1min", "5min"], out, piece_rows=3_000)
    mine = bar_rows(pq.read_table(out).to_pylist())
    local = exported_bars(root, tmp_path / "export")
    assert mine == local and {r[0] for r in local} == {"ETHUSDT", "MNQ", "ES"}
    # the recorders' boundaries fall inside bars that only the merge makes whole
    alone = {bar for capture in root.iterdir()
             for bar in exported_bars(capture, tmp_path / capture.name)}  # fmt: skip
    assert set(local) - alone


def test_a_capture_older_than_frames_2_reads_as_it_is(spark, tmp_path):
    frames = list(MarketSimulator(2, ("MNQ",)).frames(duration_s=20))
    write_capture(tmp_path / "old", frames).close()
    downgrade(tmp_path / "old")
    spark_module.register_views(spark, tmp_path / "old")
    assert spark.sql("select count(*) from frames").collect()[0][0] == len(frames)
    seqs = [r[0] for r in spark.sql("select seq from frames order by seq").collect()]
    assert seqs == [f.seq for f in read_frames(tmp_path / "old")]


def test_spark_commands_query_and_build_bars(spark, root, tmp_path):
    query = run(
        "spark-sql", root, "-c", "select capture, count(*) as n from frames group by 1 order by 1",
        "--format", "json",
    )  # fmt: skip
    assert query.exit_code == 0, query.output
    counts = {r["capture"]: r["n"] for r in orjson.loads(query.stdout)}
    assert counts == dict(duck(root, "select capture, count(*) from frames group by 1"))
    bad = run("spark-sql", root, "-c", "select nope from trades")
    assert (
        bad.exit_code == 1 and "UNRESOLVED_COLUMN" in bad.output and "Traceback" not in bad.output
    )
    bars = run("spark-bars", root, "--out", tmp_path / "bars", "--timeframes", "1min")
    assert bars.exit_code == 0, bars.output
    written = pq.read_table(tmp_path / "bars")
    assert f"wrote {written.num_rows:,} bars (1min)" in bars.output and written.num_rows > 5
    inside = run("spark-bars", root, "--out", root / "sim-0" / "bars-out")
    assert inside.exit_code != 0 and "inside" in inside.output
    uri = run("spark-sql", f"file://{root}", "--recorders", "sim-1", "-c",
              "select capture, count(*) as n from trades group by 1", "--format", "json")  # fmt: skip
    assert uri.exit_code == 0, uri.output
    assert orjson.loads(uri.stdout) == [
        {"capture": "sim-1", "n": duck(root / "sim-1", "select count(*) from trades")[0][0]}
    ]


def test_a_damaged_segment_fails_the_job_with_one_line(spark, tmp_path):
    frames = list(MarketSimulator(3, ("MNQ",)).frames(duration_s=30))
    write_capture(tmp_path / "c", frames).close()
    (part,) = (tmp_path / "c").glob("frames/*/part-*.parquet")
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))
    result = run("spark-bars", tmp_path / "c", "--out", tmp_path / "bars", "--master", "local[1]")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert re.fullmatch(r"Error: .*part-\d+\.parquet \(capture c\) is damaged: sha256 \w+…, "
                        r"the manifest says \w+…: restore it from a backup.*\n", result.output)  # fmt: skip


def test_executors_without_rtcap_fail_with_one_line_naming_the_fix(spark, tmp_path):
    """Executors whose Python lacks rtcap (a cluster nobody shipped it to): a bare virtualenv of
    this interpreter stands for them. (``spark``: Java is here; the job runs in a process of
    its own, whose executors get that bare Python.)"""
    bare = tmp_path / "bare"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", bare], check=True)
    frames = list(MarketSimulator(4, ("MNQ",)).frames(duration_s=10))
    write_capture(tmp_path / "c", frames).close()
    env = {**os.environ, "PYSPARK_PYTHON": str(bare / "bin" / "python")}
    result = subprocess.run(
        [sys.executable, "-m", "rtcap", "spark-bars", tmp_path / "c", "--out", tmp_path / "out",
         "--master", "local[1]"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: Spark's executors cannot import rtcap: ship it with the job")
    assert "spark.submit.pyFiles" in last and "PYSPARK_PYTHON=./env/bin/python" in last


def test_the_bars_view_holds_the_bars_a_recorder_built_live(spark, tmp_path):
    recorded = run("record", tmp_path / "live", "--duration", "3s", "--rate", "300", "--bars",
                   "1sec", "--quiet")  # fmt: skip
    assert recorded.exit_code == 0, recorded.output
    spark_module.register_views(spark, tmp_path / "live")
    sql = "select capture, instrument, timeframe, count(*), sum(volume), max(high) from bars "
    sql += "group by 1, 2, 3"
    mine = sorted(tuple(row) for row in spark.sql(sql).collect())
    assert mine == duck(tmp_path / "live", sql) and sum(row[3] for row in mine) >= 2


def test_four_engines_read_a_dataset_roots_tables_as_rtcap_sql_does(spark, tmp_path):
    """polars, DuckDB, pyarrow and Spark each read ROOT/frames and ROOT/bars as hive tables,
    with no error, and count what `rtcap sql ROOT` counts per recorder and date."""
    import duckdb
    import polars as pl
    import pyarrow.dataset as ds

    root = tmp_path / "root"
    for recorder in ("a", "b"):  # one after the other: the same feed, never at once
        result = run("record", "--dataset", root, "--recorder", recorder, "--duration", "2s",
                     "--rate", "300", "--bars", "1sec", "--quiet")  # fmt: skip
        assert result.exit_code == 0, result.output
    across_midnight(root, seconds=120)  # rows on two UTC dates
    query = (
        "select capture, cast(recv_time as date) as day, count(*) as n, sum(seq)::bigint as s "
        "from frames group by 1, 2"
    )
    mine = run("sql", root, "-c", query, "--format", "json")
    assert mine.exit_code == 0, mine.output
    want = sorted(
        (r["capture"].rsplit("=", 1)[-1], r["day"], r["n"], r["s"])
        for r in orjson.loads(mine.output)
    )
    assert len({day for _, day, _, _ in want}) == 3  # today, and both sides of a midnight

    def rows(found):
        return sorted((str(recorder), str(date), n, int(s)) for recorder, date, n, s in found)

    frames = f"{root}/frames"
    polars = (
        pl.scan_parquet(f"{frames}/**/*.parquet", hive_partitioning=True)
        .group_by("recorder", "date")
        .agg(pl.len(), pl.col("seq").sum())
        .collect()
    )
    duck = duckdb.sql(
        f"select recorder, date, count(*), sum(seq) from read_parquet('{frames}/**/*.parquet', "
        "hive_partitioning = true) group by 1, 2"
    ).fetchall()
    arrow = pl.from_arrow(ds.dataset(frames, partitioning="hive").to_table())
    arrow = arrow.group_by("recorder", "date").agg(pl.len(), pl.col("seq").sum())
    sparked = (
        spark.read.parquet(frames).groupBy("recorder", "date").agg({"seq": "sum", "*": "count"})
    )
    sparked = [(r["recorder"], r["date"], r["count(1)"], r["sum(seq)"]) for r in sparked.collect()]
    assert rows(polars.iter_rows()) == want
    assert rows(duck) == want
    assert rows(arrow.iter_rows()) == want
    assert rows(sparked) == want
    bars = orjson.loads(run("sql", root, "-c", "select count(*) as n from bars", "--format",
                            "json").output)[0]["n"]  # fmt: skip
    assert bars >= 2 and spark.read.parquet(f"{root}/bars").count() == bars
    assert pl.scan_parquet(f"{root}/bars/**/*.parquet", hive_partitioning=True).select(
        pl.len()).collect().item() == bars  # fmt: skip
