"""Top-N order-book snapshots at a fixed cadence, for ``replay --book`` and ``export --book``.

A snapshot stamped ``T`` (a multiple of ``every``, in receive time) is the book after every frame
received before ``T``. The sampler is told each frame's receive time before the frame is fed;
when a frame is the first at or after the next boundary, it snapshots every book at the latest
boundary not after that frame. Intervals in which nothing arrived repeat nothing (the book could
not have changed). Clock advances are ignored, so the snapshots are the same at every replay
speed and however the capture is cut into segments.

Their table form (the portable schema of exports) lives in :mod:`rtcap.analysis.booktable`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rtcap.models import CLOCK, Frame
from rtcap.pipeline import Pipeline


@dataclass(slots=True)
class BookSnapshot:
    """The best ``levels`` of one instrument's book at ``ns``."""

    ns: int
    instrument: str
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]
    valid: bool
    crossed: bool

    def rows(self) -> list[tuple[Any, ...]]:
        """One row per level, in ``BOOK_SCHEMA`` order (:mod:`rtcap.analysis.booktable`); a side
        shorter than the other is null."""
        depth = max(len(self.bids), len(self.asks))
        rows = []
        for index in range(depth):
            bid = self.bids[index] if index < len(self.bids) else (None, None)
            ask = self.asks[index] if index < len(self.asks) else (None, None)
            rows.append(
                (self.ns, self.ns // 1000, self.instrument, index + 1, *bid, *ask, self.valid)
            )
        return rows


class BookSampler:
    """Snapshots of every book a pipeline keeps, every ``every_ns`` of receive time."""

    def __init__(self, pipeline: Pipeline, levels: int, every_ns: int) -> None:
        if not (pipeline.books and pipeline.book_levels):
            raise ValueError("the pipeline keeps no books: create it with books=True")
        if levels < 1 or every_ns < 1:
            raise ValueError("levels and the interval must be positive")
        self.pipeline = pipeline
        self.levels = levels
        self.every_ns = every_ns
        self._next: int | None = None

    def before(self, frame: Frame) -> list[BookSnapshot]:
        """Call with each frame before feeding it (clock frames are passed over)."""
        if frame.kind == CLOCK:
            return []
        recv_ns, every = frame.recv_ns, self.every_ns
        if self._next is None:
            self._next = (recv_ns // every + 1) * every
            return []
        if recv_ns < self._next:
            return []
        boundary = recv_ns // every * every
        self._next = boundary + every
        return self._snapshots(boundary)

    def finish(self) -> list[BookSnapshot]:
        """The snapshot at the boundary after the last frame (it covers the tail)."""
        if self._next is None:
            return []
        snapshots = self._snapshots(self._next)
        self._next = None
        return snapshots

    def _snapshots(self, ns: int) -> list[BookSnapshot]:
        out = []
        for symbol in sorted(self.pipeline.instruments):
            state = self.pipeline.instruments[symbol]
            if state.book is None:
                continue
            levels = state.book.book
            bids, asks = levels.top(self.levels)
            out.append(BookSnapshot(ns, symbol, bids, asks, state.book.valid, levels.crossed))
        return out
