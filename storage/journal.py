"""The write-ahead journal of an open segment: checksummed blocks of Arrow record batches.

File layout: a sequence of blocks, each ``RTJ2 | u32 size | u32 rows | u32 crc32(body)`` and a
body that is one Arrow IPC stream (lz4-compressed buffers) holding the rows appended since the
previous flush (every 100 ms by default). A crash therefore loses at most one flush interval.
Arrow names the codec in every batch, so journals written with zstd buffers (before rtcap
chose lz4) read the same. lz4 costs the recording thread less than zstd and its blocks read
back faster when sealed; the journal is twice the size on disk, which it keeps only until its
segment is sealed.

Blocks are independent, and damage costs only the damaged bytes: a reader that meets a torn,
corrupt or undecodable block records where and why, then searches forward for the next block
whose magic, size and checksum all hold, and carries on from there. Building the batch once per
flush, in Arrow's C++ code, keeps the per-row cost of journaling near zero.

The same format holds frames (:data:`FRAME_SCHEMA`) and live bars (:data:`BAR_SCHEMA`).
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from rtcap.models import Frame
from rtcap.storage.schema import FRAME_SCHEMA, readable_as, table_to_frames

MAGIC = b"RTJ2"
BLOCK_HEADER = struct.Struct("<4sIII")
FSYNC_POLICIES = ("always", "interval", "never")
MAX_BLOCK = 1 << 31  # a size field above this is damage, not a block
# Compressed on the writing thread: handing a block's buffers to Arrow's thread pool and
# waiting for them took longer than compressing them (ingest 1.6x -> 1.3x a zstd-3 line write
# while journaling, bench/storage.py), the pool's threads competing with the sealer's.
_IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4", use_threads=False)
_SEARCH_CHUNK = 1 << 20


def encode_block(table: pa.Table) -> bytes:
    """One journal block holding ``table``."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=_IPC_OPTIONS) as writer:
        writer.write_table(table)
    body = sink.getvalue().to_pybytes()
    return BLOCK_HEADER.pack(MAGIC, len(body), table.num_rows, zlib.crc32(body)) + body


class JournalWriter:
    """Appends blocks to one segment's journal file and syncs it per the fsync policy.

    A block is on disk whole or not at all: the file is unbuffered, and a write or sync that
    fails (a full disk, an I/O error) cuts the file back to the end of the last whole block
    before raising. Otherwise the torn bytes would stay and a later block written after them
    (once space returns) would be read past the damage, dropping the failed block's rows from
    the middle of the tape without anyone being told; the caller keeps them and retries."""

    def __init__(self, path: Path, *, fsync: str = "interval", fsync_interval_s: float = 1.0):
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync policy must be one of {FSYNC_POLICIES}, got {fsync!r}")
        self.path = path
        # kept open for the segment's life; unbuffered, so a failed write leaves no bytes
        # behind in Python for a later flush to append
        self._file = open(path, "ab", buffering=0)  # noqa: SIM115
        self.fsync = fsync
        self.fsync_interval_s = fsync_interval_s
        self._last_fsync = 0.0
        self._end = os.fstat(self._file.fileno()).st_size  # just past the last whole block
        self.rows = 0
        self.written_bytes = 0

    def write(self, table: pa.Table, now: float) -> int:
        """Append ``table`` as one block; returns the bytes written. On ``OSError`` the file
        holds exactly the blocks it held before the call."""
        if table.num_rows == 0:
            return 0
        block = encode_block(table)
        fd = self._file.fileno()
        try:
            view = memoryview(block)
            while view:
                view = view[os.write(fd, view) :]
            if self.fsync == "always" or (
                self.fsync == "interval" and now - self._last_fsync >= self.fsync_interval_s
            ):
                os.fsync(fd)
                self._last_fsync = now
        except OSError:
            self._cut_back()
            raise
        self._end += len(block)
        self.rows += table.num_rows
        self.written_bytes += len(block)
        return len(block)

    def _cut_back(self) -> None:
        """Drop whatever part of a failed block reached the file (freeing its space, too)."""
        # if even that fails, readers skip the torn bytes as damage; the rows are retried
        with contextlib.suppress(OSError):
            os.ftruncate(self._file.fileno(), self._end)

    @property
    def end(self) -> int:
        """Offset just past the last whole block: where the next block will start."""
        return self._end

    @property
    def closed(self) -> bool:
        return self._file.closed

    def close(self) -> None:
        if not self._file.closed:
            try:
                os.fsync(self._file.fileno())
            finally:
                self._file.close()


