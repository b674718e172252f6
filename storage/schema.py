"""The Arrow/Parquet schema of capture frames and the conversion from :class:`Frame` lists."""

from __future__ import annotations

import pyarrow as pa

from rtcap.models import Frame

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
