"""The Arrow/Parquet schemas of a capture (frames and live bars) and the conversions between
them and :class:`Frame` / :class:`Bar` objects.

``frames/2`` (and ``bars/2``), written since this version, is portable: every column reads in
Spark 4, Trino and DuckDB with no flags. Integers are signed; nanosecond times are kept exactly
as ``int64`` columns (``recv_ns``, ``exch_ns``, ``start_ns``, ``end_ns``) with a
``TIMESTAMP(MICROS, UTC)`` column beside each (``recv_time``, ``exch_time``, ``start_time``,
``end_time``) for engines' time functions; strings are dictionary-encoded.

``frames/1`` (``uint64`` seq, ``TIMESTAMP(NANOS)`` receive time, ``uint32`` conn) stays readable:
:func:`frames_v2` and :func:`bars_v2` turn either into the current schema, and ``rtcap migrate``
rewrites a capture's files.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rtcap.accel import speedups
from rtcap.models import Bar, Frame
from rtcap.storage.shapes import (
    TYPED_FIELDS_ARROW,
    TYPED_FIELDS_ARROW_V1,
    render,
    shape_columns,
    shapes_from_json,
)

DICT = pa.dictionary(pa.int32(), pa.string())
MICROS_UTC = pa.timestamp("us", tz="UTC")
FRAME_SCHEMA = pa.schema(
    [
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("recv_ns", pa.int64(), nullable=False),
        pa.field("recv_time", MICROS_UTC, nullable=False),
        pa.field("mono_ns", pa.int64(), nullable=False),
        pa.field("conn", pa.int32(), nullable=False),
        pa.field("stream", DICT, nullable=False),
        pa.field("kind", DICT, nullable=False),
        pa.field("payload", pa.binary(), nullable=False),
        pa.field("target", DICT),
        pa.field("symbol", DICT),
        pa.field("exch_ns", pa.int64()),
        pa.field("exch_time", MICROS_UTC),
    ],
    metadata={"rtcap.schema": "frames/2"},
)
FRAME_SCHEMA_V1 = pa.schema(
    [
        pa.field("seq", pa.uint64(), nullable=False),
        pa.field("recv_ns", pa.timestamp("ns", tz="UTC"), nullable=False),
        pa.field("mono_ns", pa.int64(), nullable=False),
        pa.field("conn", pa.uint32(), nullable=False),
        pa.field("stream", DICT, nullable=False),
        pa.field("kind", DICT, nullable=False),
        pa.field("payload", pa.binary(), nullable=False),
        pa.field("target", DICT),
        pa.field("symbol", DICT),
        pa.field("exch_ns", pa.int64()),
    ],
    metadata={"rtcap.schema": "frames/1"},
)
# The cold form (rtcap compact): the frame columns, then the typed columns of storage.shapes;
# a frame's payload is null where its shape renders its bytes. Each file's shapes are in its
# schema metadata (``rtcap.shapes``). The microsecond time columns are left out (they are the
# ns columns truncated) and rows are grouped by message kind, in seq order within each: each
# column then holds one kind's values in a run, which is what compresses (bench/cold.py).
DERIVED_TIMES = {"recv_time": "recv_ns", "exch_time": "exch_ns"}
_COLD_FRAME_FIELDS = [
    f.with_nullable(True) if f.name == "payload" else f
    for f in FRAME_SCHEMA
    if f.name not in DERIVED_TIMES
]
COLD_SCHEMA = pa.schema(
    _COLD_FRAME_FIELDS + TYPED_FIELDS_ARROW, metadata={"rtcap.schema": "frames/2+typed/2"}
)
# typed/1 typed Binance messages only; typed/2 adds ProjectX's columns after its own
COLD_SCHEMA_V1 = pa.schema(
    _COLD_FRAME_FIELDS + TYPED_FIELDS_ARROW_V1, metadata={"rtcap.schema": "frames/2+typed/1"}
)
COLD_SCHEMAS = (COLD_SCHEMA, COLD_SCHEMA_V1)
SHAPES_KEY = b"rtcap.shapes"
# the message kinds a cold file holds typed rows of (a JSON list; typed/1 files have none)
MESSAGES_KEY = b"rtcap.messages"
FRAME_SCHEMAS = (FRAME_SCHEMA, FRAME_SCHEMA_V1, *COLD_SCHEMAS)
DICTIONARY_COLUMNS = ["stream", "kind", "target", "symbol"]
BAR_SCHEMA = pa.schema(
    [
        ("instrument", pa.string()),
        ("timeframe", pa.string()),
        ("start_ns", pa.int64()),
        ("end_ns", pa.int64()),
        ("start_time", MICROS_UTC),
        ("end_time", MICROS_UTC),
        ("open", pa.float64()),
        ("high", pa.float64()),
        ("low", pa.float64()),
        ("close", pa.float64()),
        ("volume", pa.float64()),
        ("trades", pa.int64()),
        ("gap", pa.bool_()),
        ("flat", pa.bool_()),
        ("closed_seq", pa.int64()),
    ],
    metadata={"rtcap.schema": "bars/2"},
)
BAR_SCHEMA_V1 = pa.schema(
    [
        ("instrument", pa.string()),
        ("timeframe", pa.string()),
        ("start_ns", pa.timestamp("ns", tz="UTC")),
        ("end_ns", pa.timestamp("ns", tz="UTC")),
        ("open", pa.float64()),
        ("high", pa.float64()),
        ("low", pa.float64()),
        ("close", pa.float64()),
        ("volume", pa.float64()),
        ("trades", pa.int64()),
        ("gap", pa.bool_()),
        ("flat", pa.bool_()),
        ("closed_seq", pa.uint64()),
    ]
)
BAR_SCHEMAS = (BAR_SCHEMA, BAR_SCHEMA_V1)


def _micros(ns: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray | pa.Array:
    """Epoch ns (int64) → TIMESTAMP(MICROS, UTC), truncated to the microsecond (nulls kept)."""
    return pc.divide(ns, pa.scalar(1000, pa.int64())).cast(MICROS_UTC)


def written_as(path: str | Path, schema: pa.Schema) -> bool:
    """Whether the Parquet file at ``path`` is in ``schema`` (its footer only is read)."""
    return pq.read_schema(path).equals(schema, check_metadata=False)


def rows_table(rows: list[tuple], schema: pa.Schema) -> pa.Table:
    """Row tuples (in ``schema``'s column order) as a table of ``schema``."""
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in schema]
    return pa.Table.from_arrays(
        [pa.array(column, type=f.type) for column, f in zip(columns, schema, strict=True)],
        schema=schema,
    )


