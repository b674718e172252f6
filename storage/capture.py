"""A capture directory: writing (journal → sealed segments → manifest), recovery and reading.

    <capture>/manifest.json            written last, atomically
    <capture>/capture.lock             held while a recorder writes
    <capture>/journal/segment-N.rtj    write-ahead log of the open segment
    <capture>/frames/date=D/part-N.parquet   sealed segments
    <capture>/bars/bars-N.parquet      bars the live pipeline emitted, per segment

Nothing already sealed is ever rewritten: new data goes to new files, and a segment becomes
visible only when its Parquet files are complete and renamed into place.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from rtcap.storage import manifest as manifests
from rtcap.storage.journal import JournalWriter, read_journal
from rtcap.storage.schema import FrameColumns, table_to_frames
from rtcap.storage.segments import SEAL_LEVEL, seal_segment, sha256_file

from rtcap.bars import bar_line
from rtcap.models import Bar, Frame

LOCK = "capture.lock"
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


Sealable = tuple[JournalWriter, list[pa.Table], list[tuple[str, Bar, int]]]


class CaptureError(Exception):
    """A capture cannot be used as asked; the message says why and what to do."""


class CaptureBusy(CaptureError):
    pass


class RecoveryNeeded(CaptureError):
    pass


def journal_files(directory: Path) -> list[Path]:
    folder = directory / "journal"
    return sorted(folder.glob("segment-*.rtj")) if folder.exists() else []


def _segment_number(path: Path) -> int:
    return int(path.stem.split("-")[1])


class CaptureWriter:
    """Writes one capture. Single-writer: appends come from one thread (the event loop);
    :meth:`flush` and :meth:`seal` may run in a worker thread."""

    def __init__(
        self,
        path: str | Path,
        *,
        source: dict[str, Any],
        fsync: str = "interval",
        seal_level: int = SEAL_LEVEL,
        segment_max_bytes: int = 256 * 1024 * 1024,
        segment_max_s: float = 3600.0,
        row_group_rows: int = 100_000,
    ) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.seal_level = seal_level
        self.segment_max_bytes = segment_max_bytes
        self.segment_max_s = segment_max_s
        self.row_group_rows = row_group_rows
        self._source = source
        self._lock_file = None
        self._manifest_lock = threading.Lock()
        self._bars: list[tuple[str, Bar, int]] = []
        self._bar_hash = hashlib.sha256()
        self._bar_count = 0
        self._bar_timeframes: list[str] = []
        self.journal: JournalWriter | None = None
        self.memtable = FrameColumns()
        self.segment_started = 0.0
        self.segment_payload = 0
        self.next_seq = 0
        self.sealed_bytes = 0

    # --- opening -------------------------------------------------------------------------

    def open(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            lock = open(self.path / LOCK, "a+")  # noqa: SIM115 - held until close
        except OSError as exc:
            raise CaptureError(
                f"cannot write capture directory {self.path}: {exc.strerror or exc}; "
                "choose a writable location"
            ) from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            owner = lock.read().strip() or "another process"
            lock.close()
            raise CaptureBusy(
                f"capture directory {self.path} is in use by a recorder ({owner}); stop it "
                "or record to another directory"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()}")
        lock.flush()
        self._lock_file = lock
        if journal_files(self.path):
            self._unlock()
            raise RecoveryNeeded(
                f"capture {self.path} has an unsealed journal from a recording that did not "
                f"finish; run `rtcap recover {self.path}` first"
            )
        if (self.path / manifests.MANIFEST).exists():
            self.manifest = manifests.load(self.path)
            self.manifest["status"] = "recording"
            last = self.manifest.get("last_seq")
            self.next_seq = 0 if last is None else last + 1
        else:
            self.manifest = manifests.new_manifest(self._source, time.time_ns())
        self._save()
        self._start_segment()

    def _start_segment(self) -> None:
        numbers = [s["number"] for s in self.manifest["segments"]]
        number = max(numbers, default=0) + 1
        while (self.path / "journal" / f"segment-{number:06d}.rtj").exists():
            number += 1
        (self.path / "journal").mkdir(exist_ok=True)
        self.journal = JournalWriter(
            self.path / "journal" / f"segment-{number:06d}.rtj", fsync=self.fsync
        )
        self._flushed: list[pa.Table] = []
        self.segment_started = time.monotonic()
        self.segment_payload = 0

    # --- writing -------------------------------------------------------------------------

    def append(self, frame: Frame) -> Frame:
        """Journal ``frame`` under the next ``seq`` (which it gets) and note lifecycle rows."""
        frame.seq = self.next_seq
        self.next_seq += 1
        self.memtable.append(frame)
        self.segment_payload += len(frame.payload)
        if frame.kind in ("open", "close", "gap"):
            self._note_lifecycle(frame)
        return frame

    def add_bar(self, instrument: str, bar: Bar, closed_seq: int) -> None:
        self._bars.append((instrument, bar, closed_seq))
        self._bar_hash.update(bar_line(instrument, bar))
        self._bar_count += 1

    def set_bar_timeframes(self, timeframes: list[str]) -> None:
        self._bar_timeframes = list(timeframes)

    def set_subscriptions(self, subscriptions: list[Any]) -> None:
        with self._manifest_lock:
            self.manifest["subscriptions"] = subscriptions

    def _note_lifecycle(self, frame: Frame) -> None:
        try:
            detail = orjson.loads(frame.payload) if frame.payload else {}
        except orjson.JSONDecodeError:
            detail = {}
        with self._manifest_lock:
            if frame.kind == "open":
                self.manifest["connections"].append(
                    {
                        "stream": frame.stream,
                        "conn": frame.conn,
                        "opened_ns": frame.recv_ns,
                        "closed_ns": None,
                        "close_code": None,
                        "close_reason": None,
                    }
                )
            elif frame.kind == "close":
                for conn in reversed(self.manifest["connections"]):
                    if conn["stream"] == frame.stream and conn["conn"] == frame.conn:
                        conn.update(
                            closed_ns=frame.recv_ns,
                            close_code=detail.get("code"),
                            close_reason=detail.get("reason"),
                        )
                        break
            else:
                self.manifest["gaps"].append({"stream": frame.stream, "seq": frame.seq, **detail})

    @property
    def pending(self) -> int:
        """Frames appended since the last flush."""
        return len(self.memtable)

    def take_block(self) -> tuple[JournalWriter, FrameColumns]:
        """Detach frames appended since the last flush (on the appending thread); hand them to
        :meth:`write_block`, which may run in a worker thread."""
        columns, self.memtable = self.memtable, FrameColumns()
        return self.journal, columns

    def write_block(self, journal: JournalWriter, columns: FrameColumns) -> int:
        if not len(columns):
            return 0
        table = columns.to_table()
        written = journal.write(table, time.monotonic())
        self._flushed.append(table)  # becomes part of the segment once on disk
        return written

    def flush(self) -> int:
        """Write pending frames as one journal block (same thread as appends)."""
        return self.write_block(*self.take_block())

    def should_rotate(self) -> bool:
        return (self.journal.rows + len(self.memtable)) > 0 and (
            self.segment_payload >= self.segment_max_bytes
            or time.monotonic() - self.segment_started >= self.segment_max_s
        )

    def rotate(self) -> Sealable:
        """Start a new segment; returns what :meth:`seal` needs for the old one."""
        detached = self._detach()
        self._start_segment()
        return detached

    def _detach(self) -> Sealable:
        self.flush()
        sealable = (self.journal, self._flushed, self._bars)
        self.journal.close()
        self.journal, self._flushed, self._bars = None, [], []
        return sealable

    def seal(
        self, journal: JournalWriter, tables: list[pa.Table], bars: list[tuple[str, Bar, int]]
    ) -> dict | None:
        """Turn a closed segment into Parquet, record it in the manifest, drop its journal.

        What was journaled (the flushed batches, kept in memory) is what gets sealed; the
        journal file itself is read back only by recovery."""
        number = _segment_number(journal.path)
        entry = None
        if tables:
            table = pa.concat_tables(tables)
            entry = seal_segment(
                self.path, number, table, level=self.seal_level, row_group_rows=self.row_group_rows
            )
            self.sealed_bytes += sum(f["bytes"] for f in entry["files"])
        bar_file = self._write_bars(number, bars)
        with self._manifest_lock:
            if entry is not None:
                self._add_segment(entry)
            self._update_bars_entry(bar_file)
            self._save()
        journal.path.unlink()
        return entry

    def _add_segment(self, entry: dict) -> None:
        manifest = self.manifest
        manifest["segments"].append(entry)
        manifest["frames"] += entry["rows"]
        manifest["payload_bytes"] += entry["payload_bytes"]
        if manifest["first_seq"] is None:
            manifest["first_seq"] = entry["first_seq"]
        manifest["last_seq"] = entry["last_seq"]

    def _write_bars(self, number: int, bars: list[tuple[str, Bar, int]]) -> str | None:
        if not bars:
            return None
        folder = self.path / "bars"
        folder.mkdir(exist_ok=True)
        table = pa.table(
            {
                "instrument": [i for i, _, _ in bars],
                "timeframe": [b.timeframe for _, b, _ in bars],
                "start_ns": pa.array([b.start_ns for _, b, _ in bars], pa.int64()),
                "end_ns": pa.array([b.end_ns for _, b, _ in bars], pa.int64()),
                "open": [b.open for _, b, _ in bars],
                "high": [b.high for _, b, _ in bars],
                "low": [b.low for _, b, _ in bars],
                "close": [b.close for _, b, _ in bars],
                "volume": pa.array([float(b.volume) for _, b, _ in bars]),
                "trades": [b.trades for _, b, _ in bars],
                "gap": [b.gap for _, b, _ in bars],
                "flat": [b.flat for _, b, _ in bars],
                "closed_seq": pa.array([s for _, _, s in bars], pa.uint64()),
            }
        )
        table = table.cast(BAR_SCHEMA)
        final = folder / f"bars-{number:06d}.parquet"
        tmp = folder / f".bars-{number:06d}.parquet.tmp"
        pq.write_table(table, tmp, compression="zstd")
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)
        return final.relative_to(self.path).as_posix()

    def _update_bars_entry(self, new_file: str | None) -> None:
        if not self._bar_timeframes and new_file is None:
            return
        entry = self.manifest.get("live_bars") or {"timeframes": self._bar_timeframes, "files": []}
        entry["timeframes"] = self._bar_timeframes or entry["timeframes"]
        if new_file is not None:
            entry["files"].append(new_file)
        entry["count"] = self._bar_count
        entry["stream_hash"] = self._bar_hash.hexdigest()
        self.manifest["live_bars"] = entry

    # --- closing -------------------------------------------------------------------------

    def close(self) -> None:
        """Flush, seal the open segment, mark the capture closed and release the lock."""
        if self.journal is not None:
            self.seal(*self._detach())
        with self._manifest_lock:
            self.manifest["status"] = "closed"
            self._save()
        self._unlock()

    def _save(self) -> None:
        self.manifest["updated_ns"] = time.time_ns()
        manifests.save(self.path, self.manifest)

    def _unlock(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None


# --- recovery ------------------------------------------------------------------------------


@dataclass
class RecoveryReport:
    """What ``rtcap recover`` found and did."""

    journals: int = 0
    frames_recovered: int = 0
    segments_sealed: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    orphans_adopted: list[str] = field(default_factory=list)
    temporaries_removed: list[str] = field(default_factory=list)
    already_sealed: int = 0


def recover(path: str | Path, *, seal_level: int = SEAL_LEVEL) -> RecoveryReport:
    """Seal whatever a crash left in the journal; never touches sealed segments' contents."""
    directory = Path(path)
    if not (directory / manifests.MANIFEST).exists() and not journal_files(directory):
        raise CaptureError(f"{directory} is not a capture (no manifest.json, no journal)")
    report = RecoveryReport()
    lock = open(directory / LOCK, "a+")  # noqa: SIM115
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CaptureBusy(
                f"capture {directory} is being recorded right now; stop that recorder first"
            ) from None
        manifest = (
            manifests.load(directory)
            if (directory / manifests.MANIFEST).exists()
            else manifests.new_manifest({"kind": "unknown"}, time.time_ns())
        )
        for tmp in directory.rglob("*.tmp"):
            tmp.unlink()
            report.temporaries_removed.append(tmp.relative_to(directory).as_posix())
        listed = {f["path"] for s in manifest["segments"] for f in s["files"]}
        for part in sorted((directory / "frames").rglob("part-*.parquet")):
            relative = part.relative_to(directory).as_posix()
            if relative not in listed:
                entry = _adopt(directory, part)
                manifest["segments"].append(entry)
                _count(manifest, entry)
                report.orphans_adopted.append(relative)
        last_sealed = manifest.get("last_seq")
        for journal in journal_files(directory):
            report.journals += 1
            scan = read_journal(journal)
            if scan.problem:
                report.problems.append(
                    f"{journal.name}: {scan.problem}; kept the {len(scan.frames)} frames before it"
                )
            table = scan.table()
            if last_sealed is not None:
                table = table.filter(pa.compute.greater(table.column("seq"), last_sealed))
            report.already_sealed += scan.rows - table.num_rows
            if table.num_rows:
                number = _segment_number(journal)
                entry = seal_segment(directory, number, table, level=seal_level)
                manifest["segments"].append(entry)
                _count(manifest, entry)
                last_sealed = manifest["last_seq"]
                report.frames_recovered += table.num_rows
                report.segments_sealed.append(entry["number"])
            journal.unlink()
        manifest["segments"].sort(key=lambda s: s["first_seq"])
        manifest["status"] = "closed"
        manifest["recovered_ns"] = time.time_ns()
        manifests.save(directory, manifest)
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
    return report


