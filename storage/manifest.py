"""``manifest.json``: what a capture holds, written last and atomically (tmp, fsync, rename).

Loading checks the manifest's shape before anything trusts it (a truncated, hand-edited or
foreign file is a clear :class:`CaptureError`, never a traceback), and every file path in it
must stay inside the capture. :func:`note_lifecycle` folds ``open``/``close``/``gap`` rows into
the connection and gap lists; it is idempotent, so recovery can replay rows the manifest may
already have seen.
"""

from __future__ import annotations

import itertools
import os
import platform
import re
from pathlib import Path, PurePath
from typing import Any

import orjson

from rtcap.lifecycle import (
    Closed,
    ConnectionGap,
    SequenceGapRow,
    SilenceGap,
    UnrecordedGap,
    parse_detail,
    payload_detail,
)
from rtcap.sequence import SEQUENCE_GAP_KINDS
from rtcap.storage.errors import CaptureError
from rtcap.storage.identity import feeds_problem
from rtcap.storage.placement import placement_from_path, placement_of, tables_problem

MANIFEST = "manifest.json"
FORMAT = "rtcap-capture/1"


def library_versions() -> dict[str, str]:
    import duckdb
    import polars
    import pyarrow
    import websockets
    import zstandard

    from rtcap import __version__

    return {
        "rtcap": __version__,
        "python": platform.python_version(),
        "pyarrow": pyarrow.__version__,
        "zstandard": zstandard.__version__,
        "websockets": websockets.__version__,
        "duckdb": duckdb.__version__,
        "polars": polars.__version__,
    }


def new_manifest(source: dict[str, Any], created_ns: int) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "schema": "frames/2",  # absent in captures written before the portable schema
        "versions": library_versions(),
        "status": "recording",
        "created_ns": created_ns,
        "updated_ns": created_ns,
        "source": source,
        "subscriptions": [],
        "segments": [],
        "connections": [],
        "gaps": [],
        "frames": 0,
        "payload_bytes": 0,
        "first_seq": None,
        "last_seq": None,
        "live_bars": None,
        "sessions": [],
        "damage": [],
    }


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so a reader sees the old or the new file, never half."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def save(directory: Path, manifest: dict[str, Any]) -> None:
    write_atomic(directory / MANIFEST, orjson.dumps(manifest, option=orjson.OPT_INDENT_2))


def load(directory: Path) -> dict[str, Any]:
    """The checked manifest of the capture at ``directory``."""
    path = directory / MANIFEST
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise CaptureError(f"{path} is larger than any manifest rtcap writes: {_FIX}")
        data = path.read_bytes()
    except IsADirectoryError:
        raise CaptureError(f"{path} is a directory, not a manifest: {_FIX}") from None
    except OSError as exc:
        raise CaptureError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        manifest = orjson.loads(data)
    except orjson.JSONDecodeError:
        what = "empty" if not data.strip() else "truncated or not JSON"
        raise CaptureError(f"{path} is {what}: {_FIX}") from None
    problem = _shape_problem(manifest) or tables_elsewhere(manifest, directory)
    if problem:
        raise CaptureError(f"{path} is not a valid rtcap manifest ({problem}): {_FIX}")
    manifest.setdefault("sessions", [])
    manifest.setdefault("damage", [])
    return manifest


_FIX = "restore it from a backup, or run `rtcap recover` to rebuild it from the sealed segments"


# The names of sealed files, and where in a capture they live: a manifest lists nothing else
# (not a journal, not the lock), so no reader or mirror ever fetches or opens anything else.
# (in a dataset's tables, the capture's trading day follows the stem: storage.placement)
PART_NAME = re.compile(r"^part-(?:\d{8}-)?(\d{6})(?:-(\d+))?\.parquet$")
BARS_NAME = re.compile(r"^bars-(?:\d{8}-)?(\d{6})(?:-(\d+))?\.parquet$")
# Bounds a manifest rtcap wrote never reaches (a year of 5-minute segments is 105,120 files;
# the recorder rolls long before), so a hostile one fails fast in bounded memory.
MAX_MANIFEST_BYTES = 256 * 1024 * 1024
MAX_LISTED_FILES = 250_000


