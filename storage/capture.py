"""Writing a capture directory: journal → sealed segments → manifest, without ever stopping.

    <capture>/manifest.json                  written last, atomically
    <capture>/capture.lock                   held while a recorder writes
    <capture>/journal/segment-N.rtj          write-ahead log of segment N's frames
    <capture>/journal/bars-N.rtj             write-ahead log of the bars closed live in it
    <capture>/journal/damaged/               journals recovery could not read whole (kept)
    <capture>/frames/date=D/part-N.parquet   sealed segments
    <capture>/bars/bars-N.parquet            bars the live pipeline emitted, per segment

Rows are journaled every flush, always: when a segment is full its journals are closed, the
next segment's journals are opened at once, and a background sealer turns the journaled rows
into Parquet as they come (bounded memory). Each block the journal has just written is handed
to the sealer in memory, so sealing does not pay to read it back; a block the sealer was not
handed (it fell too far behind, or a seal starts afresh) is streamed back from the journal.
A seal that fails is retried with backoff while recording goes on; its journal is deleted
only after the manifest lists the sealed files, so a crash or a failed seal at any point loses
nothing journaled. Nothing already sealed is ever rewritten: new data goes to new files, and a
segment becomes visible only when its Parquet files are complete and renamed into place.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import fcntl
import hashlib
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from rtcap.bars import bar_line
from rtcap.models import Bar, Frame
from rtcap.storage import manifest as manifests
from rtcap.storage.errors import CaptureBusy, CaptureDamaged, CaptureError, RecoveryNeeded
from rtcap.storage.integrity import (
    bar_journal_files,
    journal_files,
    open_capture,
    read_frames,
    read_live_bars,
    read_table,
    sealed_files,
)
from rtcap.storage.journal import Damage, JournalReader, JournalWriter
from rtcap.storage.schema import (
    BAR_SCHEMA,
    ClosedBar,
    FrameColumns,
    bars_to_table,
    table_to_bars,
)
from rtcap.storage.segments import SEAL_LEVEL, SegmentSealer, write_bars_file

__all__ = [
    "LOCK",
    "CaptureBusy",
    "CaptureDamaged",
    "CaptureError",
    "CaptureWriter",
    "RecoveryNeeded",
    "bars_digest",
    "journal_files",
    "open_capture",
    "read_frames",
    "read_live_bars",
    "sealed_files",
]

LOCK = "capture.lock"
SEAL_RETRY_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)  # then every 30 s while recording goes on
SEAL_ATTEMPTS_AT_CLOSE = 3
TAIL_EVERY_S = 1.0  # how often the sealer looks for journal blocks it was not handed
HANDOFF_MAX_BYTES = 64 * 1024 * 1024  # blocks waiting for the sealer in memory, at most
_TAIL = object()  # on the seal queue: blocks were handed over, seal them into row groups


@dataclass
class _Tail:
    """A segment's seal in progress: how far into its journal it has sealed."""

    number: int
    path: Path
    sealer: SegmentSealer
    offset: int = 0
    damage: list[Damage] = field(default_factory=list)  # found reading its journal back


@dataclass(frozen=True)
class _Written:
    """A block just written whole to a segment's journal (bytes ``start``–``end``), handed to
    the sealer as the table it was encoded from."""

    segment: int
    start: int
    end: int
    table: pa.Table


def lock_capture(directory: Path, *, purpose: str):
    """The capture's lock file, held exclusively (``CaptureBusy`` if someone holds it)."""
    lock_path = directory / LOCK
    if lock_path.is_dir():
        raise CaptureError(
            f"{lock_path} is a directory: rtcap keeps a lock file there; move it away"
        )
    try:
        lock = open(lock_path, "a+")  # noqa: SIM115 - held until released
    except OSError as exc:
        raise CaptureError(
            f"cannot write capture directory {directory}: {exc.strerror or exc}; "
            "choose a writable location"
        ) from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        owner = lock.read().strip() or "another process"
        lock.close()
        raise CaptureBusy(
            f"capture directory {directory} is in use by a recorder ({owner}); stop it "
            f"before {purpose}"
        ) from None
    return lock


