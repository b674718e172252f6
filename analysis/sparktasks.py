"""What Spark's executors run: read one piece of a segment file (checking it on the way), decode
or build bars from it with the kernel, and merge bar parts. Pure functions of Arrow tables and
piece descriptions (:mod:`rtcap.analysis.sparkplan`), with no pyspark import, so they are
tested and timed without a cluster.

A piece is a range of row groups of one listed segment file, opened where it lies (a local path
or any store pyarrow opens: ``s3://``, ``gs://``, ``hdfs://``…). The task that reads a file's
first piece checks the whole file against its manifest entry (size, sha256, footer); every
piece reads with Parquet page checksums on and checks its seq range. Errors are raised as
``RuntimeError("rtcap: …")`` so the driver can show that one line instead of a JVM trace.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rtcap.bars import merge_parts
from rtcap.events import EventType
from rtcap.models import Bar
from rtcap.pipeline import Pipeline
from rtcap.storage.errors import first_line
from rtcap.storage.integrity import entry_problem
from rtcap.storage.remote import open_remote
from rtcap.storage.schema import (
    BAR_SCHEMA,
    FRAME_SCHEMA,
    bars_v2,
    frame_columns,
    frames_v2,
    rows_table,
    table_to_frames,
)

ERROR_MARK = "rtcap: "
PIECE_FIELDS = ("order", "capture", "uri", "entry", "part", "parts", "contracts")
# The frames of a piece as Spark takes them: dictionary columns as plain strings.
SPARK_FRAME_SCHEMA = pa.schema(
    [pa.field("capture", pa.string())]
    + [
        pa.field(f.name, pa.string()) if pa.types.is_dictionary(f.type) else f.with_nullable(True)
        for f in FRAME_SCHEMA
    ]
)
_LIVE_ONLY = ("end_ns", "end_time", "closed_seq")  # what a bar needs only while recording
# A whole bar as bars_job writes it: the live-bars columns (storage.schema.BAR_SCHEMA) a
# closed bar has.
MERGED_SCHEMA = pa.schema([f for f in BAR_SCHEMA if f.name not in _LIVE_ONLY])
# One part of a bar: what one piece's pipeline built of it, and the piece's place in the feed.
PART_SCHEMA = pa.schema(
    [f for f in BAR_SCHEMA if f.name not in ("start_time", "end_time", "closed_seq")]
    + [pa.field("order", pa.int64())]
)
# The bars view: bars recorders built live, under their capture's name.
LIVE_BARS_SCHEMA = pa.schema([pa.field("capture", pa.string()), *MERGED_SCHEMA])


class PieceError(RuntimeError):
    """A piece that cannot be read as its manifest describes it (the message says which)."""

    def __init__(self, message: str) -> None:
        super().__init__(ERROR_MARK + message)


def _where(piece: dict[str, Any]) -> str:
    """A piece's file as errors name it."""
    return f"{piece['uri']} (capture {piece['capture']})"


def _checked(piece: dict[str, Any], whole: bool) -> tuple[Any, str, dict[str, Any]]:
    """(file system, path, manifest entry) of a piece's file; ``whole``: the file is checked
    against its entry first (size, sha256, footer)."""
    entry = orjson.loads(piece["entry"])
    fs, path = open_remote(piece["uri"])
    if whole:
        problem = entry_problem(fs, path, entry)
        if problem:
            raise PieceError(
                f"{_where(piece)} {problem}: restore it from a backup (rtcap verify names every "
                "damaged file)"
            )
    return fs, path, entry


def read_piece(piece: dict[str, Any]) -> pa.Table:
    """The frames of one piece (frames/2 columns, seq order), checked as the module says."""
    where = _where(piece)
    try:
        fs, path, entry = _checked(piece, piece["part"] == 0)
        with fs.open_input_file(path) as handle:
            parquet = pq.ParquetFile(handle, page_checksum_verification=True)
            count = parquet.metadata.num_row_groups
            first = piece["part"] * count // piece["parts"]
            stop = (piece["part"] + 1) * count // piece["parts"]
            groups = list(range(first, stop))
            columns = frame_columns(parquet.schema_arrow)
            table = parquet.read_row_groups(groups, columns=columns) if groups else None
    except PieceError:
        raise
    except Exception as exc:  # the store, the file, the format: one line naming the file
        raise PieceError(f"cannot read {where}: {first_line(exc)}") from None
    if table is None:
        return FRAME_SCHEMA.empty_table()
    table = frames_v2(table)  # a capture written before frames/2 reads as frames/2
    if table.num_rows:
        low, high = (v.as_py() for v in pc.min_max(table.column("seq")).values())
        if low < entry["first_seq"] or high > entry["last_seq"]:
            raise PieceError(
                f"{where} holds seq {low}–{high} outside the manifest's "
                f"{entry['first_seq']}–{entry['last_seq']}: the file was altered"
            )
    return table


