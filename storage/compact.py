"""``rtcap compact``: rewrite a closed capture's sealed files in the cold form, proven lossless.

Live sealing stays fast (zstd-3 over each frame's text) so a recorder keeps pace with the wire.
A closed capture is then compacted: every frame the codec understands becomes typed columns
plus a shape (:mod:`rtcap.storage.shapes`), and its raw payload is dropped only where the shape
renders its exact bytes. Per file: read it (checked against the manifest), write the cold file
beside it under a fresh name, read the new file back and compare every frame (times, hints and
payload bytes) with the old file's; only when they are equal is the manifest switched to the new
file (atomically) and the old one removed. A crash at any point leaves the old file listed or
the new one, never neither; an unlisted cold file left by a crash is removed by the next
``compact`` (nothing lists it).

The encodings, level and row-group size below were chosen by measuring the real Binance
captures (``bench/cold.py``); they are recorded in the manifest's ``cold`` entry.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rtcap.storage import manifest as manifests
from rtcap.storage.dataset import find_captures
from rtcap.storage.errors import CaptureDamaged, CaptureError, first_line
from rtcap.storage.integrity import check_file, open_capture, open_segment
from rtcap.storage.lock import lock_capture, unlock_capture
from rtcap.storage.migrate import switch_files
from rtcap.storage.placement import placement_of
from rtcap.storage.schema import (
    COLD_SCHEMA,
    DICTIONARY_COLUMNS,
    FRAME_SCHEMA,
    MESSAGES_KEY,
    SHAPES_KEY,
    frames_v2,
)
from rtcap.storage.segments import free_name, publish, sha256_file
from rtcap.storage.shapes import (
    INT,
    ITEM_TIME,
    LEVELS,
    STRING,
    TIME,
    VALUE_KINDS,
    Shape,
    column_table,
    level_columns,
    shapes_json,
    typed_columns,
)

FORM = "typed/2"
COLD_LEVEL = 19
COLD_ROW_GROUP_ROWS = 200_000  # a Spark task reads one row group at most (analysis.sparkplan)
# Ascending or slowly moving integers (the frame's own and every integer field of the codec's
# map): their steps are small (delta); level lists hold prices and sizes whose bytes split into
# streams compress best (byte-stream split). Measured in bench/cold.py on the real Binance
# captures.
COLD_ENCODINGS: dict[str, str] = {
    **{
        name: "DELTA_BINARY_PACKED"
        for name in [
            "seq",
            "recv_ns",
            "mono_ns",
            "exch_ns",
            *(field for field, kind in VALUE_KINDS.items() if kind in (INT, TIME)),
        ]
    },
    # ProjectX items' times: one message's items mostly share a stamp, messages follow on
    **{
        f"{field}.list.element": "DELTA_BINARY_PACKED"
        for field, kind in VALUE_KINDS.items()
        if kind == ITEM_TIME
    },
    **{
        f"{values}.list.element": "BYTE_STREAM_SPLIT"
        for field, kind in VALUE_KINDS.items()
        if kind == LEVELS
        for values in level_columns(field)
    },
}
COLD_DICTIONARY = [
    *DICTIONARY_COLUMNS,
    "message",
    *(field for field, kind in VALUE_KINDS.items() if kind == STRING),
]


@dataclass
class CompactReport:
    """What one capture's compaction did."""

    path: Path
    files_rewritten: int = 0
    already_cold: int = 0
    frames: int = 0
    typed: int = 0  # frames with typed columns (their codec knows their kind)
    raw: int = 0  # frames whose payload is kept (no shape renders their bytes)
    hot_bytes: int = 0
    cold_bytes: int = 0
    seconds: float = 0.0
    skipped: str = ""  # why a capture was left as it is

    @property
    def ratio(self) -> float:
        return self.cold_bytes / self.hot_bytes if self.hot_bytes else 1.0


def cold_table(frames: pa.Table, shapes: list[Shape] | None = None) -> pa.Table:
    """A frames table (any version) in the cold form, its shapes in the schema metadata
    (``shapes``: the file's shapes so far, when a file is compacted a block at a time)."""
    frames = frames_v2(frames).combine_chunks()
    payloads = frames.column("payload").chunk(0) if frames.num_rows else pa.array([], pa.binary())
    typed, shapes = typed_columns(payloads, shapes)
    columns: dict[str, Any] = {name: frames.column(name) for name in COLD_SCHEMA.names
                               if name in FRAME_SCHEMA.names}  # fmt: skip
    columns["payload"] = pc.if_else(pc.is_null(typed["shape"]), payloads,
                                    pa.scalar(None, pa.binary()))  # fmt: skip
    columns.update(typed)
    messages = sorted(pc.unique(typed["message"].dictionary_decode().drop_null()).to_pylist())
    schema = COLD_SCHEMA.with_metadata(
        {
            **COLD_SCHEMA.metadata,
            SHAPES_KEY: shapes_json(shapes),
            MESSAGES_KEY: orjson.dumps(messages),
        }
    )
    return pa.Table.from_pydict(columns, schema=schema)


