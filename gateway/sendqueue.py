"""One client's send queue: what waits to be written to its websocket, bounded in bytes.

A client that stops reading must not grow the server without limit (at 10,000 messages a second
an unbounded queue grows by megabytes a second and is kept after the client leaves). Every
websocket the gateway serves, hub or raw, queues through this, and a client that falls more than
``limit`` bytes behind is dropped: the queue empties and says so, and the caller closes the
connection with a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any, Generic, TypeVar

MAX_PENDING_BYTES = 32 * 1024 * 1024
SLOW_CONSUMER_CLOSE_CODE = 1008  # policy violation: the client did not keep up
T = TypeVar("T")


class SendQueue(Generic[T]):
    """Messages waiting for one client, oldest first, with their total size."""

    def __init__(self, limit: int = MAX_PENDING_BYTES) -> None:
        self.limit = limit
        self.wakeup = asyncio.Event()
        self.overflowed = False
        self._items: deque[tuple[T, int]] = deque()
        self._bytes = 0

    def push(self, item: T, size: int) -> bool:
        """Queue ``item`` of ``size`` bytes; False (and the queue emptied) once the client is
        too far behind."""
        if self.overflowed:
            return False
        self._items.append((item, size))
        self._bytes += size
        self.wakeup.set()
        if self._bytes > self.limit:
            self.overflowed = True
            self.clear()
            return False
        return True

    def take(self, max_bytes: int) -> list[T]:
        """The oldest messages, at least one, up to about ``max_bytes`` together."""
        out: list[T] = []
        size = 0
        while self._items and (not out or size < max_bytes):
            item, item_size = self._items.popleft()
            out.append(item)
            size += item_size
        self._bytes -= size
        return out

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)


async def close_slow_consumer(ws: Any, transport: asyncio.BaseTransport | None) -> None:
    """Close a client that fell behind with 1008, aborting the socket if even the close frame
    cannot leave within two seconds (a client that reads nothing never answers it)."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(
            ws.close(code=SLOW_CONSUMER_CLOSE_CODE, message=b"slow consumer"), 2.0
        )
    if transport is not None and not transport.is_closing():
        transport.abort()