def readable_as(schema: pa.Schema, table: pa.Table) -> pa.Table | None:
    """``table`` in ``schema`` (:data:`FRAME_SCHEMA` or :data:`BAR_SCHEMA`) if it is that or
    its earlier version, else ``None``."""
    if schema.equals(FRAME_SCHEMA):
        versions, convert = FRAME_SCHEMAS, frames_v2
    elif schema.equals(BAR_SCHEMA):
        versions, convert = BAR_SCHEMAS, bars_v2
    else:
        return table if table.schema.equals(schema) else None
    if not any(table.schema.equals(v, check_metadata=False) for v in versions):
        return None
    return convert(table)


def frames_v2(table: pa.Table) -> pa.Table:
    """A frames table of any version, or of the cold form (payloads rendered back from their
    shapes), in :data:`FRAME_SCHEMA`."""
    if table.schema.equals(FRAME_SCHEMA, check_metadata=False):
        return table
    if _is_cold(table):
        return cold_frames(table)
    if not table.schema.equals(FRAME_SCHEMA_V1, check_metadata=False):
        raise ValueError("not an rtcap frames table (frames/1 or frames/2)")
    recv = table.column("recv_ns").cast(pa.int64())
    exch = table.column("exch_ns")
    columns = {
        "seq": table.column("seq").cast(pa.int64()),
        "recv_ns": recv,
        "recv_time": _micros(recv),
        "mono_ns": table.column("mono_ns"),
        "conn": table.column("conn").cast(pa.int32()),
        "stream": table.column("stream"),
        "kind": table.column("kind"),
        "payload": table.column("payload"),
        "target": table.column("target"),
        "symbol": table.column("symbol"),
        "exch_ns": exch,
        "exch_time": _micros(exch),
    }
    return pa.Table.from_pydict(columns, schema=FRAME_SCHEMA)


