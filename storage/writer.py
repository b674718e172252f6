"""Writing a capture directory: journal → sealed segments → manifest, without ever stopping.

    <capture>/manifest.json                  written last, atomically
    <capture>/capture.lock                   held while a recorder writes (:mod:`.lock`)
    <capture>/journal/segment-N.rtj          write-ahead log of segment N's frames
    <capture>/journal/bars-N.rtj             write-ahead log of the bars closed live in it
    <capture>/journal/damaged/               journals recovery could not read whole (kept)
    <capture>/frames/date=D/part-N.parquet   sealed segments
    <capture>/bars/bars-N.parquet            bars the live pipeline emitted, per segment

Rows are journaled every flush, always: when a segment is full its journals are closed, the
next segment's journals are opened at once, and the :class:`~rtcap.storage.sealer.Sealer`
turns the journaled rows into Parquet as they come (bounded memory). Its journal is deleted only
after the manifest lists the sealed files, so a crash or a failed seal at any point loses
nothing journaled. Nothing already sealed is ever rewritten: new data goes to new files, and a
segment becomes visible only when its Parquet files are complete and renamed into place.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from rtcap.bars import bar_line
from rtcap.models import Bar, Frame
from rtcap.storage import manifest as manifests
from rtcap.storage.errors import CaptureError, RecoveryNeeded, describe_os_error
from rtcap.storage.identity import note_feeds
from rtcap.storage.integrity import bar_journal_files, journal_files, read_table
from rtcap.storage.journal import JournalWriter
from rtcap.storage.lock import lock_capture, unlock_capture
from rtcap.storage.placement import HERE, placement_from_path, placement_of
from rtcap.storage.schema import (
    ClosedBar,
    FrameColumns,
    bars_to_table,
    payload_bytes,
    table_to_bars,
)
from rtcap.storage.sealer import Sealer, SealerStats
from rtcap.storage.segments import SEAL_LEVEL


@dataclass
class OpenSegment:
    """The journals of one segment: frames always, bars once the first bar closes."""

    number: int
    frames: JournalWriter
    bars_path: Path
    bars: JournalWriter | None = None
    fsync: str = "interval"
    last_block: tuple | None = None  # rows taken at rotation, not yet journaled
    # blocks whose journal write failed, oldest first: retried before anything newer, so the
    # journal holds every row in seq order or stops short, never with a hole
    unwritten: list[tuple[FrameColumns, list[ClosedBar]]] = field(default_factory=list)
    # the journal's blocks up to here were handed to the sealer, or it was told to read them
    # back; the sealer's tail reads no further, so it never reads a block about to be handed
    handed_end: int = 0
    payload_bytes: int = 0  # of the frames in its journal's blocks: when to rotate

    def write_bars(self, table: pa.Table, now: float) -> None:
        if self.bars is None:
            self.bars = JournalWriter(self.bars_path, fsync=self.fsync)
        self.bars.write(table, now)

    def close(self) -> None:
        self.frames.close()
        if self.bars is not None:
            self.bars.close()


class CaptureWriter:
    """Writes one capture. Appends come from one thread (the event loop); journal blocks are
    written by whoever calls :meth:`write_block` (a worker thread); sealing happens on the
    writer's own sealer thread, or inline with :meth:`seal_now`."""

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
        append: bool = False,
        tables: bool = False,
    ) -> None:
        """``tables``: a new capture of a dataset (at ``ROOT/source=S/date=T/recorder=R``)
        seals its files into the root's tables (:mod:`rtcap.storage.placement`); an appended
        capture keeps the placement its manifest declares."""
        self.path = Path(path)
        self.placement = placement_from_path(self.path) if tables else HERE
        if tables and not self.placement.in_tables:
            raise CaptureError(
                f"{self.path} is not a dataset capture's folder (ROOT/source=…/date=…/"
                "recorder=…, without a frames/ folder of its own)"
            )
        self.fsync = fsync
        self.seal_level = seal_level
        self.segment_max_bytes = segment_max_bytes
        self.segment_max_s = segment_max_s
        self.row_group_rows = row_group_rows
        self.append_session = append
        self._source = source
        self._lock_file = None
        self._created = False
        self._manifest_lock = threading.Lock()
        self._bars: list[ClosedBar] = []
        self._bar_timeframes: list[str] = []
        self.segment: OpenSegment | None = None
        self.memtable = FrameColumns()
        self.segment_started = 0.0
        self.next_seq = 0
        self.sealer = Sealer(
            self.path,
            level=seal_level,
            row_group_rows=row_group_rows,
            list_sealed=self._list_sealed,
            open_segment=lambda: self.segment,
        )
        self.session: dict[str, Any] = {}

    # --- opening -------------------------------------------------------------------------

    def open(self) -> None:
        self._created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CaptureError(
                f"cannot write capture directory {self.path}: {exc.strerror or exc}; "
                "choose a writable location"
            ) from None
        lock = lock_capture(self.path, purpose="recording into it")
        try:
            lock.seek(0)
            lock.truncate()
            lock.write(f"pid {os.getpid()}")
            lock.flush()
        except OSError as exc:
            unlock_capture(lock)
            raise CaptureError(
                f"cannot write capture directory {self.path}: {exc.strerror or exc}; "
                "choose a writable location"
            ) from None
        self._lock_file = lock
        try:
            self._open_manifest()
            self._start_segment()
        except BaseException:
            self._unlock()
            raise
        self.sealer.start()
        # The first conversion to Arrow costs what pyarrow loads lazily (pandas, when it is
        # installed: 0.2-0.3 s). Paid here, before any connection opens, the first journal
        # block is written within --flush-ms of the first frame like every other.
        FrameColumns().to_table()

    def _open_manifest(self) -> None:
        if journal_files(self.path) or bar_journal_files(self.path):
            raise RecoveryNeeded(
                f"capture {self.path} has an unsealed journal from a recording that did "
                f"not finish; run `rtcap recover {self.path}` first"
            )
        now = time.time_ns()
        if (self.path / manifests.MANIFEST).exists():
            if not self.append_session:
                raise CaptureError(
                    f"{self.path} already holds a recording: record into a new directory, or "
                    "pass --append to add this recording to it as a new session"
                )
            self.manifest = manifests.load(self.path)
            self.manifest["status"] = "recording"
            last = self.manifest.get("last_seq")
            self.next_seq = 0 if last is None else last + 1
            if not self.manifest["sessions"]:  # written before sessions existed
                self.manifest["sessions"].append(
                    {
                        "number": 1,
                        "started_ns": self.manifest.get("created_ns"),
                        "first_seq": self.manifest.get("first_seq") or 0,
                        "last_seq": last,
                        "live_bars": self.manifest.get("live_bars"),
                    }
                )
        else:
            self.manifest = manifests.new_manifest(self._source, now)
            if self.placement.in_tables:
                self.manifest["tables"] = self.placement.describe()
        self.placement = self.sealer.placement = placement_of(self.manifest)
        self.session = {
            "number": len(self.manifest["sessions"]) + 1,
            "started_ns": now,
            "first_seq": self.next_seq,
            "last_seq": None,
            "source": self._source,
            "live_bars": None,
        }
        self.manifest["sessions"].append(self.session)
        self._save()

    def _start_segment(self) -> None:
        numbers = [s["number"] for s in self.manifest["segments"]]
        number = max(numbers, default=0) + 1
        folder = self.path / "journal"
        folder.mkdir(exist_ok=True)
        while (folder / f"segment-{number:06d}.rtj").exists() or (
            folder / f"bars-{number:06d}.rtj"
        ).exists():
            number += 1
        if self.segment is not None:
            number = max(number, self.segment.number + 1)
        self.segment = OpenSegment(
            number,
            JournalWriter(folder / f"segment-{number:06d}.rtj", fsync=self.fsync),
            folder / f"bars-{number:06d}.rtj",
            fsync=self.fsync,
        )
        self.segment_started = time.monotonic()

    @property
    def journal(self) -> JournalWriter | None:
        """The open segment's frame journal."""
        return self.segment.frames if self.segment is not None else None

    # --- writing -------------------------------------------------------------------------

    def append(self, frame: Frame) -> Frame:
        """Journal ``frame`` under the next ``seq`` (which it gets) and note lifecycle rows."""
        # Paid for every frame recorded, so the payload is not touched here: a segment's size
        # is counted from its journaled blocks' columns.
        seq = frame.seq = self.next_seq
        self.next_seq = seq + 1
        self.memtable.frames.append(frame)
        if frame.kind in manifests.NOTED_KINDS:
            with self._manifest_lock:
                manifests.note_lifecycle(
                    self.manifest,
                    frame.kind,
                    frame.stream,
                    frame.conn,
                    frame.seq,
                    frame.recv_ns,
                    frame.payload,
                )
        return frame

    def add_bar(self, instrument: str, bar: Bar, closed_seq: int) -> None:
        """A bar the live pipeline closed; journaled with the next flush."""
        self._bars.append((instrument, bar, closed_seq))

    def set_bar_timeframes(self, timeframes: list[str]) -> None:
        self._bar_timeframes = list(timeframes)
        with self._manifest_lock:
            if timeframes:
                self.session["live_bars"] = {
                    "timeframes": list(timeframes),
                    "files": [],
                    "count": 0,
                    "stream_hash": hashlib.sha256().hexdigest(),
                }
            self._save()

    def set_subscriptions(self, subscriptions: list[Any]) -> None:
        with self._manifest_lock:
            self.manifest["subscriptions"] = subscriptions
            self.session["subscriptions"] = subscriptions

    @property
    def pending(self) -> int:
        """Frames appended since the last flush."""
        return len(self.memtable)

    def held_bytes(self) -> int:
        """Payload bytes appended but not on disk yet: since the last flush, and in blocks a
        failed write left waiting for the next."""
        waiting = [columns for columns, _ in self.segment.unwritten] if self.segment else []
        return sum(len(f.payload) for c in [*waiting, self.memtable] for f in c.frames)

    def take_block(self) -> tuple[OpenSegment, FrameColumns, list[ClosedBar]]:
        """Detach rows appended since the last flush (on the appending thread); hand them to
        :meth:`write_block`, which may run in a worker thread."""
        columns, self.memtable = self.memtable, FrameColumns()
        bars, self._bars = self._bars, []
        return self.segment, columns, bars

    def write_block(
        self, segment: OpenSegment, columns: FrameColumns, bars: list[ClosedBar] = ()
    ) -> int:
        """Journal the bars, then the frames that closed them.

        Two files cannot be written at once, and this order is the one a crash between the
        writes leaves mendable: bars whose closing rows never reached the journal, which
        recovery drops by their ``closed_seq``. The other order would leave rows whose live
        bars were lost, and a replay of the tape would close bars the live record lacks.

        Blocks an earlier call failed to write go first; if this one fails too (``OSError``)
        it waits behind them for the next call, and nothing of it is on disk."""
        segment.unwritten.append((columns, list(bars)))
        written = 0
        while segment.unwritten:
            columns, bars = segment.unwritten[0]
            now = time.monotonic()
            if bars:
                segment.write_bars(bars_to_table(bars), now)
                segment.unwritten[0] = (columns, [])  # its bars are on disk
            if len(columns):
                table = columns.to_table()
                start = segment.frames.end
                size = segment.frames.write(table, now)
                written += size
                segment.payload_bytes += payload_bytes(table)
                self.sealer.hand(segment, start, start + size, table)
            segment.unwritten.pop(0)
        return written

    def flush(self) -> int:
        """Write pending rows as one journal block (same thread as appends)."""
        return self.write_block(*self.take_block())

    @property
    def segment_payload(self) -> int:
        """Payload bytes journaled in the open segment (rows not flushed yet not counted)."""
        return self.segment.payload_bytes if self.segment is not None else 0

    def should_rotate(self) -> bool:
        return (self.segment.frames.rows + len(self.memtable)) > 0 and (
            self.segment_payload >= self.segment_max_bytes
            or time.monotonic() - self.segment_started >= self.segment_max_s
        )

    def rotate(self, *, start_next: bool = True) -> OpenSegment:
        """Switch appends to the next segment's journal (on the appending thread); returns the
        closed segment with its last rows, for :meth:`finish_segment` (any thread) and then
        :meth:`seal_later` or :meth:`seal_now`."""
        closed = self.segment
        closed.last_block = self.take_block()[1:]
        self.sealer.awaiting(closed.number)
        if start_next:
            self._start_segment()
        else:
            self.segment = None
        return closed

    def finish_segment(self, segment: OpenSegment) -> None:
        """Journal a closed segment's last rows and close its journals (idempotent)."""
        if segment.last_block is not None:
            columns, bars = segment.last_block
            self.write_block(segment, columns, bars)
            segment.last_block = None
        segment.close()

    def seal_later(self, segment: OpenSegment) -> None:
        """Queue a closed segment for the sealer thread; recording does not wait for it."""
        self.sealer.seal_later(segment)

    def seal_now(self, segment: OpenSegment) -> dict | None:
        """Seal a closed segment on this thread (raises on failure; the journal stays)."""
        self.finish_segment(segment)
        return self.sealer.seal(segment)

    @property
    def stats(self) -> SealerStats:
        return self.sealer.stats

    @property
    def sealed_bytes(self) -> int:
        return self.sealer.sealed_bytes

    def _list_sealed(
        self, segment: OpenSegment, entry: dict | None, bar_files: list[dict], damage: list
    ) -> None:
        """List a sealed segment and its live-bars file in the manifest (on the sealer's
        thread); the manifest on disk changes in one atomic write or not at all."""
        with self._manifest_lock:
            updated = copy.deepcopy(self.manifest)
            session = next(s for s in updated["sessions"] if s["number"] == self.session["number"])
            if entry is not None:
                add_segment(updated, entry)
                session["last_seq"] = updated["last_seq"]
            for bar_file in bar_files:
                add_bar_file(self.path, updated, session, bar_file)
            if damage:
                updated["damage"].append(
                    {
                        "journal": segment.frames.path.name,
                        "problem": "; ".join(map(str, damage)),
                    }
                )
            self._save(updated)
            self.manifest = updated
            self.session = session

    # --- closing -------------------------------------------------------------------------

    def close(self) -> None:
        """Flush, seal every closed segment, mark the capture closed and release the lock.

        Raises :class:`CaptureError` if a segment could not be sealed: its journal is kept,
        the manifest says so, and ``rtcap recover`` seals it once the cause is fixed."""
        try:
            if self.segment is not None:
                closed = self.rotate(start_next=False)
                self.finish_segment(closed)
                self.seal_later(closed)
            self.sealer.stop()
            with self._manifest_lock:
                unsealed = sorted(self.stats.unsealed)
                self.manifest["status"] = "closed" if not unsealed else "unsealed"
                try:
                    self._save()
                except OSError as exc:
                    kept = "sealed" if not unsealed else "sealed or in its journal"
                    raise CaptureError(
                        f"could not write the manifest of {self.path} "
                        f"({describe_os_error(exc, 'writing the manifest')}); every row is "
                        f"{kept}: fix the cause, then run `rtcap recover {self.path}` to "
                        "write it again"
                    ) from None
        finally:
            self._unlock()
        if unsealed:
            reasons = {str(p) for p in self.stats.seal_failures if p.segment in unsealed}
            raise CaptureError(
                f"could not seal segment(s) {', '.join(map(str, unsealed))} of {self.path} "
                f"({'; '.join(sorted(reasons))}); every frame is safe in its journal: fix the "
                f"cause, then run `rtcap recover {self.path}`"
            )

    def discard_if_unused(self) -> bool:
        """After :meth:`close`: remove the capture this writer created if not one row went into
        it (the recording failed before its first connection), so trying again simply works.
        Only rtcap's own empty files and folders are removed; anything else stays."""
        if not self._created or self.manifest.get("frames") or self.manifest.get("segments"):
            return False
        for name in ("manifest.json", "capture.lock"):
            (self.path / name).unlink(missing_ok=True)
        for folder in ("journal", "frames", "bars"):
            for empty in sorted((self.path / folder).glob("**/*"), reverse=True):
                if empty.is_dir() and not empty.is_symlink():
                    with contextlib.suppress(OSError):
                        empty.rmdir()
            with contextlib.suppress(OSError):
                (self.path / folder).rmdir()
        try:
            self.path.rmdir()
        except OSError:
            return False  # something else is in it: left as it is
        return True

    def _save(self, manifest: dict | None = None) -> None:
        manifest = self.manifest if manifest is None else manifest
        manifest["updated_ns"] = time.time_ns()
        manifests.save(self.path, manifest)

    def _unlock(self) -> None:
        if self._lock_file is not None:
            unlock_capture(self._lock_file)
            self._lock_file = None