def by_message(table: pa.Table) -> pa.Table:
    """A cold table's rows grouped by message kind, in seq order within each (raw frames
    last): what one row group is written as."""
    order = pa.table({"message": table.column("message").cast(pa.string()),
                      "seq": table.column("seq")})  # fmt: skip
    keys = [("message", "ascending"), ("seq", "ascending")]
    return table.take(pc.sort_indices(order, sort_keys=keys))


def cold_writer(path: Path, schema: pa.Schema) -> pq.ParquetWriter:
    """A writer of a cold file with the measured encodings (see ``bench/cold.py``); each
    row group written is :data:`COLD_ROW_GROUP_ROWS` consecutive frames grouped by message."""
    return pq.ParquetWriter(
        path,
        schema,
        compression="zstd",
        compression_level=COLD_LEVEL,
        use_dictionary=COLD_DICTIONARY,
        column_encoding=COLD_ENCODINGS,
        write_statistics=True,
        write_page_checksum=True,
        sorting_columns=[pq.SortingColumn(0)],
    )


def same_frames(left: pa.Table, right: pa.Table) -> bool:
    """Whether two frames tables hold the same frames, field for field and byte for byte."""
    if left.num_rows != right.num_rows:
        return False
    for name in FRAME_SCHEMA.names:
        a, b = left.column(name), right.column(name)
        if pa.types.is_dictionary(a.type):
            a, b = a.cast(pa.string()), b.cast(pa.string())
        if not a.equals(b):
            return False
    return True


def is_cold_file(path: Path | str) -> bool:
    return "shape" in pq.read_schema(path).names


def table_sizes(paths: list[Path]) -> dict[str, int]:
    """Compressed bytes per table (:func:`rtcap.storage.shapes.column_table`) of cold files,
    read from their footers."""
    sizes: dict[str, int] = {}
    for path in paths:
        metadata = pq.read_metadata(path)
        for group in range(metadata.num_row_groups):
            row_group = metadata.row_group(group)
            for index in range(row_group.num_columns):
                chunk = row_group.column(index)
                table = column_table(chunk.path_in_schema.split(".")[0])
                sizes[table] = sizes.get(table, 0) + chunk.total_compressed_size
    return sizes


def compact(path: str | Path) -> list[CompactReport]:
    """Compact the capture at ``path``, or every closed capture under a dataset root."""
    directory = Path(path)
    if not directory.exists():
        raise CaptureError(f"no capture at {directory}: check the path")
    captures = find_captures(directory)
    if not captures:
        raise CaptureError(f"no capture (manifest.json) at or under {directory}: check the path")
    return [compact_capture(capture) for capture in captures]


def compact_capture(directory: Path) -> CompactReport:
    """Rewrite every hot file of one closed capture in the cold form (see the module's
    docstring); a capture still being recorded is left as it is and says so."""
    report = CompactReport(directory)
    manifest = open_capture(directory)
    if manifest.get("status") == "recording":
        report.skipped = "still being recorded: compact it once it is closed"
        return report
    started = time.perf_counter()
    lock = lock_capture(directory, purpose="compacting it")
    try:
        _remove_leftovers(directory, manifest)
        stem = placement_of(manifest).stem("part")
        for segment in manifest["segments"]:
            for index, entry in enumerate(segment["files"]):
                file = check_file(directory, entry)
                if is_cold_file(file):
                    report.already_cold += 1
                    _count(report, entry)
                    continue
                segment["files"][index] = _compact_file(directory, file, entry, segment, stem)
                switch_files(directory, manifest, [entry["path"]])
                report.files_rewritten += 1
                _count(report, segment["files"][index])
        if report.files_rewritten:
            manifest["cold"] = {
                "form": FORM,
                "compression": f"zstd-{COLD_LEVEL}",
                "row_group_rows": COLD_ROW_GROUP_ROWS,
                "encodings": COLD_ENCODINGS,
                "dictionary": COLD_DICTIONARY,
            }
            manifests.save(directory, manifest)
    finally:
        unlock_capture(lock)
    report.seconds = time.perf_counter() - started
    return report


def _count(report: CompactReport, entry: dict[str, Any]) -> None:
    report.frames += entry.get("rows") or 0
    report.typed += entry.get("typed") or 0
    report.raw += entry.get("raw", entry.get("rows")) or 0
    report.hot_bytes += entry.get("hot_bytes") or entry.get("bytes") or 0
    report.cold_bytes += entry.get("bytes") or 0


