"""Spark over rtcap captures: the views ``rtcap sql`` has, and bars computed by the kernel on
Spark executors.

    from rtcap.analysis.spark import session, register_views, bars_job
    spark = session()                         # local[*]; or pass your own SparkSession
    register_views(spark, "captures/")        # frames, lifecycle, gaps, trades, quotes, bars
    spark.sql("select symbol, count(*) from trades group by 1").show()
    bars_job(spark, "captures/", ["1min", "5min"], "out/bars")   # Parquet, one row per bar

A dataset root is a capture or a folder holding captures (as ``rtcap sql`` finds them). Only the
files each manifest lists are read, each checked against its sha256 first, in the portable
``frames/2`` schema that Spark reads with no flags (``rtcap migrate`` rewrites older captures).

``trades`` and ``quotes`` are decoded by rtcap's own codecs (ProjectX SignalR and Binance) in
``mapInArrow``, one Arrow batch at a time; ``bars_job`` runs the kernel pipeline per capture in
``applyInArrow`` (a capture is one recording: its frames in ``seq`` order are exactly what a
local ``rtcap export`` of it replays), so Spark's bars equal ``rtcap export``'s bar for bar,
while many captures (recorders, days) run on many executors.

Requires ``pip install 'rtcap[spark]'`` (pyspark with pandas, which ``applyInArrow`` needs) and
Java 17.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from rtcap import lifecycle
from rtcap.analysis.views import discover
from rtcap.codecs import codec_for
from rtcap.events import EventType
from rtcap.models import Quote, Trade
from rtcap.pipeline import Pipeline
from rtcap.storage.errors import CaptureError
from rtcap.storage.integrity import check_file, open_capture, segment_files
from rtcap.storage.schema import (
    BAR_SCHEMA,
    FRAME_SCHEMA,
    MICROS_UTC,
    rows_table,
    table_to_frames,
    written_as,
)
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
# The live-bars columns (storage.schema.BAR_SCHEMA) a closed bar has, under its capture's name.
BARS_SCHEMA = pa.schema(
    [pa.field("capture", pa.string())]
    + [f for f in BAR_SCHEMA if f.name not in ("end_ns", "end_time", "closed_seq")]
)


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


def capture_files(root: str | Path) -> dict[str, list[str]]:
    """Capture name → its checked frames/2 segment files, for every capture under ``root``."""
    captures, _ = discover([Path(root)])
    if not captures:
        raise CaptureError(f"no capture under {root}: give a capture or a folder of captures")
    out: dict[str, list[str]] = {}
    for capture, name in captures:
        files = [str(check_file(capture, e)) for e in segment_files(open_capture(capture))]
        old = [f for f in files if not written_as(f, FRAME_SCHEMA)]
        if old:
            raise CaptureError(
                f"{capture} was written before the portable frames/2 schema, which Spark "
                f"cannot read ({len(old)} file(s)): run `rtcap migrate {capture}` first"
            )
        out[name] = files
    return out


def frames_frame(spark, root: str | Path):
    """The ``frames`` rows of every capture under ``root``, with a ``capture`` column."""
    from pyspark.sql import functions as F

    frames = None
    for name, files in sorted(capture_files(root).items()):
        if not files:
            continue
        part = spark.read.parquet(*files).withColumn("capture", F.lit(name))
        frames = part if frames is None else frames.unionByName(part)
    if frames is None:
        raise CaptureError(f"the captures under {root} hold no sealed frames yet")
    return frames


def register_views(spark, root: str | Path) -> list[str]:
    """Temp views ``frames``, ``lifecycle``, ``gaps``, ``trades``, ``quotes`` and ``bars``
    (the bars recorders built live) over the captures under ``root``; returns their names."""
    frames_frame(spark, root).createOrReplaceTempView("frames_raw")
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
    _live_bars(spark, root).createOrReplaceTempView("bars")
    return list(VIEWS)


_SPARK_TYPES = {"int32": "INT", "int64": "BIGINT", "float64": "DOUBLE"}


def _json_columns(columns: tuple[tuple[str, str, str], ...]) -> str:
    """``get_json_object(payload_text, '$.field')`` for each lifecycle column, cast to its type."""
    extract = "get_json_object(payload_text, '$.{field}')"
    return lifecycle.view_columns(columns, extract, "CAST({value} AS {type})", _SPARK_TYPES)


def bars_job(spark, root: str | Path, timeframes: Iterable[str], out: str | Path | None = None):
    """Completed bars of every capture under ``root`` at ``timeframes``, computed by the kernel
    pipeline on the executors (one capture per task); written as Parquet to ``out`` when given.
    Returns the DataFrame (:data:`BARS_SCHEMA`)."""
    labels = [parse_timeframe(tf).label for tf in timeframes]
    frames = frames_frame(spark, root).drop("recv_time", "exch_time")

    def build(table: pa.Table) -> pa.Table:
        return _capture_bars(table, labels)

    bars = frames.groupBy("capture").applyInArrow(build, _ddl(BARS_SCHEMA))
    if out is not None:
        bars.write.mode("overwrite").parquet(str(out))
    return bars


# --- executor side ---------------------------------------------------------------------


def _capture_bars(table: pa.Table, labels: list[str]) -> pa.Table:
    """The bars ``rtcap export`` closes for one capture's frames (any order in)."""
    if not table.num_rows:
        return BARS_SCHEMA.empty_table()
    capture = table.column("capture")[0].as_py()
    table = table.sort_by("seq")
    pipeline = Pipeline(None, labels, codec="auto", wanted={EventType.BAR_CLOSED})
    rows: list[tuple] = []
    for frame in table_to_frames(table):
        for event in pipeline.feed(frame):
            b = event.data["bar"]
            rows.append(
                (capture, event.instrument, b.timeframe, b.start_ns, b.start_ns // 1000, b.open,
                 b.high, b.low, b.close, float(b.volume), b.trades, b.gap, b.flat)
            )  # fmt: skip
    return rows_table(rows, BARS_SCHEMA)


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
        pa.int64(): "bigint",
        pa.int32(): "int",
        pa.float64(): "double",
        pa.bool_(): "boolean",
        MICROS_UTC: "timestamp",
    }
    return ", ".join(f"{f.name} {names[f.type]}" for f in schema)


def _live_bars(spark, root: str | Path):
    from pyspark.sql import functions as F

    captures, _ = discover([Path(root)])
    parts = []
    for capture, name in captures:
        entry = open_capture(capture).get("live_bars") or {}
        files = [str(check_file(capture, f)) for f in entry.get("files") or []]
        if files:
            parts.append(spark.read.parquet(*files).withColumn("capture", F.lit(name)))
    if not parts:
        return spark.createDataFrame([], _ddl(BARS_SCHEMA))
    bars = parts[0]
    for part in parts[1:]:
        bars = bars.unionByName(part)
    return bars.select(
        "capture", "instrument", "timeframe", "start_ns", "start_time", "open", "high", "low",
        "close", "volume", "trades", "gap", "flat",
    )  # fmt: skip