def frame_pieces(table: pa.Table, rows: int) -> Iterator[pa.Table]:
    """:func:`frames_v2` of ``table``; a table of the cold form as tables of up to ``rows``
    frames (:func:`cold_frame_pieces`), any other whole."""
    if _is_cold(table):
        yield from cold_frame_pieces(table, rows)
    else:
        yield frames_v2(table)


def _is_cold(table: pa.Table) -> bool:
    return "shape" in table.column_names


def frame_columns(schema: pa.Schema) -> list[str] | None:
    """The columns the frames of a file in ``schema`` are read from: every column of a hot
    file (``None``); of a cold file its frame columns, shapes and payloads and the typed
    columns its shapes fill, not the columns of message kinds it does not hold."""
    metadata = schema.metadata or {}
    if "shape" not in schema.names or SHAPES_KEY not in metadata:
        return None
    filled = {
        name for shape in shapes_from_json(metadata[SHAPES_KEY]) for name in shape_columns(shape)
    }
    frame = {f.name for f in FRAME_SCHEMA}
    return [name for name in schema.names if name in frame or name in filled or name == "shape"]


def cold_frames(table: pa.Table) -> pa.Table:
    """A table of the cold form as frames, every payload back to its exact bytes, in seq
    order."""
    return next(cold_frame_pieces(table, max(table.num_rows, 1)))


def cold_frame_pieces(table: pa.Table, rows: int) -> Iterator[pa.Table]:
    """:func:`cold_frames` of ``table`` as tables of up to ``rows`` frames each, in seq order
    (one empty table for an empty ``table``): a reader can hand on the first frames of a row
    group before the rest are rendered."""
    metadata = table.schema.metadata or {}
    if SHAPES_KEY not in metadata:
        raise ValueError("a cold frames table without its shapes (rtcap.shapes metadata)")
    shapes = shapes_from_json(metadata[SHAPES_KEY])
    order = pc.sort_indices(table.column("seq"))  # rows are grouped by message in a group
    # One call per step: on a replay's prefetching thread each call into Arrow gives up the
    # GIL, and getting it back waits on the thread replaying.
    stored = [f.name for f in FRAME_SCHEMA if f.name not in DERIVED_TIMES and f.name != "payload"]
    kept = table.select(stored)
    typed = {name: table.column(name) for name in table.column_names}
    for start in range(0, max(len(order), 1), rows):
        piece = order.slice(start, rows)
        taken = kept.take(piece)
        columns = {name: taken.column(name) for name in stored}
        columns["payload"] = render(typed, shapes, table.column("payload"), piece)
        for name, source in DERIVED_TIMES.items():
            columns[name] = _micros(columns[source])
        yield pa.Table.from_pydict(columns, schema=FRAME_SCHEMA)


def bars_v2(table: pa.Table) -> pa.Table:
    """A live-bars table of either version, in :data:`BAR_SCHEMA`."""
    if table.schema.equals(BAR_SCHEMA, check_metadata=False):
        return table
    if not table.schema.equals(BAR_SCHEMA_V1, check_metadata=False):
        raise ValueError("not an rtcap bars table (bars/1 or bars/2)")
    start = table.column("start_ns").cast(pa.int64())
    end = table.column("end_ns").cast(pa.int64())
    columns = {name: table.column(name) for name in table.column_names}
    columns.update(
        start_ns=start,
        end_ns=end,
        start_time=_micros(start),
        end_time=_micros(end),
        closed_seq=table.column("closed_seq").cast(pa.int64()),
    )
    return pa.Table.from_pydict({f.name: columns[f.name] for f in BAR_SCHEMA}, schema=BAR_SCHEMA)


ClosedBar = tuple[str, Bar, int]  # (instrument, bar, seq of the row that closed it)


