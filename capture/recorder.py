"""The recorder: runs feed sessions, numbers every row, journals it and hands it on.

Reading sockets never waits for the disk: rows are appended in memory on the event loop, and a
flusher writes one journal block every ``flush_ms`` (and seals segments) in a worker thread.
An optional kernel pipeline watches the rows as they arrive: it stores the bars it closes live
(for ``rtcap verify``) and turns exchange sequence jumps into ``gap`` rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from rtcap.capture.diskfull import HOLD_MB, JournalPause, is_disk_full
from rtcap.capture.health import STATUS_EVERY_S, snapshot, write_status
from rtcap.capture.memory import TRIM_EVERY_S, release_free_memory
from rtcap.capture.roll import CME_SESSION_OPENS, RollSchedule
from rtcap.capture.session import SILENCE_AFTER_S, Backoff, FatalFeedError, Session
from rtcap.events import EventType
from rtcap.lifecycle import (
    ClockRow,
    ErrorRow,
    contract_rolled,
    error_row,
    gap_kind_of,
    payload_detail,
)
from rtcap.models import DATA_KINDS, Frame
from rtcap.pipeline import Pipeline, sequence_gap_row
from rtcap.storage.errors import CaptureError, describe_os_error
from rtcap.storage.writer import CaptureWriter

log = logging.getLogger("rtcap.capture")
CONTRACT_RETRY_NS = 60 * 1_000_000_000  # a failed front-contract check is tried again
CONTRACT_FOLLOW_UPS_NS = (60 * 1_000_000_000, 600 * 1_000_000_000)  # checks after an open


class RecordingError(Exception):
    """Recording stopped for a reason the user must act on; what was recorded is sealed."""


class Recorder:
    def __init__(
        self,
        feeds: Sequence[Any],
        *,
        writer: CaptureWriter | None = None,
        flush_ms: int = 100,
        bar_timeframes: list[str] | None = None,
        backoff: Backoff | None = None,
        stale_after_s: float | None = 30.0,
        max_frames: int | None = None,
        open_timeout_s: float = 10.0,
        max_attempts: int | None = None,
        silence_after_s: float | None = SILENCE_AFTER_S,
        hold_mb: float = HOLD_MB,
        roll: RollSchedule | None = None,
        next_writer: Callable[[int], CaptureWriter] | None = None,
        after_close: Callable[[CaptureWriter], Awaitable[None]] | None = None,
        contract_checks: RollSchedule | None = None,
    ) -> None:
        self.feeds = list(feeds)
        self.hold_bytes = int(hold_mb * 1024 * 1024)
        self.pause: JournalPause | None = None  # while the journal's disk is full
        self.writer = writer
        self.flush_s = flush_ms / 1000
        self.bar_timeframes = bar_timeframes
        self.max_frames = max_frames
        # The read loop decodes frames only when that yields something: live bars to keep,
        # or exchange sequence gaps to write down.
        wanted = {EventType.GAP} if any(f.carries_sequence_ids for f in self.feeds) else set()
        if bar_timeframes and writer is not None:
            wanted.add(EventType.BAR_CLOSED)
        # Feeds that fetch depth snapshots need a book to tell them when it broke.
        self._snapshots = {
            f.stream: f.snapshots for f in self.feeds if getattr(f, "snapshots", None) is not None
        }
        self._wanted = wanted
        self.pipeline = self._new_pipeline()
        # Day roll (capture/roll.py): when, and the writer of the next capture.
        self.roll = roll if writer is not None and next_writer is not None else None
        self._next_writer = next_writer
        self._after_close = after_close  # a rolled capture closed: upload it, prune staging
        self._next_roll_ns: int | None = None
        self._closing: list[asyncio.Task[None]] = []
        self._last_recv_ns = 0
        self.rolls = 0
        self.sessions = [
            Session(
                feed,
                self._sink,
                backoff=backoff,
                stale_after_s=stale_after_s,
                open_timeout_s=open_timeout_s,
                max_attempts=max_attempts,
                silence_after_s=silence_after_s,
            )
            for feed in self.feeds
        ]
        # Contract roll: feeds asked for a root (MNQ) re-resolve its front contract at every
        # session open: each day roll of a rolling recording, else CME's 17:00 Chicago.
        self._contract_sessions = [s for s in self.sessions if hasattr(s.feed, "recheck")]
        self._contract_schedule = contract_checks or self.roll or CME_SESSION_OPENS
        self._next_contract_check_ns: int | None = None
        self._follow_ups: list[int] = []
        self._background: set[asyncio.Task[None]] = set()
        self.contract_rolls = 0
        self.stop = asyncio.Event()
        self.rows = 0
        self.data_frames = 0
        self.payload_bytes = 0
        self.sequence_gaps = 0
        self.started = time.monotonic()
        self._seq = 0
        self._queues: list[asyncio.Queue] = []
        self.error: str | None = None
        # What capture/health.py reports: data frames and bytes per stream, gap rows per kind,
        # and the journal's flush times (``on_flush`` lets a metrics histogram see each one).
        self.stream_counts: dict[str, list[int]] = {}
        self.gap_counts: dict[str, int] = {}
        self.last_flush_s: float | None = None
        self.on_flush: Callable[[float], None] | None = None
        self.uploader: Any = None  # the Uploader of a URI capture, for its backlog

    def _new_pipeline(self) -> Pipeline | None:
        """The read loop's pipeline (one per capture: live bars are each capture's own)."""
        if not self._wanted:
            return None
        return Pipeline(
            None,
            self.bar_timeframes or ["1min"],
            codec="auto",
            wanted=self._wanted,
            books=bool(self._snapshots),
            book_levels=False,  # only breaks matter here: no levels on the read loop
        )

    def subscribe(self) -> asyncio.Queue:
        """A queue receiving every row as recorded (``None`` when recording ends)."""
        queue: asyncio.Queue = asyncio.Queue()
        self._queues.append(queue)
        return queue

    # --- rows ----------------------------------------------------------------------------

    def _sink(self, frame: Frame) -> None:
        if self.pause is not None and not self.pause.admit(frame):
            return  # not kept: neither journaled nor seen live (live must equal replay)
        if frame.recv_ns > self._last_recv_ns:
            self._last_recv_ns = frame.recv_ns
        if self.writer is not None:
            self.writer.append(frame)
        else:
            frame.seq = self._seq
            self._seq += 1
        self.rows += 1
        if frame.kind in DATA_KINDS:
            self.data_frames += 1
            self.payload_bytes += len(frame.payload)
            counts = self.stream_counts.get(frame.stream)
            if counts is None:
                counts = self.stream_counts[frame.stream] = [0, 0]
            counts[0] += 1
            counts[1] += len(frame.payload)
        elif frame.kind == "gap":
            kind = gap_kind_of(payload_detail(frame.payload))
            self.gap_counts[kind] = self.gap_counts.get(kind, 0) + 1
        for event in self.pipeline.feed(frame) if self.pipeline is not None else ():
            if event.type is EventType.BAR_CLOSED:
                self.writer.add_bar(event.instrument, event.data["bar"], frame.seq)
            elif (row := sequence_gap_row(event, frame)) is not None:
                self.sequence_gaps += 1
                if event.data.get("kind") == "book" and frame.stream in self._snapshots:
                    self._snapshots[frame.stream].request(event.data["symbol"])
                self._sink(row)
        for queue in self._queues:
            queue.put_nowait(frame)
        if self.max_frames is not None and self.data_frames >= self.max_frames:
            self.stop.set()

    def _error_row(self, event: str, error: str | None, **extra: Any) -> Frame:
        """A capture-level ``error`` row (not tied to one feed's connection)."""
        row = error_row(event, error, **extra)
        return row.to_frame(time.time_ns(), time.monotonic_ns(), 0, "rtcap")

    def clock_ns(self) -> int:
        """Now, for a clock frame: never later than a message already on its way in, so a live
        clock never closes a bar that message belongs to (replay could not do that)."""
        pending = [t for s in self.sessions if (t := s.oldest_unrecorded_ns()) is not None]
        return min([time.time_ns(), *pending])

    # --- running -------------------------------------------------------------------------

    async def prepare(self) -> None:
        """Log in and resolve what to subscribe to; failures here are final and clear."""
        for feed in self.feeds:
            try:
                await feed.prepare()
            except OSError as exc:
                raise RecordingError(f"cannot start {feed.stream} feed: {exc}") from None
            except FatalFeedError as exc:
                raise RecordingError(str(exc)) from None
        if self.writer is not None:
            self.writer.set_subscriptions(self._subscriptions())
            self.writer.set_bar_timeframes(self.bar_timeframes or [])

    async def run(self, duration_s: float | None = None) -> None:
        """Record until ``stop`` is set, ``duration_s`` passes or ``max_frames`` arrive; then
        seal everything. Raises :class:`RecordingError` (after sealing) on a fatal failure."""
        self.started = time.monotonic()
        sessions = [asyncio.create_task(s.run(self.stop)) for s in self.sessions]
        flusher = asyncio.create_task(self._flusher())
        keeper = asyncio.create_task(self._keep_status()) if self.writer is not None else None
        releaser = asyncio.create_task(self._release_memory())
        timer = asyncio.create_task(self._timer(duration_s)) if duration_s else None
        stopper = asyncio.create_task(self.stop.wait())
        try:
            pending = set(sessions) | {stopper, flusher}
            while not self.stop.is_set():
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task is not stopper and task.exception() is not None:
                        self.error = _reason(task.exception())
                        self.stop.set()
            await asyncio.gather(*sessions, return_exceptions=True)
        finally:
            self.stop.set()
            with contextlib.suppress(Exception):
                await flusher  # it notices stop between writes and returns
            for task in (timer, stopper, keeper, releaser, *self._background):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            for session in sessions:
                if not session.done():
                    session.cancel()
            # No row may arrive while the writer closes on its thread.
            await asyncio.gather(*sessions, return_exceptions=True)
            self._sink(ClockRow().to_frame(time.time_ns(), time.monotonic_ns(), 0, "clock"))
            await self._finish()
            self.write_status()  # the last word: not running
        if self.error is not None:
            raise RecordingError(self.error)

    async def _timer(self, duration_s: float) -> None:
        await asyncio.sleep(duration_s)
        self.stop.set()

    async def _flusher(self) -> None:
        """Write a journal block every ``flush_s``; when the segment is full, switch to the next
        segment's journal and hand the full one to the writer's sealer thread, so journaling
        never waits for a seal. Stops only between writes (never cancelled mid-write)."""
        writer = self.writer
        if writer is None:
            return
        reported = 0
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.flush_s)
            block = writer.take_block()
            if len(block[1]) or block[2] or self.pause is not None:
                started = time.monotonic()
                try:
                    await asyncio.to_thread(writer.write_block, *block)
                except OSError as exc:
                    if not is_disk_full(exc):
                        raise JournalWriteError(exc) from exc
                    self._journal_full(exc)
                    continue  # the block waits in the writer for the next try
                self.last_flush_s = time.monotonic() - started
                if self.on_flush is not None:
                    self.on_flush(self.last_flush_s)
                if self.pause is not None:
                    self._journal_resumed()
            if writer.should_rotate() and not self.stop.is_set():
                closed = writer.rotate()  # on this thread: appends go to the next segment now
                try:
                    await asyncio.to_thread(writer.finish_segment, closed)
                except OSError as exc:
                    raise JournalWriteError(exc) from exc
                writer.seal_later(closed)
            failures = writer.stats.seal_failures
            for problem in failures[reported:]:
                log.warning("%s; recording goes on, the seal is retried", problem)
                self._sink(self._error_row("seal_failed", str(problem)))
            reported = len(failures)
            if self._roll_due() and not self.stop.is_set():
                await self._roll()
                writer, reported = self.writer, 0
            if self._contract_check_due() and not self.stop.is_set():
                task = asyncio.create_task(self._check_contracts())
                self._background.add(task)
                task.add_done_callback(self._background.discard)

    def _roll_due(self) -> bool:
        if self.roll is None or self.pause is not None:
            return False
        now = time.time_ns()
        if self._next_roll_ns is None:
            self._next_roll_ns = self.roll.next_after(now)
        return now >= self._next_roll_ns

    async def _roll(self) -> None:
        """Close this capture and go on in the next one, without dropping any connection: the
        next row goes to the next capture, whose own pipeline builds its live bars. A ``rolled``
        row ends the old capture and a ``rolled_from`` row starts the new one, each naming the
        other; the old one is sealed and closed in the background (its status says so)."""
        old = self.writer
        assert old is not None and self._next_writer is not None and self.roll is not None
        now = time.time_ns()
        new = self._next_writer(now)
        try:
            await asyncio.to_thread(new.open)
        except (CaptureError, OSError) as exc:  # the next capture cannot open: keep this one
            log.warning("cannot roll to %s (%s): recording goes on in %s", new.path, exc, old.path)
            self._sink(self._error_row("roll_failed", str(exc), next=str(new.path)))
            self._next_roll_ns = self.roll.next_after(now)
            return
        for feed in self.feeds:  # a new day lists only the contract rolls it holds
            retired = getattr(feed, "retired", None)
            if retired is not None:
                retired.clear()
        new.set_subscriptions(self._subscriptions())
        new.set_bar_timeframes(self.bar_timeframes or [])
        # The switch, with no await inside: every row from here on is the new capture's.
        at = self._last_recv_ns or now  # no row of the new capture may precede the old's last
        self._sink(
            error_row("rolled", None, continues_in=str(new.path)).to_frame(at, 0, 0, "rtcap")
        )
        self.writer = new
        self.pipeline = self._new_pipeline()
        for snapshots in self._snapshots.values():
            snapshots.request_all()  # each capture's books start from its own snapshot
        self._sink(
            error_row("rolled_from", None, continued_from=str(old.path)).to_frame(
                at + 1, 0, 0, "rtcap"
            )
        )
        self.rolls += 1
        self._next_roll_ns = self.roll.next_after(now)
        log.info("rolled: %s closed, recording goes on in %s", old.path, new.path)
        self._closing = [task for task in self._closing if not task.done()]
        self._closing.append(asyncio.create_task(self._close_rolled(old)))

    def _contract_check_due(self) -> bool:
        """A session opened (or one of the follow-ups after an open is due: a gateway may
        switch its active contract a little after the open, and the next open is a day away)."""
        if not self._contract_sessions:
            return False
        now = time.time_ns()
        if self._next_contract_check_ns is None:
            self._next_contract_check_ns = self._contract_schedule.next_after(now)
        if self._follow_ups and now >= self._follow_ups[0]:
            self._follow_ups.pop(0)
            return True
        if now < self._next_contract_check_ns:
            return False
        self._next_contract_check_ns = self._contract_schedule.next_after(now)
        self._follow_ups = [now + after for after in CONTRACT_FOLLOW_UPS_NS]
        return True

    async def _check_contracts(self) -> None:
        """A session opened: ask each feed for its symbols' front contracts again. For each that
        changed, a ``contract_rolled`` row (the new contract's frames are the symbol's from
        there), then the connection subscribes to the new contract and drops the old one. A
        failed check is a row and is retried a minute later."""
        for session in self._contract_sessions:
            feed = session.feed
            try:
                changes = await feed.recheck()
            except (OSError, FatalFeedError) as exc:
                log.warning("%s: cannot check the front contracts (%s)", feed.stream, exc)
                self._sink(self._stream_row(error_row("contract_check_failed", str(exc)), session))
                self._next_contract_check_ns = time.time_ns() + CONTRACT_RETRY_NS
                continue
            for symbol, old, new in changes:
                log.info("%s: %s rolls from %s to %s", feed.stream, symbol, old, new)
                self._sink(self._stream_row(contract_rolled(symbol, old, new), session))
                self.contract_rolls += 1
                await session.send_now(feed.resubscribe_messages(old, new))
            if changes and self.writer is not None:
                self.writer.set_subscriptions(self._subscriptions())

    def _stream_row(self, row: ErrorRow, session: Session) -> Frame:
        """``row`` on ``session``'s stream, stamped no earlier than the last row recorded."""
        now = max(time.time_ns(), self._last_recv_ns)
        return row.to_frame(now, time.monotonic_ns(), session.conn, session.feed.stream)

    def _subscriptions(self) -> list[dict[str, Any]]:
        return [
            {"stream": feed.stream, "subscriptions": getattr(feed, "subscriptions", [])}
            for feed in self.feeds
        ]

    async def _close_rolled(self, old: CaptureWriter) -> None:
        """Write the old capture's last rows, seal and close it, and mark its status ended."""
        try:
            await asyncio.to_thread(old.write_block, *old.take_block())
            await asyncio.to_thread(old.close)
        except (CaptureError, OSError) as exc:
            log.warning("%s: %s", old.path, exc)
            self.error = self.error or f"closing the rolled capture {old.path}: {exc}"
        with contextlib.suppress(OSError):
            write_status(old.path, {**snapshot(self), "running": False, "capture": str(old.path)})
        if self._after_close is not None:
            await self._after_close(old)

    async def _release_memory(self) -> None:
        """Free memory back to the system now and then (:mod:`rtcap.capture.memory`)."""
        while True:
            await asyncio.sleep(TRIM_EVERY_S)
            release_free_memory()

    async def _keep_status(self) -> None:
        """``status.json`` in the capture, refreshed every second (``rtcap status`` reads it)."""
        while True:
            self.write_status()
            await asyncio.sleep(STATUS_EVERY_S)

    def write_status(self) -> None:
        if self.writer is None:
            return
        with contextlib.suppress(OSError):  # best effort: a full disk is reported elsewhere
            write_status(self.writer.path, snapshot(self))

    def _journal_full(self, exc: OSError) -> None:
        if self.pause is not None:
            return
        writer = self.writer
        assert writer is not None
        self.pause = JournalPause(time.time_ns(), self.hold_bytes, writer.held_bytes())
        what = describe_os_error(exc, "writing the journal")
        log.warning(
            "%s: journaling paused; holding up to %d MB of rows in memory and retrying every flush",
            what,
            self.hold_bytes // (1024 * 1024),
        )
        self._sink(self._error_row("journal_paused", what))

    def _journal_resumed(self) -> None:
        pause, self.pause = self.pause, None
        assert pause is not None
        seconds = (time.time_ns() - pause.since_ns) / 1e9
        loss = pause.loss()
        log.warning(
            "the journal is writable again after %.1f s: journaling resumed (%s)",
            seconds,
            f"{pause.lost_rows:,} rows could not be held and are lost" if loss else "nothing lost",
        )
        if loss is not None:
            self._sink(loss.to_frame(time.time_ns(), time.monotonic_ns(), 0, "rtcap"))
        self._sink(
            self._error_row(
                "journal_resumed", None, paused_s=round(seconds, 3), lost_rows=pause.lost_rows
            )
        )

    async def _finish(self) -> None:
        if self._closing:
            await asyncio.gather(*self._closing)
        for queue in self._queues:
            queue.put_nowait(None)
        if self.writer is not None:
            try:
                await asyncio.to_thread(self.writer.close)
            except CaptureError as exc:
                self.error = f"{self.error}; {exc}" if self.error else str(exc)
            except OSError as exc:
                self.error = self.error or _reason(JournalWriteError(exc))

    # --- status --------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        elapsed = max(1e-9, time.monotonic() - self.started)
        written = 0
        if self.writer is not None:
            journal = self.writer.journal
            written = self.writer.sealed_bytes + (journal.written_bytes if journal else 0)
        gaps = [s.last_gap_s for s in self.sessions if s.last_gap_s is not None]
        return {
            "state": ", ".join(f"{s.feed.stream} {s.state}" for s in self.sessions),
            "frames": self.data_frames,
            "rows": self.rows,
            "frames_per_s": self.data_frames / elapsed,
            "bytes_written": written,
            "compression": self.payload_bytes / written if written else None,
            "reconnects": sum(s.reconnects for s in self.sessions),
            "last_gap_s": gaps[-1] if gaps else None,
            "sequence_gaps": self.sequence_gaps,
        }


class JournalWriteError(Exception):
    """The journal itself could not be written: nothing more can be kept safely."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _reason(exc: BaseException) -> str:
    if isinstance(exc, JournalWriteError):
        what = describe_os_error(exc.cause, "writing the journal")
        return (
            f"{what}: recording stopped; everything journaled before it and every sealed "
            "segment is intact: fix the cause, then run `rtcap recover` on the capture"
        )
    if isinstance(exc, FatalFeedError | CaptureError | RecordingError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