def _compact_file(
    directory: Path, file: Path, entry: dict[str, Any], segment: dict[str, Any], stem: str
) -> dict[str, Any]:
    """Compact one hot file a block of :data:`COLD_ROW_GROUP_ROWS` frames at a time, so a
    day of millions of frames takes the memory of one block: each block is typed and spilled
    (Arrow IPC, zstd) beside the file, then written as one row group of the cold file once
    the file's shapes are all known (they are in its schema), then read back and compared
    with the hot block it came from."""
    _, hot = open_segment(directory, entry)
    name = free_name(file.parent, stem, segment["number"])
    tmp, final = file.parent / f".{name}.tmp", file.parent / name
    spill = file.parent / f".{name}{SPILL_SUFFIX}"
    metadata = hot.metadata.metadata or {}
    kept = {
        k.decode(): v.decode()
        for k, v in metadata.items()
        if k.startswith(b"rtcap.") and k not in (SHAPES_KEY, MESSAGES_KEY)
    }
    shapes: list[Shape] = []
    messages: set[str] = set()
    rows: list[int] = []  # of each block, in order
    typed = raw = 0
    try:
        # a stream, not a file: each block has its own dictionaries
        with pa.ipc.new_stream(str(spill), COLD_SCHEMA, options=SPILL_OPTIONS) as spilled:
            for block in _blocks(hot, file):
                cold = cold_table(block, shapes)
                spilled.write_table(by_message(cold).replace_schema_metadata(COLD_SCHEMA.metadata))
                rows.append(cold.num_rows)
                typed += cold.num_rows - cold.column("message").null_count
                raw += cold.column("shape").null_count
                messages.update(cold.column("message").unique().to_pylist())
        schema = COLD_SCHEMA.with_metadata(
            {
                **COLD_SCHEMA.metadata,
                SHAPES_KEY: shapes_json(shapes),
                MESSAGES_KEY: orjson.dumps(sorted(messages - {None})),
            }
        )
        with pa.memory_map(str(spill)) as source, cold_writer(tmp, schema) as writer:
            batches = iter(pa.ipc.open_stream(source))
            for count in rows:
                group: list[pa.RecordBatch] = []
                while sum(len(batch) for batch in group) < count:
                    group.append(next(batches))
                table = pa.Table.from_batches(group, COLD_SCHEMA).replace_schema_metadata(
                    schema.metadata
                )
                writer.write_table(table, row_group_size=COLD_ROW_GROUP_ROWS)
            writer.add_key_value_metadata(kept)
        spill.unlink()
        publish(tmp, final)
        _prove(directory, entry, hot, file, final)
    except BaseException:
        for leftover in (spill, tmp, final):
            with contextlib.suppress(OSError):
                leftover.unlink()
        raise
    return {
        **entry,
        "path": str(Path(entry["path"]).parent / name),
        "bytes": final.stat().st_size,
        "sha256": sha256_file(final),
        "form": FORM,
        "typed": typed,
        "raw": raw,
        "hot_bytes": entry.get("bytes") or file.stat().st_size,
    }


SPILL_OPTIONS = pa.ipc.IpcWriteOptions(compression="zstd")  # typed blocks awaiting their shapes
SPILL_SUFFIX = ".typed.tmp"


def _blocks(parquet: pq.ParquetFile, file: Path) -> Iterator[pa.Table]:
    """A hot file's frames (frames/2) in consecutive blocks of :data:`COLD_ROW_GROUP_ROWS`,
    the last one shorter (an empty file: one empty block)."""
    pending: list[pa.Table] = []
    count = 0
    given = False
    for index in range(parquet.num_row_groups):
        try:
            table = frames_v2(parquet.read_row_group(index))
        except (OSError, pa.ArrowException) as exc:
            raise CaptureDamaged(f"{file} is damaged ({first_line(exc)})") from None
        pending.append(table)
        count += table.num_rows
        while count >= COLD_ROW_GROUP_ROWS:
            whole = pa.concat_tables(pending)
            yield whole.slice(0, COLD_ROW_GROUP_ROWS)
            given = True
            pending, count = [whole.slice(COLD_ROW_GROUP_ROWS)], count - COLD_ROW_GROUP_ROWS
    if count or not given:
        yield pa.concat_tables(pending) if pending else FRAME_SCHEMA.empty_table()


def _prove(
    directory: Path, entry: dict[str, Any], hot: pq.ParquetFile, file: Path, cold: Path
) -> None:
    """Each row group of the cold file read back equals the hot block it was written from,
    field for field and byte for byte."""
    written = pq.ParquetFile(cold, page_checksum_verification=True)
    groups = range(written.num_row_groups)
    if all(
        block is not None
        and index is not None
        and same_frames(block, frames_v2(written.read_row_group(index)))
        for block, index in itertools.zip_longest(_blocks(hot, file), groups)
    ):
        return
    raise CaptureError(
        f"compacting {entry['path']} of {directory} changed its frames: nothing was switched; "
        "please report this"
    )


def _remove_leftovers(directory: Path, manifest: dict[str, Any]) -> None:
    """Cold files of this capture no manifest lists, and spills of typed blocks: what an
    interrupted compaction left."""
    frames = placement_of(manifest).frames_glob()
    for spill in directory.glob(f"{Path(frames).parent.as_posix()}/.*{SPILL_SUFFIX}"):
        if spill.is_file() and not spill.is_symlink():
            with contextlib.suppress(OSError):
                spill.unlink()
    listed = {f["path"] for s in manifest["segments"] for f in s["files"]}
    for path in directory.glob(frames):
        relative = path.relative_to(directory).as_posix()
        if relative not in listed and path.is_file() and not path.is_symlink():
            with contextlib.suppress(OSError, pa.ArrowException):
                if is_cold_file(path):
                    path.unlink()
