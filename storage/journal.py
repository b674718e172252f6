"""The write-ahead journal of an open segment: checksummed blocks of Arrow record batches.

File layout: a sequence of blocks, each ``RTJ2 | u32 size | u32 rows | u32 crc32(body)`` and a
body that is one Arrow IPC stream (zstd-compressed buffers) holding the frames appended since
the previous flush (every 100 ms by default). A crash therefore loses at most one flush
interval, and blocks are independent: a torn tail or a flipped bit is detected by size and
checksum, reported, and everything before it is kept. Building the batch once per flush, in
Arrow's C++ code, keeps the per-frame cost of journaling near zero.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
from rtcap.storage.schema import FRAME_SCHEMA, table_to_frames

from rtcap.models import Frame

MAGIC = b"RTJ2"
BLOCK_HEADER = struct.Struct("<4sIII")
FSYNC_POLICIES = ("always", "interval", "never")
_IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression="zstd")


def encode_block(table: pa.Table) -> bytes:
    """One journal block holding ``table``."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, FRAME_SCHEMA, options=_IPC_OPTIONS) as writer:
        writer.write_table(table)
    body = sink.getvalue().to_pybytes()
    return BLOCK_HEADER.pack(MAGIC, len(body), table.num_rows, zlib.crc32(body)) + body


class JournalWriter:
    """Appends blocks to one segment's journal file and syncs it per the fsync policy."""

    def __init__(self, path: Path, *, fsync: str = "interval", fsync_interval_s: float = 1.0):
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync policy must be one of {FSYNC_POLICIES}, got {fsync!r}")
        self.path = path
        self._file = open(path, "ab")  # noqa: SIM115 - kept open for the segment's life
        self.fsync = fsync
        self.fsync_interval_s = fsync_interval_s
        self._last_fsync = 0.0
        self.rows = 0
        self.written_bytes = 0

    def write(self, table: pa.Table, now: float) -> int:
        """Append ``table`` as one block; returns the bytes written."""
        if table.num_rows == 0:
            return 0
        block = encode_block(table)
        self._file.write(block)
        self._file.flush()
        if self.fsync == "always" or (
            self.fsync == "interval" and now - self._last_fsync >= self.fsync_interval_s
        ):
            os.fsync(self._file.fileno())
            self._last_fsync = now
        self.rows += table.num_rows
        self.written_bytes += len(block)
        return len(block)

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()


@dataclass
class JournalScan:
    """What reading a journal found: the good blocks and, if any, where and why it stopped."""

    tables: list[pa.Table] = field(default_factory=list)
    problem: str | None = None

    @property
    def blocks(self) -> int:
        return len(self.tables)

    @property
    def rows(self) -> int:
        return sum(t.num_rows for t in self.tables)

    def table(self) -> pa.Table:
        return pa.concat_tables(self.tables) if self.tables else FRAME_SCHEMA.empty_table()

    @property
    def frames(self) -> list[Frame]:
        return table_to_frames(self.table())


def read_journal(path: Path) -> JournalScan:
    """Every block up to the first torn or corrupt one."""
    data = path.read_bytes()
    scan = JournalScan()
    offset = 0
    while offset < len(data):
        if len(data) - offset < BLOCK_HEADER.size:
            scan.problem = f"torn block header at byte {offset}"
            break
        magic, size, rows, crc = BLOCK_HEADER.unpack_from(data, offset)
        if magic != MAGIC:
            scan.problem = f"bad block magic at byte {offset}"
            break
        body = data[offset + BLOCK_HEADER.size : offset + BLOCK_HEADER.size + size]
        if len(body) < size:
            scan.problem = f"torn block at byte {offset} ({len(body)} of {size} bytes)"
            break
        if zlib.crc32(body) != crc:
            scan.problem = f"checksum mismatch in block at byte {offset}"
            break
        try:
            table = pa.ipc.open_stream(body).read_all()
        except (pa.ArrowException, ValueError) as exc:
            scan.problem = f"undecodable block at byte {offset}: {exc}"
            break
        if table.num_rows != rows or not table.schema.equals(FRAME_SCHEMA):
            scan.problem = f"block at byte {offset} does not match its header"
            break
        scan.tables.append(table)
        offset += BLOCK_HEADER.size + size
    return scan