def _shape_problem(manifest: Any) -> str | None:
    if not isinstance(manifest, dict):
        return "not a JSON object"
    if not str(manifest.get("format", "")).startswith("rtcap-capture/"):
        return "no rtcap-capture format"
    for name in ("segments", "connections", "gaps"):
        if not isinstance(manifest.get(name), list):
            return f"{name!r} is not a list"
    for name in ("sessions", "damage"):
        if not isinstance(manifest.get(name, []), list):
            return f"{name!r} is not a list"
    for name in ("connections", "gaps", "sessions", "damage"):
        if not all(isinstance(item, dict) for item in manifest.get(name, [])):
            return f"an entry of {name!r} is not an object"
    for name in ("frames", "payload_bytes"):
        if not _is_int(manifest.get(name)):
            return f"{name!r} is not a number"
    for name in ("first_seq", "last_seq"):
        if manifest.get(name) is not None and not _is_int(manifest.get(name)):
            return f"{name!r} is not a number"
    if not isinstance(manifest.get("status", ""), str):
        return "'status' is not text"
    if "feeds" in manifest and (problem := feeds_problem(manifest["feeds"])):
        return problem
    if "tables" in manifest and (problem := tables_problem(manifest["tables"])):
        return problem
    where = placement_of(manifest)  # which paths the manifest may list (storage.placement)
    segment_path, bars_path = where.segment_path(), where.bars_path()
    for session in manifest.get("sessions", []):
        if not _is_int(session.get("first_seq", 0)) or not isinstance(
            session.get("live_bars") or {}, dict
        ):
            return "a session is malformed"
        problem = _bars_problem(session.get("live_bars"), bars_path)
        if problem:
            return problem
    listed = sum(
        len(s["files"])
        for s in manifest["segments"]
        if isinstance(s, dict) and isinstance(s.get("files"), list)
    )
    if listed > MAX_LISTED_FILES:
        return f"it lists {listed:,} segment files, more than any capture rtcap writes"
    ranges = []
    for segment in manifest["segments"]:
        if not isinstance(segment, dict) or not isinstance(segment.get("files"), list):
            return "a segment has no file list"
        for key in ("number", "rows", "first_seq", "last_seq", "first_ns", "last_ns"):
            if not _is_int(segment.get(key)):
                return f"a segment has no {key}"
        for file in segment["files"]:
            if not isinstance(file, dict) or not isinstance(file.get("path"), str):
                return "a segment file has no path"
            if not segment_path.match(file["path"]):
                return f"{file['path']!r} is not the name of a sealed segment file"
            for key in ("rows", "first_seq", "last_seq"):
                if not _is_int(file.get(key)):
                    return f"a segment file has no {key}"
            if not isinstance(file.get("sha256"), str):
                return "a segment file has no sha256"
            if file["first_seq"] > file["last_seq"] or file["rows"] < 0:
                return f"{file['path']} lists seq {file['first_seq']}–{file['last_seq']}"
            ranges.append((file["first_seq"], file["last_seq"], file["path"]))
    ranges.sort()
    for (_, last, path), (first, _, other) in itertools.pairwise(ranges):
        if first <= last:
            same = "twice" if path == other else f"overlapping {other}"
            return f"{path} is listed {same} (seq ranges must not overlap)"
    return _bars_problem(manifest.get("live_bars"), bars_path)


def tables_elsewhere(manifest: dict[str, Any], capture: PurePath) -> str | None:
    """A manifest whose ``tables`` are not those of the folder it is in: it would read (and
    recovery would tidy) another capture's files."""
    if "tables" not in manifest:
        return None
    if placement_of(manifest) != placement_from_path(capture, own_files_allowed=True):
        return "its 'tables' are not those of the folder it is in"
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bars_problem(bars: Any, bars_path: re.Pattern[str]) -> str | None:
    if bars is None:
        return None
    if not isinstance(bars, dict) or not isinstance(bars.get("files", []), list):
        return "'live_bars' is malformed"
    if not isinstance(bars.get("timeframes") or [], list):
        return "'live_bars' timeframes are malformed"
    for file in bars.get("files", []):
        path = file if isinstance(file, str) else file.get("path") if isinstance(file, dict) else 0
        if not isinstance(path, str) or not bars_path.match(path):
            return f"{path!r} is not the name of a live-bars file"
        if isinstance(file, dict) and not isinstance(file.get("sha256", ""), str):
            return "a live-bars file has a malformed sha256"
    return None


# the row kinds :func:`note_lifecycle` folds into a manifest
NOTED_KINDS = frozenset({"open", "close", "gap"})


def note_lifecycle(
    manifest: dict[str, Any],
    kind: str,
    stream: str,
    conn: int,
    seq: int,
    recv_ns: int,
    payload: bytes,
) -> None:
    """Fold one ``open``/``close``/``gap`` row into the manifest's connections and gaps."""
    detail = payload_detail(payload)
    row = parse_detail(kind, detail)
    connections = manifest["connections"]
    if kind == "open":
        if not any(
            c["stream"] == stream and c["conn"] == conn and c["opened_ns"] == recv_ns
            for c in connections
        ):
            connections.append(
                {
                    "stream": stream,
                    "conn": conn,
                    "opened_ns": recv_ns,
                    "closed_ns": None,
                    "close_code": None,
                    "close_reason": None,
                }
            )
    elif isinstance(row, Closed):
        for connection in reversed(connections):
            if connection["stream"] == stream and connection["conn"] == conn:
                connection.update(closed_ns=recv_ns, close_code=row.code, close_reason=row.reason)
                break
    elif isinstance(row, SequenceGapRow | ConnectionGap | SilenceGap | UnrecordedGap):
        note_gap(manifest, stream, seq, row, detail)


# Sequence gap rows listed in the manifest, per kind; past that they are only counted (every one
# stays a ``gap`` row in the tape, where the ``gaps`` view reads them).
LISTED_SEQUENCE_GAPS = 100


