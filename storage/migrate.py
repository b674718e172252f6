"""``rtcap migrate``: rewrite a capture's ``frames/1`` segments and ``bars/1`` files as
``frames/2`` / ``bars/2`` (the portable schema), proven lossless.

Every command reads ``frames/1`` as it is; migrating is for engines outside rtcap (Spark, Trino)
that cannot read unsigned or nanosecond-timestamp columns. For each old file: read it (checked
against the manifest), write the new file beside it under a fresh name, read the new file back
and compare a digest of every row (seq, times, connection, stream, kind, hints and payload
bytes) with the old one's; only when they are equal is the manifest switched to the new file
(atomically) and the old file removed. A crash at any point leaves either the old file listed
or the new one, never neither; an unlisted new file is an rtcap segment that ``recover`` adopts
or a temporary it removes.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from rtcap.storage import manifest as manifests
from rtcap.storage.errors import CaptureError
from rtcap.storage.integrity import check_file, open_capture, read_table
from rtcap.storage.lock import lock_capture, unlock_capture
from rtcap.storage.manifest import BARS_NAME
from rtcap.storage.placement import Placement, placement_from_path, placement_of
from rtcap.storage.schema import (
    BAR_SCHEMA,
    COLD_SCHEMAS,
    FRAME_SCHEMA,
    bars_v2,
    frames_v2,
    table_to_frames,
    written_as,
)
from rtcap.storage.segments import seal_segment, write_bars_files


@dataclass
class MigrationReport:
    files_rewritten: list[tuple[str, str]] = field(default_factory=list)  # (old, new)
    already_current: int = 0
    rows: int = 0
    to_tables: bool = False  # moved into the dataset root's tables
    digest: str = ""


def frames_digest(tables: list[pa.Table]) -> str:
    """sha256 of every frame's fields and payload, in seq order (either schema version)."""
    digest = hashlib.sha256()
    frames = sorted((f for t in tables for f in table_to_frames(frames_v2(t))), key=lambda f: f.seq)
    for f in frames:
        head = f"{f.seq}|{f.recv_ns}|{f.mono_ns}|{f.conn}|{f.stream}|{f.kind}|{f.target}|"
        digest.update(f"{head}{f.symbol}|{f.exch_ns}|{len(f.payload)}|".encode())
        digest.update(f.payload)
    return digest.hexdigest()


def bars_digest(tables: list[pa.Table]) -> str:
    rows = [row for t in tables for row in bars_v2(t).drop(["start_time", "end_time"]).to_pylist()]
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def migrate(path: str | Path) -> MigrationReport:
    """Rewrite the capture at ``path`` in frames/2 and, when it is a dataset's capture keeping
    its files in its own folder, move them into the root's tables (:func:`move_to_tables`)."""
    directory = Path(path)
    manifest = open_capture(directory)  # a capture with an open journal must be recovered first
    if manifest.get("status") == "recording":
        raise CaptureError(f"{directory} is still being recorded: migrate it once it is closed")
    lock = lock_capture(directory, purpose="migrating it")
    try:
        report = _migrate(directory, manifest)
        target = placement_from_path(directory, own_files_allowed=True)
        if target.in_tables and not placement_of(manifest).in_tables:
            report.files_rewritten += move_to_tables(directory, manifest, target)
            report.to_tables = True
            report.rows = manifest["frames"]
            report.digest = frames_digest(
                [read_table(directory, f) for s in manifest["segments"] for f in s["files"]]
            )
        return report
    finally:
        unlock_capture(lock)


def move_to_tables(
    directory: Path, manifest: dict[str, Any], target: Placement
) -> list[tuple[str, str]]:
    """Move a dataset capture's sealed files into the root's tables: every file is rewritten
    there (frames split by the UTC date of their rows, bars by their starts) and proven equal
    row for row; then the manifest switches to them in one atomic write and the old files are
    removed. Files of this capture's name already in the tables and not listed are what an
    interrupted move left: they are removed first (nothing else lists them)."""
    for leftover in [*directory.glob(target.frames_glob()), *directory.glob(target.bars_glob())]:
        leftover.unlink()
    moved: list[tuple[str, str]] = []
    new_paths: list[str] = []
    segments = []
    try:
        for segment in manifest["segments"]:
            tables = [read_table(directory, f) for f in segment["files"]]
            entry = seal_segment(directory, segment["number"], tables, placement=target)
            new_paths += [f["path"] for f in entry["files"]]
            after = [read_table(directory, f) for f in entry["files"]]
            if frames_digest(after) != frames_digest(tables) or entry["rows"] != segment["rows"]:
                raise CaptureError(
                    f"moving segment {segment['number']} of {directory} into the tables "
                    "changed its content: nothing was switched; please report this"
                )
            moved.append((_joined(segment["files"]), _joined(entry["files"])))
            segments.append({**segment, "files": entry["files"]})
        bars: dict[str, list[dict]] = {}
        for block in manifests.bar_blocks(manifest):
            for old in block.get("files") or []:
                path = old["path"] if isinstance(old, dict) else old
                if path in bars:
                    continue
                table = read_table(directory, old)
                match = BARS_NAME.match(Path(path).name)
                number = int(match.group(1)) if match else 0
                bars[path] = write_bars_files(directory, number, [table], target)
                new_paths += [f["path"] for f in bars[path]]
                again = [read_table(directory, f) for f in bars[path]]
                if bars_digest(again) != bars_digest([table]):
                    raise CaptureError(
                        f"moving {path} of {directory} into the tables changed its bars: "
                        "nothing was switched; please report this"
                    )
                moved.append((path, _joined(bars[path])))
    except BaseException:
        _remove(directory, new_paths)
        raise
    old_paths = [f["path"] for s in manifest["segments"] for f in s["files"]] + list(bars)
    manifest["segments"] = segments
    for block in manifests.bar_blocks(manifest):
        files = []
        for old in block.get("files") or []:
            files += bars[old["path"] if isinstance(old, dict) else old]
        block["files"] = files
    manifest["tables"] = target.describe()
    switch_files(directory, manifest, old_paths)
    for folder in ("frames", "bars"):  # empty now: its files live in the tables
        for empty in sorted((directory / folder).glob("**/"), reverse=True):
            with contextlib.suppress(OSError):
                empty.rmdir()
    return moved


