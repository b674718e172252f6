"""``Live``: a live feed as a TradingSuite frame source, optionally recording the same session.

The suite gets exactly the rows the recorder numbers and journals (so replaying the capture
later reproduces what the suite saw), plus ``clock`` frames every ``clock_interval_s`` that let
bars close on time in quiet markets (they are not recorded: the pipeline closes the same bars
from the next frame's time on replay).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from rtcap.capture.recorder import Recorder
from rtcap.lifecycle import ClockRow
from rtcap.models import Bar, Frame
from rtcap.storage.writer import CaptureWriter


class Live:
    """Frames from live feeds (``ProjectXMarketFeed``, ``BinanceFeed`` …)."""

    # Its frames carry the connections' own open/close rows: a suite over it is connected
    # once they say so, not when it starts reading.
    connects = True

    def __init__(
        self,
        feeds: Sequence[Any],
        *,
        record_to: str | Path | None = None,
        source_info: dict[str, Any] | None = None,
        bar_timeframes: list[str] | None = None,
        clock_interval_s: float = 0.25,
        on_close: Callable[[], Awaitable[None]] | None = None,
        **recorder_options: Any,
    ) -> None:
        self.feeds = list(feeds)
        self.record_to = Path(record_to) if record_to is not None else None
        self.writer = (
            CaptureWriter(self.record_to, source=source_info or {"kind": "live"})
            if self.record_to is not None
            else None
        )
        self.recorder = Recorder(
            self.feeds, writer=self.writer, bar_timeframes=bar_timeframes, **recorder_options
        )
        self._queue = self.recorder.subscribe()  # before anything runs: no row can be missed
        self.clock_interval_s = clock_interval_s
        self._on_close = on_close
        self._task: asyncio.Task | None = None
        self._prepared = False
        self._last_seq = 0

    async def prepare(self) -> None:
        """Log in and resolve contracts (once), without opening a websocket yet."""
        if not self._prepared:
            if self.writer is not None:
                await asyncio.to_thread(self.writer.open)
            await self.recorder.prepare()
            self._prepared = True

    async def start(self) -> None:
        if self._task is None:
            await self.prepare()
            self._task = asyncio.create_task(self.recorder.run())

    async def batches(self) -> AsyncIterator[list[Frame]]:
        queue = self._queue
        await self.start()
        ticker = asyncio.create_task(self._clock(queue))
        try:
            while True:
                batch = [await queue.get()]
                while not queue.empty():
                    batch.append(queue.get_nowait())
                ended = batch[-1] is None
                frames = [f for f in batch if f is not None]
                if frames:
                    self._last_seq = frames[-1].seq
                    yield frames
                if ended:
                    return
        finally:
            ticker.cancel()

    async def __aiter__(self) -> AsyncIterator[Frame]:
        async for batch in self.batches():
            for frame in batch:
                yield frame

    async def _clock(self, queue: asyncio.Queue) -> None:
        while True:
            await asyncio.sleep(self.clock_interval_s)
            tick = ClockRow().to_frame(self.recorder.clock_ns(), time.monotonic_ns(), 0, "clock")
            tick.seq = self._last_seq
            queue.put_nowait(tick)

    async def history(self, symbol: str, timeframe: str, days: float) -> list[Bar]:
        """The gateway's bars for the last ``days``, the forming one last, asked before the
        websocket opens (as the SDK does), so no live print is counted in both."""
        await self.prepare()
        for feed in self.feeds:
            fetch = getattr(feed, "history", None)
            if fetch is not None and symbol.upper() in getattr(feed, "contracts", {}):
                return await fetch(symbol, timeframe, days)
        return []

    async def close(self) -> None:
        self.recorder.stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        if self._on_close is not None:
            await self._on_close()

    def clock_ns(self) -> int:
        """The receive clock frames are stamped with: bars ending after it are still forming."""
        return self.recorder.clock_ns()

    def describe(self) -> str:
        target = f", recording to {self.record_to}" if self.record_to else ""
        return f"live {', '.join(f.stream for f in self.feeds)}{target}"