def note_gap(
    manifest: dict[str, Any],
    stream: str,
    seq: int,
    row: SequenceGapRow | ConnectionGap | SilenceGap | UnrecordedGap,
    detail: dict[str, Any],
) -> None:
    """Note one ``gap`` row (``detail``: its payload as written), in O(1): connection and
    silence gaps are listed, sequence gaps counted per kind (with the ids they miss) and the
    first few of each listed. A row at or before the last one noted was noted already
    (recovery reads back what a recorder noted)."""
    gaps = manifest["gaps"]
    noted = manifest.get("gaps_noted_to_seq")
    if noted is None:  # a manifest written before the mark: the rows it lists
        noted = max((g["seq"] for g in gaps if _is_int(g.get("seq"))), default=-1)
    if seq <= noted:
        return
    manifest["gaps_noted_to_seq"] = seq
    if isinstance(row, SequenceGapRow):
        counts = manifest.setdefault("sequence_gaps", {})
        count = counts.setdefault(row.gap_kind, {"count": 0, "missing": 0})
        count["count"] += 1
        count["missing"] += max(0, row.missing or 0)
        if count["count"] > LISTED_SEQUENCE_GAPS:
            return
    gaps.append({"stream": stream, "seq": seq, **detail})


def span(manifest: dict[str, Any]) -> tuple[int, int]:
    """(first, last) receive time of a capture's sealed frames; (0, 0) before the first seal."""
    segments = manifest["segments"]
    if not segments:
        return 0, 0
    return min(s["first_ns"] for s in segments), max(s["last_ns"] for s in segments)


def subscribed_contracts(manifest: dict[str, Any]) -> dict[str, str]:
    """Symbol → contract id of every contract the capture subscribed to: as the gateway itself
    answered ``Contract/search`` when the recorder resolved the symbol."""
    contracts = dict((manifest.get("source") or {}).get("contracts") or {})
    for stream in manifest.get("subscriptions") or []:
        for entry in (stream.get("subscriptions") if isinstance(stream, dict) else None) or []:
            if isinstance(entry, dict) and isinstance(entry.get("contract"), str):
                contracts[str(entry.get("symbol") or entry["contract"])] = entry["contract"]
    return contracts


def contract_names(manifest: dict[str, Any]) -> dict[str, str]:
    """Contract id → the symbol the capture's recorder asked for it by (what replay names it)."""
    return {contract: symbol for symbol, contract in subscribed_contracts(manifest).items()}


def bar_blocks(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Every ``live_bars`` block: the capture's and each session's."""
    sessions = [s.get("live_bars") for s in manifest.get("sessions") or []]
    return [b for b in [manifest.get("live_bars"), *sessions] if b]


def listed_files(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Every file the manifest lists (segments, then live bars), once each, as entries with at
    least a ``path``."""
    files = [f for s in manifest.get("segments") or [] for f in s.get("files") or []]
    for block in bar_blocks(manifest):
        files += [e if isinstance(e, dict) else {"path": e} for e in block.get("files") or []]
    return list({f["path"]: f for f in files}.values())


def gap_count(manifest: dict[str, Any]) -> int:
    """Every gap the capture noted: those listed and the sequence gaps only counted."""
    listed = [g for g in manifest.get("gaps") or [] if g.get("kind") not in SEQUENCE_GAP_KINDS]
    sequence = manifest.get("sequence_gaps") or {}
    counted = sum(c.get("count", 0) for c in sequence.values() if isinstance(c, dict))
    if not sequence:  # written before sequence gaps were counted: all are listed
        counted = len(manifest.get("gaps") or []) - len(listed)
    return len(listed) + counted


def gap_summary(manifest: dict[str, Any]) -> str:
    """``"2 connection gaps (3.1 s), 1 silence gap (6.0 s), 4 sequence gaps"`` or ``""``."""
    counts: dict[str, list[float]] = {}
    for gap in manifest.get("gaps") or []:
        kind = str(gap.get("kind") or "connection")
        entry = counts.setdefault(kind, [0, 0.0])
        entry[0] += 1
        seconds = gap.get("seconds")
        entry[1] += seconds if isinstance(seconds, int | float) else 0.0
    sequence = manifest.get("sequence_gaps")
    for kind, count in (sequence if isinstance(sequence, dict) else {}).items():
        if isinstance(count, dict) and _is_int(count.get("count")):
            counts[str(kind)] = [count["count"], 0.0]  # listed or not, every one counts
    parts = []
    for kind, (count, seconds) in sorted(counts.items()):
        timed = f" ({seconds:,.1f} s)" if seconds else ""
        parts.append(f"{count} {kind} gap{'s' if count != 1 else ''}{timed}")
    lost = sum(
        pair[1] - pair[0] + 1
        for damage in manifest.get("damage") or []
        if isinstance(damage, dict)
        for pair in damage.get("lost_seq_ranges") or []
        if isinstance(pair, list) and len(pair) == 2 and all(_is_int(v) for v in pair)
    )
    if lost:
        parts.append(f"{lost} frames lost to journal damage")
    return ", ".join(parts)
