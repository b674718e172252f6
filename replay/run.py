"""The one run loop: frames of a source → the kernel pipeline → (book sampler) → handlers.

Every consumer of a frame stream runs it: ``rtcap replay``, ``verify``, ``export``, ``plot``
and ``TradingSuite``, live or from a capture. A source is anything with ``async batches()``
(lists of frames, in order) or an async iterator of frames. Handlers run at each frame's
events, after that frame and before the next, so what they read of the pipeline is exactly its
state after the frame that caused them (``Pipeline.feed_batch``).

With a :class:`~rtcap.booksnap.BookSampler`, frames are fed one at a time so the snapshots due
before each frame are taken before it (they may fall due before any frame of a batch).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

from rtcap.booksnap import BookSampler, BookSnapshot
from rtcap.models import Frame
from rtcap.pipeline import Pipeline

# What a handler of events or snapshots may return: nothing, or something to await.
Handler = Callable[[list[Any]], Any]


async def run(
    source: Any,
    pipeline: Pipeline,
    on_events: Handler | None = None,
    *,
    sampler: BookSampler | None = None,
    on_snapshots: Callable[[list[BookSnapshot]], Any] | None = None,
    after_batch: Callable[[], None] | None = None,
    close_at_end: bool = False,
) -> None:
    """Feed every frame of ``source`` to ``pipeline`` in order, handing each frame's events
    (when there are any) to ``on_events`` and due book snapshots to ``on_snapshots``.

    ``after_batch`` runs after each batch (progress displays); ``close_at_end`` closes the
    bars that ended by the last frame's time once the source is exhausted."""
    async for batch in batches_of(source):
        if sampler is None:
            for events in pipeline.feed_batch(batch):
                await _call(on_events, events)
        else:
            for frame in batch:
                snapshots = sampler.before(frame)
                if snapshots:
                    await _call(on_snapshots, snapshots)
                events = pipeline.feed(frame)
                if events:
                    await _call(on_events, events)
        if after_batch is not None:
            after_batch()
    if close_at_end and pipeline.now_ns is not None:
        events = pipeline.advance_to(pipeline.now_ns)
        if events:
            await _call(on_events, events)
    if sampler is not None:
        snapshots = sampler.finish()
        if snapshots:
            await _call(on_snapshots, snapshots)


async def _call(handler: Callable[[Any], Any] | None, items: list[Any]) -> None:
    if handler is not None:
        result = handler(items)
        if inspect.isawaitable(result):
            await result


async def batches_of(source: Any) -> AsyncIterator[list[Frame]]:
    """The frames of ``source`` in lists: its own batches, or one list per frame."""
    batches = getattr(source, "batches", None)
    if batches is not None:
        async for batch in batches():
            yield batch
    else:
        async for frame in source:
            yield [frame]