def unlock_capture(lock) -> None:
    with contextlib.suppress(OSError, ValueError):
        fcntl.flock(lock, fcntl.LOCK_UN)
    lock.close()


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

    def write_bars(self, table: pa.Table, now: float) -> None:
        if self.bars is None:
            self.bars = JournalWriter(self.bars_path, fsync=self.fsync)
        self.bars.write(table, now)

    def close(self) -> None:
        self.frames.close()
        if self.bars is not None:
            self.bars.close()


@dataclass
class SealProblem:
    """A seal that failed (and will be retried, or left for ``rtcap recover``)."""

    segment: int
    error: BaseException
    attempts: int

    def __str__(self) -> str:
        return f"segment {self.segment}: {describe_os_error(self.error, 'sealing a segment')}"


@dataclass
class WriterStats:
    seals: int = 0
    seal_failures: list[SealProblem] = field(default_factory=list)
    unsealed: list[int] = field(default_factory=list)


def describe_os_error(exc: BaseException, doing: str) -> str:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return f"disk full while {doing}"
    if isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"no permission while {doing} ({exc.strerror})"
    if isinstance(exc, OSError):
        return f"I/O error while {doing} ({exc.strerror or exc})"
    return f"{type(exc).__name__} while {doing}: {exc}"


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
    ) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.seal_level = seal_level
        self.segment_max_bytes = segment_max_bytes
        self.segment_max_s = segment_max_s
        self.row_group_rows = row_group_rows
        self.append_session = append
        self._source = source
        self._lock_file = None
        self._manifest_lock = threading.Lock()
        self._bars: list[ClosedBar] = []
        self._bar_timeframes: list[str] = []
        self.segment: OpenSegment | None = None
        self.memtable = FrameColumns()
        self.segment_started = 0.0
        self.segment_payload = 0
        self.next_seq = 0
        self.sealed_bytes = 0
        self.stats = WriterStats()
        self._seal_queue: queue.Queue[OpenSegment | None] = queue.Queue()
        self._sealer: threading.Thread | None = None
        self._closing = threading.Event()
        self._tail: _Tail | None = None
        self._tail_failed: int | None = None
        # one seal at a time, whichever thread runs it (the sealer, or seal_now's caller)
        self._seal_lock = threading.RLock()
        self._handed: deque[_Written] = deque()
        self._handed_bytes = 0
        self._handed_lock = threading.Lock()
        self._awaiting_seal: set[int] = set()  # rotated segments not sealed yet
        self.session: dict[str, Any] = {}

    # --- opening -------------------------------------------------------------------------

    def open(self) -> None:
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
        self._sealer = threading.Thread(target=self._seal_loop, name="rtcap-sealer", daemon=True)
        self._sealer.start()

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
        self.segment_payload = 0

    @property
    def journal(self) -> JournalWriter | None:
        """The open segment's frame journal."""
        return self.segment.frames if self.segment is not None else None

    # --- writing -------------------------------------------------------------------------

    def append(self, frame: Frame) -> Frame:
        """Journal ``frame`` under the next ``seq`` (which it gets) and note lifecycle rows."""
        frame.seq = self.next_seq
        self.next_seq += 1
        self.memtable.append(frame)
        self.segment_payload += len(frame.payload)
        if frame.kind in ("open", "close", "gap"):
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
                self._hand_to_sealer(segment, start, start + size, table)
            segment.unwritten.pop(0)
        return written

    def _hand_to_sealer(self, segment: OpenSegment, start: int, end: int, table: pa.Table) -> None:
        """Give the sealer a block now whole in the journal, unless too much already waits (it
        then reads that block back from the journal instead)."""
        with self._handed_lock:
            handed = self._handed_bytes + table.nbytes <= HANDOFF_MAX_BYTES
            if handed:
                self._handed.append(_Written(segment.number, start, end, table))
                self._handed_bytes += table.nbytes
            segment.handed_end = end
        if handed:
            self._seal_queue.put(_TAIL)

    def _take_handed(self, tail: _Tail) -> _Written | None:
        """The next handed block of ``tail``'s segment at or after its offset (``None`` when
        none waits); blocks of earlier segments, or ones already read from disk, are dropped."""
        with self._handed_lock:
            while self._handed:
                block = self._handed[0]
                if block.segment > tail.number:
                    return None
                self._handed.popleft()
                self._handed_bytes -= block.table.nbytes
                if block.segment == tail.number and block.start >= tail.offset:
                    return block
            return None

    def _journal_tables(self, tail: _Tail, end: int | None) -> Iterator[pa.Table]:
        """The tables of ``tail``'s journal from its offset up to ``end`` (``None``: the end of
        the file), in order, advancing the offset: each handed block from memory, anything
        between them read back from the journal (damage found there goes to ``tail.damage``)."""
        while True:
            block = self._take_handed(tail)
            stop = end if block is None else block.start
            if stop is None or tail.offset < stop:
                reader = JournalReader(tail.path, start=tail.offset, end=stop)
                yield from reader
                tail.offset = reader.offset
                tail.damage.extend(reader.damage)
            if block is None:
                return
            yield block.table
            tail.offset = block.end

    def flush(self) -> int:
        """Write pending rows as one journal block (same thread as appends)."""
        return self.write_block(*self.take_block())

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
        with self._handed_lock:
            self._awaiting_seal.add(closed.number)
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
        self._seal_queue.put(segment)

    def seal_now(self, segment: OpenSegment) -> dict | None:
        """Seal a closed segment on this thread (raises on failure; the journal stays)."""
        self.finish_segment(segment)
        return self._seal(segment)

    # --- sealing -------------------------------------------------------------------------

    def _seal_loop(self) -> None:
        while True:
            try:
                segment = self._seal_queue.get(timeout=TAIL_EVERY_S)
            except queue.Empty:
                self._advance_tail()
                continue
            if segment is _TAIL:
                self._advance_tail()
                continue
            if segment is None:
                return
            attempt = 0
            while True:
                try:
                    self._seal(segment)
                    break
                except Exception as exc:  # any failure is retried or reported
                    attempt += 1
                    problem = SealProblem(segment.number, exc, attempt)
                    self.stats.seal_failures.append(problem)  # the recorder reports it
                    if self._closing.is_set() and attempt >= SEAL_ATTEMPTS_AT_CLOSE:
                        self.stats.unsealed.append(segment.number)
                        self._sealed_or_given_up(segment.number)
                        break
                    delay = SEAL_RETRY_S[min(attempt - 1, len(SEAL_RETRY_S) - 1)]
                    if self._closing.is_set():
                        delay = min(delay, 1.0)
                    self._closing.wait(delay)

    def _advance_tail(self) -> None:
        """Seal the open segment as it grows: journal blocks already flushed become row groups
        now, so sealing a full segment later only finishes its last row group. Any trouble
        (a failed write, damage) drops this head start; the full seal then starts afresh."""
        with self._seal_lock:
            segment = self.segment
            if segment is None or self._tail_failed == segment.number:
                return
            with self._handed_lock:
                if any(number < segment.number for number in self._awaiting_seal):
                    # a rotated segment's seal is coming: it finishes that segment's tail and
                    # takes its handed blocks, which a tail begun here would drop
                    return
                end = segment.handed_end
            tail = self._tail = self._tail_for(segment)
            try:
                for table in self._journal_tables(tail, end):
                    tail.sealer.add(table)
                if tail.damage:
                    raise CaptureDamaged(f"{tail.path}: {tail.damage[0]}")
            except Exception:  # the full seal will redo it and report
                tail.sealer.abort()
                self._tail, self._tail_failed = None, segment.number

    def _tail_for(self, segment: OpenSegment) -> _Tail:
        """The seal in progress of ``segment``: the one begun, or a new one. A tail left from
        another segment is dropped, so its rows can never reach this segment's file."""
        tail = self._tail
        if tail is not None and tail.number == segment.number:
            return tail
        if tail is not None:
            tail.sealer.abort()
        return _Tail(segment.number, segment.frames.path, self._new_sealer(segment))

    def _sealed_or_given_up(self, number: int) -> None:
        with self._handed_lock:
            self._awaiting_seal.discard(number)

    def _new_sealer(self, segment: OpenSegment) -> SegmentSealer:
        return SegmentSealer(
            self.path, segment.number, level=self.seal_level, row_group_rows=self.row_group_rows
        )

    def _seal(self, segment: OpenSegment) -> dict | None:
        """Seal a closed segment's rows into Parquet, list them in the manifest, then delete
        the journals. Any failure leaves the journals and the manifest as they were."""
        with self._seal_lock:
            return self._seal_locked(segment)

    def _seal_locked(self, segment: OpenSegment) -> dict | None:
        segment.close()
        tail, self._tail = self._tail_for(segment), None
        damage = tail.damage
        try:
            for table in self._journal_tables(tail, None):
                tail.sealer.add(table)
            entry = tail.sealer.finish()
        except BaseException:
            tail.sealer.abort()
            raise
        bar_file = None
        try:
            if segment.bars is not None:
                bars = JournalReader(segment.bars_path, BAR_SCHEMA)
                bar_file = write_bars_file(self.path, segment.number, bars)
            with self._manifest_lock:
                updated = copy.deepcopy(self.manifest)
                session = next(
                    s for s in updated["sessions"] if s["number"] == self.session["number"]
                )
                if entry is not None:
                    add_segment(updated, entry)
                    session["last_seq"] = updated["last_seq"]
                if bar_file is not None:
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
        except BaseException:
            tail.sealer.abort()  # its files are unlisted: the journal still holds every row
            if bar_file is not None:
                with contextlib.suppress(OSError):
                    (self.path / bar_file["path"]).unlink()
            raise
        if entry is not None:
            self.sealed_bytes += sum(f["bytes"] for f in entry["files"])
        self.stats.seals += 1
        self._sealed_or_given_up(segment.number)
        # Sealed and listed: from here on nothing may make it seal again. A journal that cannot
        # be removed stays for `rtcap recover`, which finds all its rows sealed and removes it.
        with contextlib.suppress(OSError):
            if damage:
                keep_damaged(self.path, segment.frames.path)
            else:
                segment.frames.path.unlink()
        if segment.bars is not None:
            with contextlib.suppress(OSError):
                segment.bars_path.unlink()
        return entry

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
            self._closing.set()
            if self._sealer is not None:
                self._seal_queue.put(None)
                self._sealer.join()
                self._sealer = None
            with self._manifest_lock:
                unsealed = sorted(self.stats.unsealed)
                self.manifest["status"] = "closed" if not unsealed else "unsealed"
                self._save()
        finally:
            self._unlock()
        if unsealed:
            reasons = {str(p) for p in self.stats.seal_failures if p.segment in unsealed}
            raise CaptureError(
                f"could not seal segment(s) {', '.join(map(str, unsealed))} of {self.path} "
                f"({'; '.join(sorted(reasons))}); every frame is safe in its journal: fix the "
                f"cause, then run `rtcap recover {self.path}`"
            )

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
    """List a sealed segment in the manifest and update its totals."""
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


def keep_damaged(directory: Path, journal: Path) -> Path:
    """Move a journal that held damage into ``journal/damaged/`` (never delete it)."""
    folder = directory / "journal" / "damaged"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / journal.name
    suffix = 0
    while target.exists():
        suffix += 1
        target = folder / f"{journal.stem}.{suffix}{journal.suffix}"
    os.replace(journal, target)
    manifests.fsync_dir(folder)
    return target
