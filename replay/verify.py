"""``verify``: replay a capture at max speed and paced, and compare the bar and event streams
with each other and with the bars the recorder built live."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rtcap.bars import bar_line
from rtcap.events import Event, EventType
from rtcap.pipeline import Pipeline
from rtcap.replay.run import run
from rtcap.replay.source import Replay
from rtcap.storage.integrity import live_bars


@dataclass
class StreamDigest:
    """Bars and events of one replay, with their hashes."""

    bars: list[bytes] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    book_events: int = 0
    _book: Any = field(default_factory=hashlib.sha256, repr=False)

    @property
    def bar_hash(self) -> str:
        return hashlib.sha256(b"".join(self.bars)).hexdigest()

    @property
    def event_hash(self) -> str:
        return hashlib.sha256("\n".join(self.events).encode()).hexdigest()

    @property
    def book_hash(self) -> str:
        """sha256 of the ``ORDERBOOK_UPDATE`` events alone (also part of ``event_hash``)."""
        return self._book.hexdigest()


def event_signature(event: Event) -> str:
    return f"{event.type.value}|{event.instrument}|{event.timestamp}|{event.data!r}"


async def replay_digest(
    capture: str | Path,
    speed: str | None,
    timeframes: list[str],
    seqs: tuple[int, int | None] | None = None,
) -> StreamDigest:
    """Every event of a replay through the kernel pipeline (all instruments, order books
    included); ``seqs`` limits it to one recording session, which a recorder's live pipeline
    saw from its start."""
    digest = StreamDigest()

    def note(events: list[Event]) -> None:
        for event in events:
            signature = event_signature(event)
            digest.events.append(signature)
            if event.type is EventType.BAR_CLOSED:
                digest.bars.append(bar_line(event.instrument, event.data["bar"]))
            elif event.type is EventType.ORDERBOOK_UPDATE:
                digest.book_events += 1
                digest._book.update(signature.encode() + b"\n")

    source = Replay(capture, speed, seqs=seqs)
    pipeline = Pipeline(None, timeframes, books=True, contracts=source.contract_names)
    await run(source, pipeline, note)
    return digest


def live_bar_lines(capture: str | Path, session: dict | None = None) -> list[bytes] | None:
    """The bars the recorder closed live (in one session, or all), as canonical lines
    (``None`` if it built none)."""
    bars = live_bars(capture, session)
    if bars is None:
        return None
    return [bar_line(instrument, bar) for instrument, bar, _ in bars]


def first_difference(left: list, right: list) -> tuple[int, object, object] | None:
    for index, (a, b) in enumerate(zip(left, right, strict=False)):
        if a != b:
            return index, a, b
    if len(left) != len(right):
        index = min(len(left), len(right))
        return (
            index,
            left[index] if index < len(left) else None,
            right[index] if index < len(right) else None,
        )
    return None
