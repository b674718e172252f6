"""Reading a capture's files only after checking them against the manifest.

Every reader (replay, verify, export, sql, info, plot) opens segment and bar files through
here: the file must exist, have the size and sha256 the manifest recorded, and parse as
Parquet (pages are then read with their CRCs checked). Anything else is one
:class:`CaptureDamaged` line naming the file and what to do — never a traceback, and never
different bars with exit 0. Files the manifest does not list are never read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from rtcap.models import Frame
from rtcap.storage import manifest as manifests
from rtcap.storage.errors import CaptureDamaged, CaptureError, RecoveryNeeded, first_line
from rtcap.storage.placement import is_segment_path
from rtcap.storage.schema import (
    BAR_SCHEMAS,
    FRAME_SCHEMAS,
    ClosedBar,
    bars_v2,
    frame_columns,
    frames_v2,
    table_to_bars,
    table_to_frames,
)
from rtcap.storage.segments import sha256_stream

JOURNAL_NAME = re.compile(r"^segment-(\d{6})\.rtj$")
BAR_JOURNAL_NAME = re.compile(r"^bars-(\d{6})\.rtj$")


def journal_files(directory: Path) -> list[Path]:
    """Unsealed frame journals of the capture at ``directory``, in segment order."""
    folder = directory / "journal"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if JOURNAL_NAME.match(p.name) and p.is_file())


def bar_journal_files(directory: Path) -> list[Path]:
    """Unsealed live-bar journals, in segment order."""
    folder = directory / "journal"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if BAR_JOURNAL_NAME.match(p.name) and p.is_file())


def journal_number(path: Path) -> int:
    """The segment number in a journal's name."""
    return int(path.stem.split("-")[1])


def open_capture(path: str | Path) -> dict[str, Any]:
    """The manifest of a readable capture, or a :class:`CaptureError` saying what to do."""
    directory = Path(path)
    if not directory.exists():
        raise CaptureError(f"no capture at {directory}: check the path")
    if not directory.is_dir():
        raise CaptureError(f"{directory} is a file, not a capture directory: check the path")
    if journal_files(directory):
        raise RecoveryNeeded(
            f"capture {directory} has an unsealed journal (a recording crashed or is still "
            "running): add --include-open to read it as it is (replay, sql), or run "
            f"`rtcap recover {directory}` once no recorder is writing it"
        )
    if not (directory / manifests.MANIFEST).exists():
        raise CaptureError(f"{directory} is not an rtcap capture (no manifest.json)")
    return manifests.load(directory)


