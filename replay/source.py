"""``Replay``: a capture as a frame source for the same pipeline live code uses.

    suite = await TradingSuite.create("MNQ", ["1min"], source=Replay("captures/x", speed=10))

Frames come out in ``seq`` order, paced (see :mod:`rtcap.replay.pacing`) or as fast as possible.
While paced, ``clock`` frames carry the capture time that corresponds to now, so bars close on
time in quiet stretches exactly as the kernel's virtual clock would close them; they never run
ahead of the next frame, so the events are the same at every speed.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from rtcap.instruments import symbol_of
from rtcap.lifecycle import ClockRow
from rtcap.models import DATA_KINDS, Frame
from rtcap.replay.pacing import Pacer, parse_speed
from rtcap.storage.dataset import open_reader
from rtcap.storage.manifest import contract_names
from rtcap.storage.reader import CaptureReader, FrameFilter, resolve_time
from rtcap.storage.schema import frame_chunks
from rtcap.storage.tail import CaptureTail, rolled_to
from rtcap.timeutil import format_iso_ns

CHUNK = 512  # frames converted at a time: short enough not to hold up a paced schedule
_DATA_KINDS = pa.array(sorted(DATA_KINDS), pa.string())


class Replay:
    """Frames of a capture, paced at ``speed`` (``"10x"``, ``0.5``, ``"max"``)."""

    def __init__(
        self,
        capture: str | Path,
        speed: str | float | None = "max",
        *,
        start: str | int | None = None,
        end: str | int | None = None,
        streams: list[str] | None = None,
        kinds: list[str] | None = None,
        symbols: list[str] | None = None,
        include_open: bool = False,
        max_gap: float | None = None,
        clock_interval_s: float = 0.1,
        keep_lateness: bool = False,
        seqs: tuple[int, int | None] | None = None,
        recorders: list[str] | None = None,
        follow: bool = False,
        poll_s: float = 0.2,
    ) -> None:
        # a capture, or a dataset root whose captures are merged in receive-time order
        self.reader = open_reader(capture, include_open=include_open or follow, recorders=recorders)
        if follow and not isinstance(self.reader, CaptureReader):
            raise ValueError(
                f"--follow reads one capture being recorded, and {capture} holds several: name "
                "one of them"
            )
        self.follow = follow
        self.poll_s = poll_s
        self.speed = parse_speed(speed)
        first, last = self.reader.span
        start_ns, end_ns = resolve_time(start, first, last), resolve_time(end, first, last)
        if start_ns is not None and end_ns is not None and start_ns >= end_ns:
            raise ValueError(
                f"--from {start} is not before --to {end}: the window would be empty; give a "
                "start before the end"
            )
        span = f"{format_iso_ns(first)} to {format_iso_ns(last)}"
        if start_ns is not None and start_ns > last:
            raise ValueError(
                f"--from {start} is after the capture's last frame: it spans {span}; give a "
                "start inside it"
            )
        if end_ns is not None and end_ns <= first:
            raise ValueError(
                f"--to {end} is not after the capture's first frame: it spans {span}; give an "
                "end inside it"
            )
        self.filter = FrameFilter(
            start_ns,
            end_ns,
            frozenset(streams) if streams else None,
            frozenset(kinds) if kinds else None,
            frozenset(symbols) if symbols else None,
            seqs,
        )
        # The symbols a pipeline should keep events of (a contract id stands for its symbol).
        self.instruments = sorted({symbol_of(s) if s.startswith("CON.") else s.upper()
                                   for s in symbols}) if symbols else None  # fmt: skip
        self.pacer = Pacer(
            self.speed, None if max_gap is None else int(max_gap * 1e9), keep_lateness=keep_lateness
        )
        self.clock_interval_ns = int(clock_interval_s * 1e9)
        self.closed = False
        self.frames_out = 0
        self.last_recv_ns: int | None = None
        self._last_seq = 0
        self._next_clock: int | None = None

    @property
    def manifest(self) -> dict:
        return self.reader.manifest

    @property
    def contract_names(self) -> dict[str, str]:
        """Contract id → symbol as the recorder resolved them (for ``Pipeline(contracts=)``)."""
        return contract_names(self.manifest)

    async def batches(self) -> AsyncIterator[list[Frame]]:
        tables = _prefetching(self._tables())
        try:
            while (table := await anext(tables)) is not None and not self.closed:
                for frames in frame_chunks(table, CHUNK):
                    if self.speed is None:
                        self._out(frames)
                        yield frames
                        await asyncio.sleep(0)
                    else:
                        times = [frame.recv_ns for frame in frames]
                        async for batch in self.pacer.release(
                            frames, times, on_emit=self._out, interlude=self._clock_frames
                        ):
                            yield batch
                    if self.closed:
                        return
        finally:
            self.closed = True  # a follow's polling thread stops within poll_s

    def _tables(self) -> Iterator[pa.Table]:
        """The capture's rows as filtered tables; following, then the rows a recorder still
        writes as they reach the disk, until it ends (its manifest no longer says recording),
        and on into the capture it rolled to, day after day."""
        yield from self.reader.tables(self.filter)
        if not self.follow:
            return
        path, after = self.reader.path, self.reader.last_seq
        while not self.closed:
            tail = CaptureTail(path, after)
            while not self.closed and not tail.finished:
                table = tail.poll()
                if table is None:
                    time.sleep(self.poll_s)  # on the prefetching worker thread, never the loop
                    continue
                table = self.filter.apply(table)
                if table.num_rows:
                    yield table
            following = None if self.closed else rolled_to(path)
            if following is None:
                return
            path, after = following, -1

    async def raw_batches(self) -> AsyncIterator[list[bytes]]:
        """Payloads of the data frames only, undecoded, in order, at ``speed`` (or max): the
        passthrough path for serving a tape to other programs."""
        tables = _prefetching(self.reader.tables(self.filter))
        while (table := await anext(tables)) is not None and not self.closed:
            table = table.filter(pc.is_in(table.column("kind").cast(pa.string()), _DATA_KINDS))
            payloads = table.column("payload").to_pylist()
            if self.speed is None:
                self._count(payloads)
                yield payloads
                continue
            times = table.column("recv_ns").cast(pa.int64()).to_pylist()
            async for batch in self.pacer.release(payloads, times, on_emit=self._count):
                yield batch

    async def _clock_frames(self, due: int) -> AsyncIterator[list[Frame]]:
        """Clock frames every ``clock_interval_ns`` of wall time until ``due``."""
        if not self.clock_interval_ns:
            return
        if self._next_clock is None:
            self._next_clock = due
        while self._next_clock < due:
            await self.pacer.wait_until(self._next_clock)
            now = self.pacer.recv_now()
            if now is not None:
                tick = ClockRow().to_frame(now, 0, 0, "clock")
                tick.seq = self._last_seq
                yield [tick]
            self._next_clock += self.clock_interval_ns

    def _count(self, batch: list) -> None:
        self.frames_out += len(batch)

    def _out(self, batch: list[Frame]) -> None:
        self.frames_out += len(batch)
        self.last_recv_ns = batch[-1].recv_ns
        self._last_seq = batch[-1].seq

    async def __aiter__(self) -> AsyncIterator[Frame]:
        async for batch in self.batches():
            for frame in batch:
                yield frame

    async def close(self) -> None:
        self.closed = True

    def describe(self) -> str:
        speed = "max speed" if self.speed is None else f"{self.speed:g}x"
        return f"replay of {self.reader.path} at {speed}"


PREFETCH_TABLES = 3  # row groups read ahead of the one being replayed
# While a worker reads ahead, the thread replaying holds the GIL at most this long when the
# worker asks for it back (Python's default is 5 ms): each of the worker's calls into Arrow
# gives it up and must get it back, and at 5 ms a turn a max-speed replay of a fast codec
# waited on the worker for a tenth of its time (bench/cold.py, the ProjectX market).
READ_AHEAD_SWITCH_S = 0.0002


async def _prefetching(
    tables: Iterator[pa.Table], depth: int = PREFETCH_TABLES
) -> AsyncIterator[pa.Table | None]:
    """Row groups read by a worker thread up to ``depth`` ahead of the one being replayed, so
    a paced replay never waits on Parquet decoding, and one slow read (a new file's checks, a
    compacted row group's decoding) is absorbed by the ones before it; ``None`` at the end.

    The worker reads on as soon as there is room, rather than one table per request: each of
    its calls into Arrow gives up the GIL, and a worker that must get it back from the thread
    replaying falls behind by a switch interval each time."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Queue[tuple[pa.Table | None, BaseException | None]] = asyncio.Queue()
    room = threading.Semaphore(depth)
    stop = threading.Event()

    def hand_over(item: tuple[pa.Table | None, BaseException | None]) -> None:
        try:
            loop.call_soon_threadsafe(ready.put_nowait, item)
        except RuntimeError:  # the loop has closed: nobody is reading any more
            stop.set()

    def read() -> None:
        try:
            for table in tables:
                while not room.acquire(timeout=0.1):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                hand_over((table, None))
            hand_over((None, None))
        except BaseException as exc:  # handed to the reader, raised there
            hand_over((None, exc))

    worker = threading.Thread(target=read, name="rtcap-prefetch", daemon=True)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(min(switch, READ_AHEAD_SWITCH_S))
    worker.start()
    try:
        while True:
            table, error = await ready.get()
            if error is not None:
                raise error
            if table is None:
                yield None
                return
            room.release()
            yield table
    finally:
        stop.set()
        sys.setswitchinterval(switch)  # a replay beside this one may end with 5 ms again