def _count(manifest: dict, entry: dict) -> None:
    manifest["frames"] += entry["rows"]
    manifest["payload_bytes"] += entry["payload_bytes"]
    first, last = manifest.get("first_seq"), manifest.get("last_seq")
    manifest["first_seq"] = entry["first_seq"] if first is None else min(first, entry["first_seq"])
    manifest["last_seq"] = entry["last_seq"] if last is None else max(last, entry["last_seq"])


def _adopt(directory: Path, part: Path) -> dict:
    """A complete Parquet file the manifest never heard of (crash after rename)."""
    table = pq.read_table(part)
    seqs = table.column("seq")
    recv = table.column("recv_ns").cast(pa.int64())
    rows = table.num_rows
    first, last = pa.compute.min(seqs).as_py(), pa.compute.max(seqs).as_py()
    return {
        "number": int(part.stem.split("-")[1]),
        "rows": rows,
        "payload_bytes": sum(len(p) for p in table.column("payload").to_pylist()),
        "first_seq": first,
        "last_seq": last,
        "first_ns": pa.compute.min(recv).as_py(),
        "last_ns": pa.compute.max(recv).as_py(),
        "files": [
            {
                "path": part.relative_to(directory).as_posix(),
                "rows": rows,
                "bytes": part.stat().st_size,
                "sha256": sha256_file(part),
                "first_seq": first,
                "last_seq": last,
            }
        ],
    }


