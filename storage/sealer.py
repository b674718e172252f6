"""The sealer: journaled rows of each segment become Parquet, off the recording thread.

Each block the journal has just written is handed over in memory (:meth:`Sealer.hand`), so
sealing does not pay to read it back; a block it was not handed (it fell too far behind, or a
seal starts afresh) is streamed back from the journal. The open segment is sealed as it grows
(its tail), so sealing a full segment later only finishes its last row group. A seal that fails
is retried with backoff while recording goes on; a segment's journal is deleted only after the
writer has listed its sealed files in the manifest.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from rtcap.storage import manifest as manifests
from rtcap.storage.errors import CaptureDamaged, describe_os_error
from rtcap.storage.journal import Damage, JournalReader
from rtcap.storage.placement import HERE
from rtcap.storage.schema import BAR_SCHEMA
from rtcap.storage.segments import SegmentSealer, write_bars_files

if TYPE_CHECKING:
    from rtcap.storage.writer import OpenSegment

SEAL_RETRY_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)  # then every 30 s while recording goes on
SEAL_ATTEMPTS_AT_CLOSE = 3
TAIL_EVERY_S = 1.0  # how often the sealer looks for journal blocks it was not handed
HANDOFF_MAX_BYTES = 64 * 1024 * 1024  # blocks waiting for the sealer in memory, at most
_TAIL = object()  # on the seal queue: blocks were handed over, seal them into row groups

# The writer lists a sealed segment (its entry, live-bars file and damage found) in the
# manifest; raising leaves the journal in place for a retry.
ListSealed = Callable[["OpenSegment", dict | None, list[dict], list[Damage]], None]


@dataclass
class SealProblem:
    """A seal that failed (and will be retried, or left for ``rtcap recover``)."""

    segment: int
    error: BaseException
    attempts: int

    def __str__(self) -> str:
        return f"segment {self.segment}: {describe_os_error(self.error, 'sealing a segment')}"


@dataclass
class SealerStats:
    seals: int = 0
    seal_failures: list[SealProblem] = field(default_factory=list)
    unsealed: list[int] = field(default_factory=list)


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


class Sealer:
    """Seals one capture's segments: on its own thread (:meth:`seal_later`, the open segment's
    tail as blocks are handed) or on the caller's (:meth:`seal`), one seal at a time."""

    def __init__(
        self,
        directory: Path,
        *,
        level: int,
        row_group_rows: int,
        list_sealed: ListSealed,
        open_segment: Callable[[], OpenSegment | None],
    ) -> None:
        self.path = directory
        self.placement = HERE  # where sealed files go: the writer sets its manifest's
        self.seal_level = level
        self.row_group_rows = row_group_rows
        self._list_sealed = list_sealed
        self._open_segment = open_segment
        self.stats = SealerStats()
        self.sealed_bytes = 0
        self._seal_queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._tail: _Tail | None = None
        self._tail_failed: int | None = None
        # one seal at a time, whichever thread runs it (the sealer, or seal's caller)
        self._seal_lock = threading.RLock()
        self._handed: deque[_Written] = deque()
        self._handed_bytes = 0
        self._handed_lock = threading.Lock()
        self._awaiting_seal: set[int] = set()  # rotated segments not sealed yet

    def start(self) -> None:
        self._thread = threading.Thread(target=self._seal_loop, name="rtcap-sealer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Seal what is queued (giving up after a few attempts each), then end the thread."""
        self._closing.set()
        if self._thread is not None:
            self._seal_queue.put(None)
            self._thread.join()
            self._thread = None

    @property
    def backlog(self) -> int:
        """Segments rotated out and not sealed yet (a seal in progress or being retried)."""
        with self._handed_lock:
            return len(self._awaiting_seal)

    def awaiting(self, number: int) -> None:
        """Segment ``number`` was rotated out: its seal is coming."""
        with self._handed_lock:
            self._awaiting_seal.add(number)

    def seal_later(self, segment: OpenSegment) -> None:
        """Queue a closed segment for the sealer thread; recording does not wait for it."""
        self._seal_queue.put(segment)

    def hand(self, segment: OpenSegment, start: int, end: int, table: pa.Table) -> None:
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
                    self.seal(segment)
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
            segment = self._open_segment()
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
            self.path,
            segment.number,
            level=self.seal_level,
            row_group_rows=self.row_group_rows,
            placement=self.placement,
        )

    def seal(self, segment: OpenSegment) -> dict | None:
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
        bar_files: list[dict] = []
        try:
            if segment.bars is not None:
                bars = JournalReader(segment.bars_path, BAR_SCHEMA)
                bar_files = write_bars_files(self.path, segment.number, bars, self.placement)
            self._list_sealed(segment, entry, bar_files, damage)
        except BaseException:
            tail.sealer.abort()  # its files are unlisted: the journal still holds every row
            for bar_file in bar_files:
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
