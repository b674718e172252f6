"""Frame sources: anything that yields :class:`Frame` objects asynchronously, in ``seq`` order.

The suite consumes a source with ``async for``, or, when the source has it, with
``async for batch in source.batches()`` (lists of frames: one await per batch instead of one per
frame; events are still delivered frame by frame). Sources may also offer
``async history(symbol, timeframe, days)`` (bars to warm indicators up), ``async close()`` and
``describe()``. Live and replay sources live in the shells; this module holds the in-memory one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Protocol, runtime_checkable

from rtcap.models import Bar, Frame


@runtime_checkable
class FrameSource(Protocol):
    """What ``TradingSuite.create(source=...)`` accepts."""

    def __aiter__(self) -> AsyncIterator[Frame]: ...


class ListSource:
    """Frames from memory, handed over in order. ``yield_every`` lets other tasks run every N
    frames, the way a socket would; ``history`` maps ``(symbol, timeframe)`` to warm-up bars."""

    def __init__(
        self,
        frames: Iterable[Frame],
        *,
        yield_every: int = 1000,
        history: dict[tuple[str, str], list[Bar]] | None = None,
    ) -> None:
        self._frames = list(frames)
        self._yield_every = max(1, yield_every)
        self._history = history or {}
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[Frame]:
        async for batch in self.batches():
            for frame in batch:
                yield frame

    async def batches(self) -> AsyncIterator[list[Frame]]:
        """Frames in lists of ``yield_every``, letting other tasks run between lists."""
        step = self._yield_every
        for start in range(0, len(self._frames), step):
            await asyncio.sleep(0)
            if self.closed:
                return
            yield self._frames[start : start + step]

    async def history(self, symbol: str, timeframe: str, days: float) -> list[Bar]:
        return list(self._history.get((symbol.upper(), timeframe), ()))

    async def close(self) -> None:
        self.closed = True

    def describe(self) -> str:
        return f"{len(self._frames)} frames in memory"
