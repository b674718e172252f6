"""Spark (local mode, Java 17) over a dataset root of real and simulated captures: the views
agree with ``rtcap sql``'s, Spark SQL 1-minute bars = DuckDB 1-minute bars = kernel bars on the
real Binance capture, and the distributed bar job equals local ``rtcap export`` bar for bar."""

import os
import shutil

import orjson
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from helpers import downgrade, write_capture

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
    recorders = 3 if full_length else 1
    for index in range(recorders):
        market = MarketSimulator(20 + index, ("MNQ", "ES"), rate=150)
        frames = list(market.frames(duration_s=240))
        write_capture(folder / f"sim-{index}", with_lifecycle(frames)).close()
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


def test_distributed_bar_job_equals_local_export_bar_for_bar(spark, root, tmp_path):
    out = tmp_path / "spark-bars"
    spark_module.bars_job(spark, root, ["1min", "5min"], out)
    table = pq.read_table(out)
    assert set(table.column("capture").to_pylist()) == {p.name for p in root.iterdir()}
    for capture in sorted(root.iterdir()):
        export = run(
            "export", capture, "--out", tmp_path / capture.name, "--timeframes", "1min,5min",
            "--format", "parquet",
        )  # fmt: skip
        assert export.exit_code == 0, export.output
        local = sorted(
            (r["instrument"], r["timeframe"], r["ts_ns"], r["open"], r["high"], r["low"],
             r["close"], r["volume"])
            for f in (tmp_path / capture.name).glob("bars_*.parquet")
            for r in pq.read_table(f).to_pylist()
        )  # fmt: skip
        mine = [r for r in table.to_pylist() if r["capture"] == capture.name]
        spark_rows = sorted(
            (r["instrument"], r["timeframe"], r["start_ns"], r["open"], r["high"], r["low"],
             r["close"], r["volume"])
            for r in mine
        )  # fmt: skip
        assert spark_rows == local and len(local) >= 3, capture.name


def test_a_capture_older_than_frames_2_is_refused_with_the_fix(spark, tmp_path):
    frames = list(MarketSimulator(2, ("MNQ",)).frames(duration_s=20))
    write_capture(tmp_path / "old", frames).close()
    downgrade(tmp_path / "old")
    with pytest.raises(Exception, match="rtcap migrate"):
        spark_module.register_views(spark, tmp_path / "old")
    assert run("migrate", tmp_path / "old").exit_code == 0
    spark_module.register_views(spark, tmp_path / "old")
    assert spark.sql("select count(*) from frames").collect()[0][0] == len(frames)


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