def live_bars_task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """``mapInArrow``: listed live-bars files → their closed bars, with a ``capture`` column."""
    for piece in pieces_of(batches, ("capture", "uri", "entry")):
        try:
            fs, path, _ = _checked(piece, True)
            with fs.open_input_file(path) as handle:
                table = bars_v2(pq.read_table(handle, page_checksum_verification=True))
        except PieceError:
            raise
        except Exception as exc:
            raise PieceError(f"cannot read {_where(piece)}: {first_line(exc)}") from None
        columns = [pa.array([piece["capture"]] * table.num_rows, pa.string())]
        columns += [table.column(f.name) for f in MERGED_SCHEMA]
        yield from pa.Table.from_arrays(columns, schema=LIVE_BARS_SCHEMA).to_batches()


def pieces_of(
    batches: Iterator[pa.RecordBatch], fields: tuple[str, ...] = PIECE_FIELDS
) -> Iterator[dict[str, Any]]:
    for batch in batches:
        yield from batch.select(list(fields)).to_pylist()


def frames_task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """``mapInArrow``: piece descriptions → their frames, with a ``capture`` column."""
    for piece in pieces_of(batches):
        table = read_piece(piece)
        columns = [pa.array([piece["capture"]] * table.num_rows, pa.string())]
        for field in FRAME_SCHEMA:
            column = table.column(field.name)
            if pa.types.is_dictionary(field.type):
                column = column.cast(pa.string())
            columns.append(column)
        yield from pa.Table.from_arrays(columns, schema=SPARK_FRAME_SCHEMA).to_batches(50_000)


def bar_parts(piece: dict[str, Any], table: pa.Table, labels: list[str]) -> pa.Table:
    """Every bar, closed or forming, that the kernel pipeline builds from one piece's frames:
    the parts :func:`merge` makes whole."""
    contracts = orjson.loads(piece["contracts"]) if piece["contracts"] else None
    pipeline = Pipeline(
        None, labels, codec="auto", wanted={EventType.BAR_CLOSED}, contracts=contracts
    )
    bars: list[tuple[str, Bar]] = []
    for frame in table_to_frames(table):
        for event in pipeline.feed(frame):
            bars.append((event.instrument, event.data["bar"]))
    for symbol, state in sorted(pipeline.instruments.items()):
        for label in labels:
            forming = state.builder.forming(label)
            if forming is not None:
                bars.append((symbol, forming))
    rows = [
        (symbol, b.timeframe, b.start_ns, b.end_ns, b.open, b.high, b.low, b.close,
         float(b.volume), b.trades, b.gap, b.flat, piece["order"])
        for symbol, b in bars
    ]  # fmt: skip
    return rows_table(rows, PART_SCHEMA)


def bars_task(labels: list[str]):
    """``mapInArrow``: piece descriptions → the bar parts of each (:func:`bar_parts`)."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for piece in pieces_of(batches):
            yield from bar_parts(piece, read_piece(piece), labels).to_batches()

    return run


def merge(parts: pa.Table, final_ns: int, grace_ns: int) -> pa.Table:
    """The bars of one instrument and timeframe from all their parts: equal starts folded in
    the pieces' order (:func:`rtcap.bars.merge_parts`), then only those a replay of the whole
    dataset closes: every bar a later one follows, and the last once the dataset's clock
    (``final_ns``, its last receive time) passed its end plus the close grace."""
    if not parts.num_rows:
        return MERGED_SCHEMA.empty_table()
    ordered = parts.sort_by([("start_ns", "ascending"), ("order", "ascending")])
    instrument = ordered.column("instrument")[0].as_py()
    fields = ("timeframe", "start_ns", "end_ns", "open", "high", "low", "close", "volume",
              "trades", "gap", "flat")  # fmt: skip
    bars = merge_parts([Bar(*(r[f] for f in fields)) for r in ordered.to_pylist()])
    if bars and final_ns < bars[-1].end_ns + grace_ns:
        bars.pop()  # still forming when the dataset ends: a replay never closes it
    rows = [
        (instrument, b.timeframe, b.start_ns, b.start_ns // 1000, b.open, b.high, b.low,
         b.close, float(b.volume), b.trades, b.gap, b.flat)
        for b in bars
    ]  # fmt: skip
    return rows_table(rows, MERGED_SCHEMA)


def merge_task(final_ns: int, grace_ns: int):
    """``applyInArrow`` over (instrument, timeframe) groups: :func:`merge`."""

    def run(table: pa.Table) -> pa.Table:
        return merge(table, final_ns, grace_ns)

    return run
