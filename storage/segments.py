"""Sealing frames into Parquet segment files: tmp-write, fsync, rename, one file per UTC date."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from rtcap.storage.manifest import fsync_dir
from rtcap.storage.schema import DICTIONARY_COLUMNS, FRAME_SCHEMA

ROW_GROUP_ROWS = 100_000
SEAL_LEVEL = 6  # smaller than gzip-6 lines on real Binance data, at zstd-3 speed
DAY_NS = 86_400 * 1_000_000_000


def utc_date(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def seal_segment(
    directory: Path,
    number: int,
    table: pa.Table,
    *,
    level: int = SEAL_LEVEL,
    row_group_rows: int = ROW_GROUP_ROWS,
) -> dict[str, Any]:
    """Write ``table`` (frames in seq order) as ``frames/date=…/part-<number>.parquet`` files,
    one per UTC date of ``recv_ns``, and return the segment's manifest entry."""
    recv = table.column("recv_ns").cast(pa.int64())
    days = pc.divide(recv, pa.scalar(DAY_NS, pa.int64()))
    files = []
    for day in sorted(pc.unique(days).to_pylist()):
        rows = table.filter(pc.equal(days, day)) if pc.min(days) != pc.max(days) else table
        date = utc_date(day * DAY_NS)
        folder = directory / "frames" / f"date={date}"
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"part-{number:06d}.parquet"
        tmp = folder / f".part-{number:06d}.parquet.tmp"
        seqs = rows.column("seq")
        first, last = pc.min(seqs).as_py(), pc.max(seqs).as_py()
        metadata = {
            "rtcap.segment": str(number),
            "rtcap.first_seq": str(first),
            "rtcap.last_seq": str(last),
        }
        with pq.ParquetWriter(
            tmp,
            FRAME_SCHEMA,
            compression="zstd",
            compression_level=level,
            use_dictionary=DICTIONARY_COLUMNS,
            write_statistics=True,
            sorting_columns=[pq.SortingColumn(0)],
        ) as writer:
            writer.add_key_value_metadata(metadata)
            writer.write_table(rows, row_group_size=row_group_rows)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)
        fsync_dir(folder)
        files.append(
            {
                "path": final.relative_to(directory).as_posix(),
                "rows": rows.num_rows,
                "bytes": final.stat().st_size,
                "sha256": sha256_file(final),
                "first_seq": first,
                "last_seq": last,
            }
        )
    seqs = table.column("seq")
    return {
        "number": number,
        "rows": table.num_rows,
        "payload_bytes": pc.sum(pc.binary_length(table.column("payload"))).as_py() or 0,
        "first_seq": pc.min(seqs).as_py(),
        "last_seq": pc.max(seqs).as_py(),
        "first_ns": pc.min(recv).as_py(),
        "last_ns": pc.max(recv).as_py(),
        "files": files,
    }
