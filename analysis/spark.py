"""Spark over rtcap captures: the views ``rtcap sql`` has, and bars computed by the kernel on
Spark executors.

    from rtcap.analysis.spark import session, register_views, bars_job
    spark = session()                         # local[*]; or pass your own SparkSession
    register_views(spark, "captures/")        # frames, lifecycle, gaps, trades, quotes, bars
    spark.sql("select symbol, count(*) from trades group by 1").show()
    bars_job(spark, "captures/", ["1min", "5min"], "out/bars")   # Parquet, one row per bar

A dataset root is a capture or a folder holding captures (as ``rtcap sql`` finds them), on local
disk or on any store pyarrow opens (``s3://bucket/tapes``, ``file:///…``). The driver reads
manifests only (:mod:`rtcap.analysis.sparkplan`); the executors read the files each manifest
lists where they lie, one piece (a row-group range of a segment file) per task, checking each
file against its manifest entry in the task that reads it (:mod:`rtcap.analysis.sparktasks`).

``trades`` and ``quotes`` are decoded by rtcap's own codecs (ProjectX SignalR and Binance) in
``mapInArrow``, one Arrow batch at a time; ``bars_job`` builds bar parts per piece with the
kernel pipeline and merges them per instrument and timeframe, so its bars are ``rtcap export
ROOT``'s bar for bar while a task's memory is bounded by a piece, not by a capture.

Executors need rtcap importable: locally :func:`session` points them at this interpreter; on a
cluster ship it (README: Spark on a cluster), or a job fails with the one line :func:`explain`
gives. Requires ``pip install 'rtcap[spark]'`` (pyspark with pandas, which ``applyInArrow``
needs) and Java 17.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from rtcap import lifecycle
from rtcap.analysis import sparkplan, sparktasks
from rtcap.codecs import codec_for
from rtcap.models import Quote, Trade
from rtcap.pipeline import Pipeline
from rtcap.storage.errors import CaptureError
from rtcap.storage.schema import MICROS_UTC, rows_table, table_to_frames
from rtcap.timeframes import parse_timeframe

VIEWS = ("frames", "lifecycle", "gaps", "trades", "quotes", "bars")
TRADE_SCHEMA = pa.schema(
    [
        ("capture", pa.string()),
        ("seq", pa.int64()),
        ("print_index", pa.int32()),
        ("recv_time", MICROS_UTC),
        ("symbol", pa.string()),
        ("price", pa.float64()),
        ("volume", pa.float64()),
        ("side", pa.string()),
        ("exch_time", MICROS_UTC),
        ("trade_id", pa.int64()),
    ]
)
QUOTE_SCHEMA = pa.schema(
    [
        ("capture", pa.string()),
        ("seq", pa.int64()),
        ("recv_time", MICROS_UTC),
        ("symbol", pa.string()),
        ("bid", pa.float64()),
        ("ask", pa.float64()),
        ("bid_size", pa.float64()),
        ("ask_size", pa.float64()),
        ("last", pa.float64()),
        ("session_volume", pa.float64()),
        ("exch_time", MICROS_UTC),
    ]
)
BARS_SCHEMA = sparktasks.MERGED_SCHEMA  # bars_job's rows
LIVE_BARS_SCHEMA = sparktasks.LIVE_BARS_SCHEMA  # the bars view: bars recorders built live


def session(app: str = "rtcap", master: str = "local[*]", **config: str):
    """A SparkSession whose Python workers run this interpreter (so they import rtcap), in
    UTC, without the web UI unless ``config`` says otherwise."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise CaptureError("Spark is not installed: pip install 'rtcap[spark]'") from None
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(master).appName(app)
    if master.startswith("local"):  # a local session listens on loopback only
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = builder.config("spark.driver.bindAddress", "127.0.0.1").config(
            "spark.driver.host", "127.0.0.1"
        )
    builder = (
        builder.config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "8")
    )
    for key, value in config.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def tasks_frame(spark, rows: list[dict[str, Any]], ddl: str):
    """A DataFrame of task descriptions, one per partition (so one per task)."""
    columns = [part.split()[0] for part in ddl.split(", ")]
    tuples = [tuple(row[c] for c in columns) for row in rows]
    rdd = spark.sparkContext.parallelize(tuples, max(1, len(tuples)))
    return spark.createDataFrame(rdd, ddl)