# --- reading -------------------------------------------------------------------------------


def open_capture(path: str | Path) -> dict[str, Any]:
    """The manifest of a readable capture, or a :class:`CaptureError` saying what to do."""
    directory = Path(path)
    if not directory.exists():
        raise CaptureError(f"no capture at {directory}: check the path")
    if journal_files(directory):
        raise RecoveryNeeded(
            f"capture {directory} has an unsealed journal (a recording crashed or is still "
            f"running); run `rtcap recover {directory}` once no recorder is writing it"
        )
    if not (directory / manifests.MANIFEST).exists():
        raise CaptureError(f"{directory} is not an rtcap capture (no manifest.json)")
    return manifests.load(directory)


def sealed_files(directory: Path, manifest: dict[str, Any]) -> list[Path]:
    """Segment files in seq order."""
    files = [f for s in manifest["segments"] for f in s["files"]]
    return [directory / f["path"] for f in sorted(files, key=lambda f: f["first_seq"])]


def read_frames(path: str | Path) -> Iterator[Frame]:
    """Every sealed frame in ``seq`` order, one row group at a time."""
    directory = Path(path)
    manifest = open_capture(directory)
    for file in sealed_files(directory, manifest):
        parquet = pq.ParquetFile(file)
        for index in range(parquet.num_row_groups):
            yield from table_to_frames(parquet.read_row_group(index))


def read_live_bars(path: str | Path) -> pa.Table | None:
    directory = Path(path)
    manifest = open_capture(directory)
    entry = manifest.get("live_bars")
    if not entry or not entry.get("files"):
        return None
    return pa.concat_tables([pq.read_table(directory / f) for f in entry["files"]])