@dataclass(frozen=True)
class Damage:
    """Bytes ``[start, end)`` of a journal that held no readable block, and why."""

    start: int
    end: int
    reason: str

    def __str__(self) -> str:
        return f"{self.reason} (bytes {self.start}–{self.end})"


class JournalReader:
    """The good blocks of a journal, one table at a time, skipping damage.

    Iterating yields each intact block's table in file order; afterwards :attr:`damage` lists
    every stretch of bytes that held no intact block. Memory holds one block at a time."""

    def __init__(
        self,
        path: Path,
        schema: pa.Schema = FRAME_SCHEMA,
        *,
        start: int = 0,
        end: int | None = None,
    ) -> None:
        self.path = path
        self.schema = schema
        self.start = start
        self.end = end  # read only blocks that end by here (a journal still being written)
        self.offset = start  # just past the last intact block read
        self.damage: list[Damage] = []
        self.blocks = 0
        self.rows = 0

    def __iter__(self) -> Iterator[pa.Table]:
        with open(self.path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if self.end is not None:
                size = min(size, self.end)
            offset = self.start
            while offset < size:
                table, reason = self._block_at(handle, offset, size)
                if table is not None:
                    self.blocks += 1
                    self.rows += table.num_rows
                    offset = self.offset = handle.tell()
                    yield table
                    continue
                following = self._next_block(handle, offset + 1, size)
                self.damage.append(Damage(offset, following, reason))
                offset = self.offset = following

    def _block_at(self, handle, offset: int, size: int) -> tuple[pa.Table | None, str]:
        """The intact block starting at ``offset`` (handle left after it), or why there is none."""
        handle.seek(offset)
        header = handle.read(BLOCK_HEADER.size)
        if len(header) < BLOCK_HEADER.size:
            return None, "torn block header at the end"
        magic, length, rows, crc = BLOCK_HEADER.unpack(header)
        if magic != MAGIC:
            return None, "not a block"
        if length > MAX_BLOCK:
            return None, "bad block size"
        if offset + BLOCK_HEADER.size + length > size:
            return None, "torn block (it runs past the end of the file)"
        body = handle.read(length)
        if zlib.crc32(body) != crc:
            return None, "checksum mismatch"
        try:
            table = pa.ipc.open_stream(body).read_all()
        except (pa.ArrowException, ValueError) as exc:
            return None, f"undecodable block ({exc})"
        converted = readable_as(self.schema, table)
        if table.num_rows != rows or converted is None:
            return None, "block does not match its header or schema"
        return converted, ""

    def _next_block(self, handle, start: int, size: int) -> int:
        """Offset of the next intact block at or after ``start`` (``size`` if none)."""
        position = start
        while position < size:
            handle.seek(position)
            chunk = handle.read(_SEARCH_CHUNK + len(MAGIC) - 1)
            found = chunk.find(MAGIC)
            while found != -1:
                candidate = position + found
                if self._block_at(handle, candidate, size)[0] is not None:
                    return candidate
                found = chunk.find(MAGIC, found + 1)
            position += _SEARCH_CHUNK
        return size


@dataclass
class JournalScan:
    """A whole journal read into memory: its good blocks and the damage between them."""

    tables: list[pa.Table] = field(default_factory=list)
    damage: list[Damage] = field(default_factory=list)
    schema: pa.Schema = FRAME_SCHEMA

    @property
    def problem(self) -> str | None:
        """The damage found, in words (``None`` if the journal is intact)."""
        return "; ".join(map(str, self.damage)) or None

    @property
    def blocks(self) -> int:
        return len(self.tables)

    @property
    def rows(self) -> int:
        return sum(t.num_rows for t in self.tables)

    def table(self) -> pa.Table:
        return pa.concat_tables(self.tables) if self.tables else self.schema.empty_table()

    @property
    def frames(self) -> list[Frame]:
        return table_to_frames(self.table())


def read_journal(path: Path, schema: pa.Schema = FRAME_SCHEMA) -> JournalScan:
    """Every intact block of the journal at ``path``, with the damage found between them."""
    reader = JournalReader(path, schema)
    tables = list(reader)
    return JournalScan(tables, reader.damage, schema)