PIECES_DDL = (
    "order bigint, capture string, uri string, entry string, part int, parts int, contracts string"
)
LIVE_BARS_DDL = "capture string, uri string, entry string"


def frames_frame(spark, root: str | Path, *, recorders: list[str] | None = None, plan=None):
    """The ``frames`` rows of every capture under ``root`` (a path or a store URI), with a
    ``capture`` column: read and checked by the executors, one piece per task."""
    plan = plan or sparkplan.plan(root, recorders=recorders)
    if not plan.pieces:
        raise CaptureError(f"the captures under {root} hold no sealed frames yet")
    pieces = tasks_frame(spark, plan.pieces, PIECES_DDL)
    return pieces.mapInArrow(sparktasks.frames_task, _ddl(sparktasks.SPARK_FRAME_SCHEMA))


def register_views(spark, root: str | Path, *, recorders: list[str] | None = None) -> list[str]:
    """Temp views ``frames``, ``lifecycle``, ``gaps``, ``trades``, ``quotes`` and ``bars``
    (the bars recorders built live) over the captures under ``root`` (a path or a store URI;
    ``recorders`` chooses among them); returns their names."""
    plan = sparkplan.plan(root, recorders=recorders)
    frames_frame(spark, root, plan=plan).createOrReplaceTempView("frames_raw")
    spark.sql("""
        CREATE OR REPLACE TEMP VIEW frames AS
        SELECT capture, seq, recv_time, recv_ns, mono_ns, conn, stream, kind, target, symbol,
               exch_time, exch_ns, octet_length(payload) AS bytes,
               CASE WHEN kind <> 'binary' THEN CAST(payload AS STRING) END AS payload_text,
               payload, to_date(recv_time) AS date
        FROM frames_raw
    """)
    kinds = ", ".join(f"'{kind}'" for kind in lifecycle.ROW_KINDS)
    spark.sql(f"""
        CREATE OR REPLACE TEMP VIEW lifecycle AS
        SELECT capture, seq, recv_time, stream, conn, kind,
               {_json_columns(lifecycle.LIFECYCLE_COLUMNS)}, payload_text AS detail
        FROM frames WHERE kind IN ({kinds})
    """)
    spark.sql(f"""
        CREATE OR REPLACE TEMP VIEW gaps AS
        SELECT capture, seq, recv_time, stream, conn,
               coalesce(get_json_object(payload_text, '$.kind'), 'connection') AS gap_kind,
               timestamp_micros(CAST(get_json_object(payload_text, '$.from_ns') AS BIGINT) DIV 1000)
                   AS gap_from,
               timestamp_micros(CAST(get_json_object(payload_text, '$.to_ns') AS BIGINT) DIV 1000)
                   AS gap_to,
               {_json_columns(lifecycle.GAP_COLUMNS)}
        FROM frames WHERE kind = 'gap'
    """)
    text = spark.table("frames_raw").where("kind = 'text'").drop("recv_time", "exch_time")
    text.mapInArrow(_trades, _ddl(TRADE_SCHEMA)).createOrReplaceTempView("trades")
    text.mapInArrow(_quotes, _ddl(QUOTE_SCHEMA)).createOrReplaceTempView("quotes")
    _live_bars(spark, plan).createOrReplaceTempView("bars")
    return list(VIEWS)


_SPARK_TYPES = {"int32": "INT", "int64": "BIGINT", "float64": "DOUBLE"}


def _json_columns(columns: tuple[tuple[str, str, str], ...]) -> str:
    """``get_json_object(payload_text, '$.field')`` for each lifecycle column, cast to its type."""
    extract = "get_json_object(payload_text, '$.{field}')"
    return lifecycle.view_columns(columns, extract, "CAST({value} AS {type})", _SPARK_TYPES)


