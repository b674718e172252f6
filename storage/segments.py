"""Sealing frames into Parquet segment files: tmp-write, fsync, rename, one file per UTC date.

Sealing streams: tables arrive one journal block at a time and leave as row groups, so memory
holds at most one row group per date being written, however large the segment. Pages carry
CRC checksums and every file's sha256 goes into the manifest, so readers can check what they
read. A failed seal removes every file it made and leaves the journal as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rtcap.storage.identity import segment_feeds
from rtcap.storage.manifest import fsync_dir
from rtcap.storage.placement import HERE, Placement
from rtcap.storage.schema import (
    BAR_SCHEMA,
    DICTIONARY_COLUMNS,
    FRAME_SCHEMA,
    bars_v2,
    frames_v2,
    payload_bytes,
)

ROW_GROUP_ROWS = 100_000
ROW_GROUP_BYTES = 16 * 1024 * 1024  # of payload: bounds a seal's memory on large frames
SEAL_LEVEL = 3  # hot: keeps pace with the wire (bench/storage.py); closed captures are compacted
DAY_NS = 86_400 * 1_000_000_000
# Names rtcap gives the files it seals; recovery adopts or removes nothing else.
PART_TMP_NAME = re.compile(r"^\.part-(?:\d{8}-)?\d{6}(?:-\d+)?\.parquet\.tmp$")
BARS_TMP_NAME = re.compile(r"^\.bars-(?:\d{8}-)?\d{6}(?:-\d+)?\.parquet\.tmp$")


# Ascending integers and times: delta encoding stores their small steps (cheaper to compress
# and smaller than PLAIN); every engine reading Parquet 2 encodings reads them.
DELTA_COLUMNS = {
    name: "DELTA_BINARY_PACKED"
    for name in ("seq", "recv_ns", "recv_time", "mono_ns", "exch_ns", "exch_time")
}


def utc_date(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d")


HASH_BLOCK = 8 << 20


def sha256_file(path: Path) -> str:
    with open(path, "rb") as handle:
        return sha256_stream(handle)


def sha256_stream(stream: Any) -> str:
    """The sha256 of what ``stream`` (anything with ``read(n)``: a file, a store's stream)
    holds from here to its end: the digest every manifest entry lists."""
    digest = hashlib.sha256()
    # Large blocks: each read and each update gives up the GIL, and getting it back from a
    # busy thread (a replay reading ahead) can take a switch interval per call.
    for block in iter(lambda: stream.read(HASH_BLOCK), b""):
        digest.update(block)
    return digest.hexdigest()


def free_name(folder: Path, stem: str, number: int) -> str:
    """``<stem>-<number>.parquet``, or with a ``-K`` suffix if something already holds it."""
    name = f"{stem}-{number:06d}.parquet"
    suffix = 0
    while (folder / name).exists() or (folder / f".{name}.tmp").exists():
        suffix += 1
        name = f"{stem}-{number:06d}-{suffix}.parquet"
    return name


def publish(tmp: Path, final: Path) -> None:
    """fsync ``tmp``, rename it to ``final`` and fsync the folder: all or nothing on disk."""
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, final)
    fsync_dir(final.parent)


@dataclass
class _DateFile:
    """One date's Parquet file while a segment is being sealed."""

    tmp: Path
    final: Path
    relative: str  # its path in the manifest (storage.placement)
    writer: pq.ParquetWriter
    pending: list[pa.Table] = field(default_factory=list)
    pending_rows: int = 0
    pending_bytes: int = 0
    rows: int = 0
    first_seq: int | None = None
    last_seq: int | None = None


class SegmentSealer:
    """Streams frame tables (in seq order) into ``frames/date=…/part-<number>.parquet``."""

    def __init__(
        self,
        directory: Path,
        number: int,
        *,
        level: int = SEAL_LEVEL,
        row_group_rows: int = ROW_GROUP_ROWS,
        row_group_bytes: int = ROW_GROUP_BYTES,
        placement: Placement = HERE,
    ) -> None:
        self.directory = directory
        self.placement = placement
        self.row_group_bytes = row_group_bytes
        self.number = number
        self.level = level
        self.row_group_rows = row_group_rows
        self.files: dict[str, _DateFile] = {}
        self.published: list[Path] = []
        self.rows = 0
        self.payload_bytes = 0
        self.first_seq: int | None = None
        self.last_seq: int | None = None
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self.feeds: set[tuple[str, str, str]] = set()

    def add(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        table = frames_v2(table)  # a journal written before frames/2 seals as frames/2
        recv = table.column("recv_ns")
        days = pc.divide(recv, pa.scalar(DAY_NS, pa.int64()))
        unique = pc.unique(days).to_pylist()
        for day in sorted(unique):
            rows = table if len(unique) == 1 else table.filter(pc.equal(days, day))
            self._add_to_date(utc_date(day * DAY_NS), rows)
        seqs = table.column("seq")
        first, last = (v.as_py() for v in pc.min_max(seqs).values())
        start, end = (v.as_py() for v in pc.min_max(recv).values())
        self.first_seq = first if self.first_seq is None else min(self.first_seq, first)
        self.last_seq = last if self.last_seq is None else max(self.last_seq, last)
        self.first_ns = start if self.first_ns is None else min(self.first_ns, start)
        self.last_ns = end if self.last_ns is None else max(self.last_ns, end)
        self.rows += table.num_rows
        self.payload_bytes += payload_bytes(table)
        self.feeds |= segment_feeds(table)

    def _add_to_date(self, date: str, rows: pa.Table) -> None:
        file = self.files.get(date)
        if file is None:
            relative = self.placement.frames_folder(date)
            folder = self.directory / relative
            folder.mkdir(parents=True, exist_ok=True)
            name = free_name(folder, self.placement.stem("part"), self.number)
            tmp = folder / f".{name}.tmp"
            writer = pq.ParquetWriter(
                tmp,
                FRAME_SCHEMA,
                compression="zstd",
                compression_level=self.level,
                use_dictionary=DICTIONARY_COLUMNS,
                column_encoding=DELTA_COLUMNS,
                write_statistics=True,
                write_page_checksum=True,
                sorting_columns=[pq.SortingColumn(0)],
            )
            file = self.files[date] = _DateFile(tmp, folder / name, f"{relative}/{name}", writer)
        seqs = rows.column("seq")
        first, last = (v.as_py() for v in pc.min_max(seqs).values())
        file.first_seq = first if file.first_seq is None else min(file.first_seq, first)
        file.last_seq = last if file.last_seq is None else max(file.last_seq, last)
        file.pending.append(rows)
        file.pending_rows += rows.num_rows
        file.pending_bytes += rows.column("payload").nbytes
        file.rows += rows.num_rows
        if file.pending_rows >= self.row_group_rows or file.pending_bytes >= self.row_group_bytes:
            self._write_pending(file)

    def _write_pending(self, file: _DateFile) -> None:
        if file.pending:
            table = pa.concat_tables(file.pending).combine_chunks()
            file.writer.write_table(table, row_group_size=max(self.row_group_rows, len(table)))
            file.pending, file.pending_rows, file.pending_bytes = [], 0, 0
            del table
            pa.default_memory_pool().release_unused()  # give the row group's memory back

    def finish(self) -> dict[str, Any] | None:
        """Close, publish every date's file and return the manifest entry (``None`` if empty)."""
        entries = []
        for _date, file in sorted(self.files.items()):
            self._write_pending(file)
            file.writer.add_key_value_metadata(
                {
                    "rtcap.segment": str(self.number),
                    "rtcap.first_seq": str(file.first_seq),
                    "rtcap.last_seq": str(file.last_seq),
                }
            )
            file.writer.close()
            publish(file.tmp, file.final)
            self.published.append(file.final)
            entries.append(
                {
                    "path": file.relative,
                    "rows": file.rows,
                    "bytes": file.final.stat().st_size,
                    "sha256": sha256_file(file.final),
                    "first_seq": file.first_seq,
                    "last_seq": file.last_seq,
                }
            )
        if not self.rows:
            return None
        return {
            "number": self.number,
            "rows": self.rows,
            "payload_bytes": self.payload_bytes,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "first_ns": self.first_ns,
            "last_ns": self.last_ns,
            "feeds": sorted(self.feeds),  # add_segment moves them to the capture's "feeds"
            "files": entries,
        }

    def abort(self) -> None:
        """Remove every file this seal made (they are unlisted; the journal still has it all)."""
        for file in self.files.values():
            with contextlib.suppress(Exception):
                file.writer.close()
            with contextlib.suppress(OSError):
                file.tmp.unlink()
        for path in self.published:
            with contextlib.suppress(OSError):
                path.unlink()


def seal_segment(
    directory: Path,
    number: int,
    tables: pa.Table | Iterable[pa.Table],
    *,
    level: int = SEAL_LEVEL,
    row_group_rows: int = ROW_GROUP_ROWS,
    keep: Callable[[pa.Table], pa.Table] | None = None,
    placement: Placement = HERE,
) -> dict[str, Any] | None:
    """Write frame tables (in seq order) as ``frames/date=…/part-<number>.parquet`` files, one
    per UTC date of ``recv_ns``, and return the segment's manifest entry (``None`` when no row
    is left after ``keep``). On any failure nothing is left behind and the error propagates."""
    sealer = SegmentSealer(
        directory, number, level=level, row_group_rows=row_group_rows, placement=placement
    )
    try:
        for table in [tables] if isinstance(tables, pa.Table) else tables:
            sealer.add(keep(table) if keep is not None else table)
        return sealer.finish()
    except BaseException:
        sealer.abort()
        raise


def write_bars_files(
    directory: Path, number: int, tables: Iterable[pa.Table], placement: Placement = HERE
) -> list[dict]:
    """Live bars of one segment as ``bars/bars-<number>.parquet`` (in a dataset's tables, one
    file per UTC date of the bars' starts: :mod:`rtcap.storage.placement`); their manifest
    entries (none without bars). On any failure nothing is left behind."""
    table = pa.concat_tables([bars_v2(t) for t in tables] or [BAR_SCHEMA.empty_table()])
    if not table.num_rows:
        return []
    if placement.in_tables:
        days = pc.divide(table.column("start_ns"), pa.scalar(DAY_NS, pa.int64()))
        parts = [
            (placement.bars_folder(utc_date(day * DAY_NS)), table.filter(pc.equal(days, day)))
            for day in sorted(pc.unique(days).to_pylist())
        ]
    else:
        parts = [(placement.bars_folder(""), table)]
    written: list[Path] = []
    entries = []
    try:
        for relative, rows in parts:
            folder = directory / relative
            folder.mkdir(parents=True, exist_ok=True)
            name = free_name(folder, placement.stem("bars"), number)
            tmp, final = folder / f".{name}.tmp", folder / name
            written.append(tmp)
            pq.write_table(rows, tmp, compression="zstd", write_page_checksum=True)
            publish(tmp, final)
            written.append(final)
            entries.append(
                {
                    "path": f"{relative}/{name}",
                    "rows": rows.num_rows,
                    "sha256": sha256_file(final),
                    "first_seq": pc.min(rows.column("closed_seq")).as_py(),
                    "last_seq": pc.max(rows.column("closed_seq")).as_py(),
                }
            )
    except BaseException:
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    return entries