def segment_files(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The manifest's segment file entries in seq order."""
    files = [f for s in manifest["segments"] for f in s["files"]]
    return sorted(files, key=lambda f: f["first_seq"])


def sealed_files(directory: Path, manifest: dict[str, Any]) -> list[Path]:
    """Segment files in seq order."""
    return [directory / f["path"] for f in segment_files(manifest)]


def check_file(directory: Path, entry: dict[str, Any] | str) -> Path:
    """The path of a listed file once its size and sha256 match the manifest entry."""
    relative = entry if isinstance(entry, str) else entry["path"]
    path = directory / relative
    problem = entry_problem(pafs.LocalFileSystem(), str(path), entry)
    if problem:
        raise CaptureDamaged(
            f"{path} {problem}: restore it from a backup (every damaged file: "
            f"`rtcap info --verify-checksums {directory}`)"
        )
    return path


def entry_problem(fs: pafs.FileSystem, path: str, entry: dict[str, Any] | str) -> str | None:
    """What is wrong with the listed file at ``path`` on ``fs`` (any store pyarrow opens):
    missing, another size or sha256 than its manifest entry, or a footer that contradicts it;
    ``None`` when it is what the manifest says. Reads the whole file once (the digest)."""
    info = fs.get_file_info(path)
    if info.type != pafs.FileType.File:
        return "is missing (the manifest lists it)"
    if isinstance(entry, str):
        return None
    size = entry.get("bytes")
    if size is not None and info.size != size:
        return f"is damaged: {info.size:,} bytes, the manifest says {size:,}"
    expected = entry.get("sha256")
    if expected is not None:
        with fs.open_input_stream(path) as stream:
            actual = sha256_stream(stream)
        if actual != expected:
            return f"is damaged: sha256 {actual[:12]}…, the manifest says {expected[:12]}…"
    with fs.open_input_file(path) as handle:
        problem = _footer_problem(handle, entry)
    if problem:
        return (
            f"does not hold what the manifest says ({problem}): the manifest or the file was "
            "altered"
        )
    return None


def _footer_problem(source: Any, entry: dict[str, Any]) -> str | None:
    """What the file's own footer contradicts in its manifest entry: the schema (a frames or
    bars file of rtcap), the row count and, for a segment file, its seq range. Only the footer
    is read: the statistics rtcap writes for every column hold the seq range."""
    segment = is_segment_path(str(entry["path"]))
    try:
        parquet = pq.ParquetFile(source)
    except (OSError, pa.ArrowException) as exc:
        return f"not readable Parquet: {first_line(exc)}"
    schemas = FRAME_SCHEMAS if segment else BAR_SCHEMAS
    if not any(parquet.schema_arrow.equals(v, check_metadata=False) for v in schemas):
        return f"its columns are not those of an rtcap {'segment' if segment else 'bars file'}"
    meta = parquet.metadata
    rows = entry.get("rows")
    if rows is not None and meta.num_rows != rows:
        return f"{meta.num_rows:,} rows, the manifest lists {rows:,}"
    if not segment or not meta.num_rows or "first_seq" not in entry:
        return None
    column = parquet.schema_arrow.get_field_index("seq")
    lows, highs = [], []
    for group in range(meta.num_row_groups):
        stats = meta.row_group(group).column(column).statistics
        if stats is None or not stats.has_min_max:
            return "no seq statistics"
        lows.append(stats.min)
        highs.append(stats.max)
    if (min(lows), max(highs)) != (entry["first_seq"], entry["last_seq"]):
        return (
            f"seq {min(lows)}–{max(highs)}, the manifest lists "
            f"{entry['first_seq']}–{entry['last_seq']}"
        )
    return None


def open_parquet(path: Path) -> pq.ParquetFile:
    """A checked file opened for reading with page checksums verified."""
    try:
        return pq.ParquetFile(path, page_checksum_verification=True)
    except (OSError, pa.ArrowException) as exc:
        raise CaptureDamaged(f"{path} is not readable Parquet ({first_line(exc)})") from None


def open_segment(directory: Path, entry: dict[str, Any]) -> tuple[Path, pq.ParquetFile]:
    """A listed segment file, checked and opened."""
    path = check_file(directory, entry)
    return path, open_parquet(path)


def read_table(directory: Path, entry: dict[str, Any] | str) -> pa.Table:
    """A whole listed file, checked."""
    path = check_file(directory, entry)
    try:
        return pq.read_table(path, page_checksum_verification=True)
    except (OSError, pa.ArrowException) as exc:
        raise CaptureDamaged(f"{path} is not readable Parquet ({first_line(exc)})") from None


def read_frames(path: str | Path) -> Iterator[Frame]:
    """Every sealed frame in ``seq`` order, one row group at a time, every file checked."""
    directory = Path(path)
    manifest = open_capture(directory)
    for entry in segment_files(manifest):
        file, parquet = open_segment(directory, entry)
        for index in range(parquet.num_row_groups):
            try:
                table = parquet.read_row_group(index, columns=frame_columns(parquet.schema_arrow))
            except (OSError, pa.ArrowException) as exc:
                raise CaptureDamaged(f"{file} is damaged ({first_line(exc)})") from None
            yield from table_to_frames(frames_v2(table))


def sessions(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The recording sessions of a capture (one for captures written before sessions)."""
    listed = manifest.get("sessions") or []
    if listed:
        return listed
    return [
        {
            "number": 1,
            "first_seq": manifest.get("first_seq") or 0,
            "last_seq": manifest.get("last_seq"),
            "live_bars": manifest.get("live_bars"),
        }
    ]


def read_live_bars(path: str | Path, session: dict[str, Any] | None = None) -> pa.Table | None:
    """The bars built live while recording (of one session, or all), checked."""
    directory = Path(path)
    manifest = open_capture(directory)
    entry = (session or {}).get("live_bars") if session else manifest.get("live_bars")
    if not entry or not entry.get("files"):
        return None
    tables = [bars_v2(read_table(directory, f)) for f in entry["files"]]
    return pa.concat_tables(tables)


def live_bars(path: str | Path, session: dict[str, Any] | None = None) -> list[ClosedBar] | None:
    table = read_live_bars(path, session)
    return None if table is None else table_to_bars(table)