class FrameColumns:
    """The open segment's memtable: the frames appended since the last flush, turned into
    columns when their block is written.

    The frames themselves are kept (one list append per frame on the recording thread); a
    frame is not changed once appended. With the compiled fast paths the columns' Arrow
    buffers are built in one pass over the frames; without them, or for a value of a kind the
    compiled builder does not take, pyarrow builds them from Python lists, the reference."""

    __slots__ = ("frames",)

    def __init__(self, frames: list[Frame] | None = None) -> None:
        self.frames: list[Frame] = [] if frames is None else frames

    def __len__(self) -> int:
        return len(self.frames)

    def append(self, frame: Frame) -> None:
        self.frames.append(frame)

    @classmethod
    def of(cls, frames: list[Frame]) -> FrameColumns:
        return cls(list(frames))

    def to_table(self) -> pa.Table:
        """Columnar copy in :data:`FRAME_SCHEMA`."""
        columns = self._compiled_columns() if speedups is not None else None
        if columns is None:
            columns = self._python_columns()
        recv, exch = columns["recv_ns"], columns["exch_ns"]
        columns.update(recv_time=_micros(recv), exch_time=_micros(exch))
        return pa.Table.from_pydict({f.name: columns[f.name] for f in FRAME_SCHEMA}, FRAME_SCHEMA)

    def _python_columns(self) -> dict[str, pa.Array]:
        frames = self.frames
        columns = {}
        for name in FRAME_FIELDS:
            values = [getattr(frame, name) for frame in frames]
            kind = FRAME_SCHEMA.field(name).type
            if kind == DICT:
                columns[name] = pa.array(values, pa.string()).dictionary_encode()
            else:
                columns[name] = pa.array(values, kind)
        return columns

    def _compiled_columns(self) -> dict[str, pa.Array] | None:
        built = speedups.frame_columns(self.frames, Frame, _MEMTABLE_SPECS)
        if built is None:
            return None
        rows = len(self.frames)
        columns = {}
        for (name, kind, _), parts in zip(_MEMTABLE_SPECS, built, strict=True):
            if kind == _BINARY:
                offsets, data = parts
                buffers = [None, pa.py_buffer(offsets), pa.py_buffer(data)]
                columns[name] = pa.Array.from_buffers(pa.binary(), rows, buffers, 0)
                continue
            values, (validity, nulls) = parts[0], parts[1]
            validity = None if validity is None else pa.py_buffer(validity)
            value_type = pa.int64() if kind == _INT64 else pa.int32()
            array = pa.Array.from_buffers(value_type, rows, [validity, pa.py_buffer(values)], nulls)
            if kind == _WORDS:
                array = pa.DictionaryArray.from_arrays(array, pa.array(parts[2], pa.string()))
            columns[name] = array
        return columns


FRAME_FIELDS = (
    "seq",
    "recv_ns",
    "mono_ns",
    "conn",
    "stream",
    "kind",
    "payload",
    "target",
    "symbol",
    "exch_ns",
)  # Frame's fields, in its constructor's order

# how the compiled builder makes each memtable column (see rtcap._speedups.frame_columns):
# (field, kind, nullable), the kind read off the field's type in FRAME_SCHEMA
_INT64, _INT32, _BINARY, _WORDS = range(4)
_KINDS = {pa.int64(): _INT64, pa.int32(): _INT32, pa.binary(): _BINARY, DICT: _WORDS}
_MEMTABLE_SPECS = tuple(
    (name, _KINDS[FRAME_SCHEMA.field(name).type], FRAME_SCHEMA.field(name).nullable)
    for name in FRAME_FIELDS
)


def payload_bytes(table: pa.Table) -> int:
    """Payload bytes of a frames table's rows."""
    return pc.sum(pc.binary_length(table.column("payload"))).as_py() or 0


def column_values(column: pa.Array | pa.ChunkedArray) -> list:
    """A column as Python values. Dictionary-encoded strings map their indices through the
    dictionary (each distinct string becomes one object: ~60x faster than ``to_pylist`` of
    the dictionary array); timestamps come back as integers of their unit."""
    if isinstance(column, pa.ChunkedArray):
        if column.num_chunks != 1:
            return [value for chunk in column.chunks for value in column_values(chunk)]
        column = column.chunk(0)
    if pa.types.is_dictionary(column.type):
        words = column.dictionary.to_pylist()
        indices = column.indices.to_pylist()
        if column.null_count:
            return [None if index is None else words[index] for index in indices]
        return [words[index] for index in indices]
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.int64())
    return column.to_pylist()


def table_to_frames(table: pa.Table) -> list[Frame]:
    """Back from Arrow to frames (payloads as ``bytes``), column by column."""
    return next(frame_chunks(table, max(table.num_rows, 1)), [])