def _joined(entries: list[dict]) -> str:
    return ", ".join(e["path"] for e in entries)


def _migrate(directory: Path, manifest: dict[str, Any]) -> MigrationReport:
    report = MigrationReport()
    for segment in manifest["segments"]:
        old_files = [f for f in segment["files"] if not _current(directory, f, FRAME_SCHEMA)]
        if not old_files:
            report.already_current += len(segment["files"])
            continue
        tables = [read_table(directory, f) for f in segment["files"]]
        before = frames_digest(tables)
        entry = seal_segment(directory, segment["number"], tables)
        new_paths = [f["path"] for f in entry["files"]]
        try:
            after = frames_digest([read_table(directory, f) for f in entry["files"]])
            if after != before or entry["rows"] != segment["rows"]:
                raise CaptureError(
                    f"migrating segment {segment['number']} of {directory} changed its "
                    "content: nothing was switched; please report this"
                )
        except BaseException:
            _remove(directory, new_paths)
            raise
        old_paths = [f["path"] for f in segment["files"]]
        segment["files"] = entry["files"]  # same rows, seqs and times: only the files change
        switch_files(directory, manifest, old_paths)
        report.files_rewritten += list(zip(old_paths, new_paths, strict=False))
        report.rows += entry["rows"]
    report.files_rewritten += _migrate_bars(directory, manifest)
    if manifest.get("schema") != "frames/2":
        manifest["schema"] = "frames/2"
        manifests.save(directory, manifest)
    report.digest = frames_digest(
        [read_table(directory, f) for s in manifest["segments"] for f in s["files"]]
    )
    return report


def _migrate_bars(directory: Path, manifest: dict[str, Any]) -> list[tuple[str, str]]:
    entries = [f for b in manifests.bar_blocks(manifest) for f in b.get("files") or []]
    done: dict[str, dict] = {}
    for entry in entries:
        path = entry["path"] if isinstance(entry, dict) else entry
        if path in done or _current(directory, entry, BAR_SCHEMA):
            continue
        table = read_table(directory, entry)
        match = BARS_NAME.match(Path(path).name)
        # a frames/1 capture predates the tables: one file, in the capture's bars/
        new = next(iter(write_bars_files(directory, int(match.group(1)) if match else 0, [table])),
                   None)  # fmt: skip
        if new is None or bars_digest([read_table(directory, new)]) != bars_digest([table]):
            _remove(directory, [new["path"]] if new else [])
            raise CaptureError(
                f"migrating {path} of {directory} changed its bars: nothing switched"
            )
        done[path] = new
    if not done:
        return []
    _replace_bar_entries(manifest, done)
    switch_files(directory, manifest, list(done))
    return [(old, new["path"]) for old, new in done.items()]


def _replace_bar_entries(manifest: dict[str, Any], done: dict[str, dict]) -> None:
    for block in manifests.bar_blocks(manifest):
        block["files"] = [
            done.get(f["path"] if isinstance(f, dict) else f, f) for f in block.get("files") or []
        ]


def _current(directory: Path, entry: dict | str, schema: pa.Schema) -> bool:
    """Whether a listed file is in ``schema`` (a compacted segment is current too)."""
    path = check_file(directory, entry)
    return written_as(path, schema) or (
        schema.equals(FRAME_SCHEMA) and any(written_as(path, cold) for cold in COLD_SCHEMAS)
    )


def switch_files(directory: Path, manifest: dict[str, Any], old_paths: list[str]) -> None:
    """List the new files (atomically), then remove the old ones."""
    manifests.save(directory, manifest)
    _remove(directory, old_paths)


def _remove(directory: Path, paths: list[str]) -> None:
    for relative in paths:
        with contextlib.suppress(OSError):
            (directory / relative).unlink()
