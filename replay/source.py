"""``Replay``: a capture as a frame source for the same pipeline live code uses.

    suite = await TradingSuite.create("MNQ", ["1min"], source=Replay("captures/x", speed=10))

Frames come out in ``seq`` order, paced (see :mod:`rtcap.replay.pacing`) or as fast as possible.
While paced, ``clock`` frames carry the capture time that corresponds to now, so bars close on
time in quiet stretches exactly as the kernel's virtual clock would close them; they never run
ahead of the next frame, so the events are the same at every speed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from rtcap.replay.pacing import Pacer, parse_speed
from rtcap.storage.reader import CaptureReader, FrameFilter, resolve_time
from rtcap.storage.schema import table_to_frames

from rtcap.models import CLOCK, DATA_KINDS, Frame

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
    ) -> None:
        self.reader = CaptureReader(capture, include_open=include_open)
        self.speed = parse_speed(speed)
        first, last = self.reader.span
        self.filter = FrameFilter(
            resolve_time(start, first, last),
            resolve_time(end, first, last),
            frozenset(streams) if streams else None,
            frozenset(kinds) if kinds else None,
            frozenset(symbols) if symbols else None,
        )
        self.pacer = Pacer(
            self.speed, None if max_gap is None else int(max_gap * 1e9), keep_lateness=keep_lateness
        )
        self.clock_interval_ns = int(clock_interval_s * 1e9)
        self.closed = False
        self.frames_out = 0
        self.last_recv_ns: int | None = None
        self.started_mono: int | None = None

    @property
    def manifest(self) -> dict:
        return self.reader.manifest

    async def batches(self) -> AsyncIterator[list[Frame]]:
        self.started_mono = time.monotonic_ns()
        pacer = self.pacer
        paced = self.speed is not None
        last_seq = 0
        next_clock = None
        tables = _prefetching(self.reader.tables(self.filter))
        while True:
            table = await anext(tables)
            if table is None or self.closed:
                break
            for start in range(0, table.num_rows, CHUNK):
                frames = _frames(table, start)
                if not paced:
                    self.frames_out += len(frames)
                    self.last_recv_ns = frames[-1].recv_ns
                    pacer.emitted([])
                    yield frames
                    await asyncio.sleep(0)
                    continue
                batch: list[Frame] = []
                deadlines: list[int] = []
                for frame in frames:
                    due = pacer.due(frame.recv_ns)
                    if due > time.monotonic_ns():
                        if batch:
                            pacer.emitted(deadlines)
                            self._out(batch)
                            yield batch
                            batch, deadlines = [], []
                        next_clock = next_clock or due
                        while next_clock < due and self.clock_interval_ns:
                            await pacer.wait_until(next_clock)
                            now = pacer.recv_now()
                            if now is not None:
                                yield [Frame(last_seq, now, 0, 0, "clock", CLOCK)]
                            next_clock += self.clock_interval_ns
                        await pacer.wait_until(due)
                    batch.append(frame)
                    deadlines.append(due)
                    last_seq = frame.seq
                if batch:
                    pacer.emitted(deadlines)
                    self._out(batch)
                    yield batch
                if self.closed:
                    return

    async def raw_batches(self) -> AsyncIterator[list[bytes]]:
        """Payloads of the data frames only, undecoded, in order, at ``speed`` (or max): the
        passthrough path for serving a tape to other programs."""
        pacer = self.pacer
        tables = _prefetching(self.reader.tables(self.filter))
        while True:
            table = await anext(tables)
            if table is None or self.closed:
                return
            data = pc.is_in(table.column("kind").cast(pa.string()), _DATA_KINDS)
            table = table.filter(data)
            payloads = table.column("payload").to_pylist()
            if self.speed is None:
                self.frames_out += len(payloads)
                yield payloads
                continue
            recv = table.column("recv_ns").cast(pa.int64()).to_pylist()
            batch, deadlines = [], []
            for payload, at in zip(payloads, recv, strict=True):
                due = pacer.due(at)
                if due > time.monotonic_ns():
                    if batch:
                        pacer.emitted(deadlines)
                        self.frames_out += len(batch)
                        yield batch
                        batch, deadlines = [], []
                    await pacer.wait_until(due)
                batch.append(payload)
                deadlines.append(due)
            if batch:
                pacer.emitted(deadlines)
                self.frames_out += len(batch)
                yield batch

    def _out(self, batch: list[Frame]) -> None:
        self.frames_out += len(batch)
        self.last_recv_ns = batch[-1].recv_ns

    async def __aiter__(self) -> AsyncIterator[Frame]:
        async for batch in self.batches():
            for frame in batch:
                yield frame

    async def close(self) -> None:
        self.closed = True

    def describe(self) -> str:
        speed = "max speed" if self.speed is None else f"{self.speed:g}x"
        return f"replay of {self.reader.path} at {speed}"


async def _prefetching(tables: Iterator[pa.Table]) -> AsyncIterator[pa.Table | None]:
    """Row groups read in a worker thread, the next one while the current is replayed, so a
    paced replay never waits on Parquet decoding; ``None`` at the end."""
    pending = asyncio.ensure_future(asyncio.to_thread(next, tables, None))
    while True:
        table = await pending
        if table is None:
            yield None
            return
        pending = asyncio.ensure_future(asyncio.to_thread(next, tables, None))
        yield table


def _frames(table, start: int) -> list[Frame]:
    return table_to_frames(table.slice(start, CHUNK))
