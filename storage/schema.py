"""The Arrow/Parquet schemas of a capture (frames and live bars) and the conversions between
them and :class:`Frame` / :class:`Bar` objects."""

from __future__ import annotations

import pyarrow as pa

from rtcap.models import Bar, Frame

DICT = pa.dictionary(pa.int32(), pa.string())
FRAME_SCHEMA = pa.schema(
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
DICTIONARY_COLUMNS = ["stream", "kind", "target", "symbol"]
BAR_SCHEMA = pa.schema(
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
ClosedBar = tuple[str, Bar, int]  # (instrument, bar, seq of the row that closed it)


class FrameColumns:
    """Frames kept column by column as they arrive: the open segment's memtable."""

    __slots__ = (
        "conn",
        "exch",
        "kind",
        "mono",
        "payload",
        "recv",
        "seq",
        "stream",
        "symbol",
        "target",
    )

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, [])

    def __len__(self) -> int:
        return len(self.seq)

    def append(self, frame: Frame) -> None:
        self.seq.append(frame.seq)
        self.recv.append(frame.recv_ns)
        self.mono.append(frame.mono_ns)
        self.conn.append(frame.conn)
        self.stream.append(frame.stream)
        self.kind.append(frame.kind)
        self.payload.append(frame.payload)
        self.target.append(frame.target)
        self.symbol.append(frame.symbol)
        self.exch.append(frame.exch_ns)

    @classmethod
    def of(cls, frames: list[Frame]) -> FrameColumns:
        columns = cls()
        for frame in frames:
            columns.append(frame)
        return columns

    def to_table(self) -> pa.Table:
        """Columnar copy in :data:`FRAME_SCHEMA`."""
        columns = {
            "seq": pa.array(self.seq, pa.uint64()),
            "recv_ns": pa.array(self.recv, pa.int64()).cast(pa.timestamp("ns", tz="UTC")),
            "mono_ns": pa.array(self.mono, pa.int64()),
            "conn": pa.array(self.conn, pa.uint32()),
            "stream": pa.array(self.stream, pa.string()).dictionary_encode(),
            "kind": pa.array(self.kind, pa.string()).dictionary_encode(),
            "payload": pa.array(self.payload, pa.binary()),
            "target": pa.array(self.target, pa.string()).dictionary_encode(),
            "symbol": pa.array(self.symbol, pa.string()).dictionary_encode(),
            "exch_ns": pa.array(self.exch, pa.int64()),
        }
        return pa.Table.from_pydict(columns, schema=FRAME_SCHEMA)


def frames_to_table(frames: list[Frame]) -> pa.Table:
    """Columnar copy of ``frames`` in :data:`FRAME_SCHEMA`."""
    return FrameColumns.of(frames).to_table()


def table_to_frames(table: pa.Table) -> list[Frame]:
    """Back from Arrow to frames (payloads as ``bytes``)."""

    def values(name: str) -> list:
        column = table.column(name)
        if pa.types.is_dictionary(column.type):
            column = column.cast(pa.string())  # 20x faster to_pylist than dictionary values
        elif pa.types.is_timestamp(column.type):
            column = column.cast(pa.int64())
        return column.to_pylist()

    return [
        Frame(seq, recv, mono, conn, stream, kind, payload, target, symbol, exch)
        for seq, recv, mono, conn, stream, kind, payload, target, symbol, exch in zip(
            values("seq"),
            values("recv_ns"),
            values("mono_ns"),
            values("conn"),
            values("stream"),
            values("kind"),
            values("payload"),
            values("target"),
            values("symbol"),
            values("exch_ns"),
            strict=True,
        )
    ]


def bars_to_table(bars: list[ClosedBar]) -> pa.Table:
    """Live bars in :data:`BAR_SCHEMA`."""
    table = pa.table(
        {
            "instrument": [i for i, _, _ in bars],
            "timeframe": [b.timeframe for _, b, _ in bars],
            "start_ns": pa.array([b.start_ns for _, b, _ in bars], pa.int64()),
            "end_ns": pa.array([b.end_ns for _, b, _ in bars], pa.int64()),
            "open": pa.array([b.open for _, b, _ in bars], pa.float64()),
            "high": pa.array([b.high for _, b, _ in bars], pa.float64()),
            "low": pa.array([b.low for _, b, _ in bars], pa.float64()),
            "close": pa.array([b.close for _, b, _ in bars], pa.float64()),
            "volume": pa.array([float(b.volume) for _, b, _ in bars], pa.float64()),
            "trades": pa.array([b.trades for _, b, _ in bars], pa.int64()),
            "gap": pa.array([b.gap for _, b, _ in bars], pa.bool_()),
            "flat": pa.array([b.flat for _, b, _ in bars], pa.bool_()),
            "closed_seq": pa.array([s for _, _, s in bars], pa.uint64()),
        }
    )
    return table.cast(BAR_SCHEMA)


def table_to_bars(table: pa.Table) -> list[ClosedBar]:
    """Back from :data:`BAR_SCHEMA` rows to bars (whole volumes as ``int``, as live)."""
    table = table.cast(
        pa.schema(
            [
                pa.field(f.name, pa.int64()) if pa.types.is_timestamp(f.type) else f
                for f in table.schema
            ]
        )
    )
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