def bars_job(
    spark,
    root: str | Path,
    timeframes: Iterable[str],
    out: str | Path | None = None,
    *,
    recorders: list[str] | None = None,
    piece_rows: int = sparkplan.PIECE_ROWS,
):
    """Completed bars of the dataset under ``root`` at ``timeframes``: ``rtcap export ROOT``'s
    bars, bar for bar. The kernel pipeline builds bar parts from each piece of each segment on
    the executors; parts are merged per (instrument, timeframe) in the feed's order
    (:func:`rtcap.analysis.sparktasks.merge`), so a feed split across segments, recorders or
    days gives whole bars. Written as Parquet to ``out`` when given; returns the DataFrame
    (:data:`BARS_SCHEMA`)."""
    labels = [parse_timeframe(tf).label for tf in timeframes]
    plan = sparkplan.plan(root, recorders=recorders, across_venues=True, piece_rows=piece_rows)
    if not plan.pieces:
        raise CaptureError(f"the captures under {root} hold no sealed frames yet")
    grace_ns = Pipeline(None, labels).close_grace_ns  # export's pipeline, as configured there
    parts = tasks_frame(spark, plan.pieces, PIECES_DDL).mapInArrow(
        sparktasks.bars_task(labels), _ddl(sparktasks.PART_SCHEMA)
    )
    bars = parts.groupBy("instrument", "timeframe").applyInArrow(
        sparktasks.merge_task(plan.final_ns, grace_ns), _ddl(BARS_SCHEMA)
    )
    if out is not None:
        bars.write.mode("overwrite").parquet(str(out))
    return bars


def explain(exc: BaseException) -> str | None:
    """One line for a failed Spark job whose cause rtcap knows: a task's ``rtcap: …`` error
    (a damaged or unreachable file), or executors that cannot import rtcap; else ``None``."""
    text = str(exc)
    for line in text.splitlines():
        if sparktasks.ERROR_MARK in line and "Error" in line.split(sparktasks.ERROR_MARK)[0]:
            return line.split(sparktasks.ERROR_MARK, 1)[1].strip()
    if re.search(r"No module named '?rtcap\b", text):
        return (
            "Spark's executors cannot import rtcap: ship it with the job, e.g. "
            "--conf spark.submit.pyFiles=<the rtcap wheel> (executors with its dependencies), or "
            "a packed virtualenv: --archives env.tar.gz#env with PYSPARK_PYTHON=./env/bin/python "
            "(README: Spark on a cluster)"
        )
    return None


# --- executor side ---------------------------------------------------------------------


def _decoded(batches: Iterator[pa.RecordBatch], kind: type) -> Iterator[tuple[str, Any, int]]:
    codec = codec_for("auto")
    for batch in batches:
        table = pa.Table.from_batches([batch])
        captures = table.column("capture").to_pylist()
        for capture, frame in zip(captures, table_to_frames(table), strict=True):
            index = 0
            for item in codec.decode(frame):
                if isinstance(item, kind):
                    index += 1
                    yield capture, item, index


def _trades(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    rows = [
        (c, t.seq, i, t.recv_ns // 1000, t.symbol, t.price, float(t.volume), t.side,
         None if t.exch_ns is None else t.exch_ns // 1000, t.trade_id)
        for c, t, i in _decoded(batches, Trade)
    ]  # fmt: skip
    yield from rows_table(rows, TRADE_SCHEMA).to_batches()


def _quotes(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    rows = [
        (c, q.seq, q.recv_ns // 1000, q.symbol, q.bid, q.ask, q.bid_size, q.ask_size, q.last,
         None if q.volume is None else float(q.volume),
         None if q.exch_ns is None else q.exch_ns // 1000)
        for c, q, _ in _decoded(batches, Quote)
    ]  # fmt: skip
    yield from rows_table(rows, QUOTE_SCHEMA).to_batches()


def _ddl(schema: pa.Schema) -> str:
    names = {
        pa.string(): "string",
        pa.binary(): "binary",
        pa.int64(): "bigint",
        pa.int32(): "int",
        pa.float64(): "double",
        pa.bool_(): "boolean",
        MICROS_UTC: "timestamp",
    }
    return ", ".join(f"{f.name} {names[f.type]}" for f in schema)


def _live_bars(spark, plan: sparkplan.Plan):
    if not plan.live_bars:
        return spark.createDataFrame([], _ddl(LIVE_BARS_SCHEMA))
    files = tasks_frame(spark, plan.live_bars, LIVE_BARS_DDL)
    return files.mapInArrow(sparktasks.live_bars_task, _ddl(LIVE_BARS_SCHEMA))