def frame_chunks(table: pa.Table, chunk: int) -> Iterator[list[Frame]]:
    """The frames of ``table`` in lists of up to ``chunk`` rows, in row order.

    With the compiled fast paths, frames are built straight from the Arrow buffers (whose
    layout is read once per table); any other table, or without them, goes column by column
    through Python lists.
    """
    specs = _buffer_specs(table) if speedups is not None else None
    rows = table.num_rows
    for start in range(0, rows, chunk):
        length = min(chunk, rows - start)
        frames = None
        if specs is not None:
            frames = speedups.frames_from_arrays(Frame, start, length, specs)
        if frames is None:
            part = table.slice(start, length)
            frames = list(map(Frame, *(column_values(part.column(n)) for n in FRAME_FIELDS)))
        yield frames


_SIGNED = {pa.int8(): 1, pa.int16(): 2, pa.int32(): 4, pa.int64(): 8}
_BINARY_OFFSETS = {pa.binary(): 4, pa.large_binary(): 8}


def _buffer_spec(name: str, array: pa.Array) -> tuple | None:
    """How the compiled builder reads one column (see ``rtcap._speedups``); ``None`` when it
    is not a layout it reads (unsigned or nanosecond-time columns of old captures, say)."""
    kind = array.type
    if pa.types.is_dictionary(kind):
        width = _SIGNED.get(kind.index_type)
        if width is None or not pa.types.is_string(kind.value_type):
            return None
        indices = array.indices
        validity, values = indices.buffers()
        return name, 1, width, indices.offset, validity, values, array.dictionary.to_pylist()
    width = _SIGNED.get(kind)
    if width is not None:
        validity, values = array.buffers()
        return name, 0, width, array.offset, validity, values, None
    width = _BINARY_OFFSETS.get(kind)
    if width is not None:
        validity, offsets, data = array.buffers()
        return name, 2, width, array.offset, validity, offsets, data if data is not None else b""
    return None


def _buffer_specs(table: pa.Table) -> list[tuple] | None:
    specs = []
    for name in FRAME_FIELDS:
        column = table.column(name)
        if column.num_chunks != 1:
            return None
        spec = _buffer_spec(name, column.chunk(0))
        if spec is None:
            return None
        specs.append(spec)
    return specs


def bars_to_table(bars: list[ClosedBar]) -> pa.Table:
    """Live bars in :data:`BAR_SCHEMA`."""
    start = pa.array([b.start_ns for _, b, _ in bars], pa.int64())
    end = pa.array([b.end_ns for _, b, _ in bars], pa.int64())
    table = pa.table(
        {
            "instrument": [i for i, _, _ in bars],
            "timeframe": [b.timeframe for _, b, _ in bars],
            "start_ns": start,
            "end_ns": end,
            "start_time": _micros(start),
            "end_time": _micros(end),
            "open": pa.array([b.open for _, b, _ in bars], pa.float64()),
            "high": pa.array([b.high for _, b, _ in bars], pa.float64()),
            "low": pa.array([b.low for _, b, _ in bars], pa.float64()),
            "close": pa.array([b.close for _, b, _ in bars], pa.float64()),
            "volume": pa.array([float(b.volume) for _, b, _ in bars], pa.float64()),
            "trades": pa.array([b.trades for _, b, _ in bars], pa.int64()),
            "gap": pa.array([b.gap for _, b, _ in bars], pa.bool_()),
            "flat": pa.array([b.flat for _, b, _ in bars], pa.bool_()),
            "closed_seq": pa.array([s for _, _, s in bars], pa.int64()),
        }
    )
    return table.cast(BAR_SCHEMA)


def table_to_bars(table: pa.Table) -> list[ClosedBar]:
    """Back from bars rows (either version) to bars (whole volumes as ``int``, as live)."""
    table = bars_v2(table)
    bars = []
    for row in table.to_pylist():
        volume = row["volume"]
        bar = Bar(
            row["timeframe"],
            row["start_ns"],
            row["end_ns"],
            row["open"],
            row["high"],
            row["low"],
            row["close"],
            int(volume) if float(volume).is_integer() else volume,
            row["trades"],
            row["gap"],
            row["flat"],
        )
        bars.append((row["instrument"], bar, row["closed_seq"]))
    return bars