# --- shared with recovery ------------------------------------------------------------------


def add_segment(manifest: dict, entry: dict) -> None:
    """List a sealed segment in the manifest and update its totals, and its feeds
    (:func:`rtcap.storage.identity.note_feeds`)."""
    note_feeds(manifest, entry.get("feeds"), entry["first_ns"], entry["last_ns"])
    entry = {key: value for key, value in entry.items() if key != "feeds"}
    manifest["segments"].append(entry)
    manifest["segments"].sort(key=lambda s: s["first_seq"])
    manifest["frames"] += entry["rows"]
    manifest["payload_bytes"] += entry["payload_bytes"]
    first, last = manifest.get("first_seq"), manifest.get("last_seq")
    manifest["first_seq"] = entry["first_seq"] if first is None else min(first, entry["first_seq"])
    manifest["last_seq"] = entry["last_seq"] if last is None else max(last, entry["last_seq"])


def add_bar_file(directory: Path, manifest: dict, session: dict, file: dict) -> None:
    """List a live-bars file under its session and the capture; refresh both stream hashes."""
    for holder in (session, manifest):
        entry = holder.get("live_bars") or {"timeframes": [], "files": []}
        if not entry.get("timeframes"):
            entry["timeframes"] = (session.get("live_bars") or {}).get("timeframes") or []
        entry["files"].append(file)
        entry["files"].sort(key=lambda f: f["first_seq"] if isinstance(f, dict) else -1)
        entry["count"], entry["stream_hash"] = bars_digest(directory, entry["files"])
        holder["live_bars"] = entry


def bars_digest(directory: Path, files: list) -> tuple[int, str]:
    """(count, sha256) of the canonical lines of the bars in ``files``, in order."""
    digest = hashlib.sha256()
    count = 0
    for file in files:
        for instrument, bar, _ in table_to_bars(read_table(directory, file)):
            digest.update(bar_line(instrument, bar))
            count += 1
    return count, digest.hexdigest()
