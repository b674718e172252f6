"""A websockets client connection that stamps each message when its last frame is parsed.

A stamp taken after ``recv()`` would include time spent queued behind other messages; this one
is taken as the bytes are parsed off the socket (wall and monotonic clocks).
"""

from __future__ import annotations

import time
from collections import deque

from websockets.asyncio.client import ClientConnection
from websockets.frames import Frame as WireFrame
from websockets.frames import Opcode

DATA_OPCODES = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)


class StampedConnection(ClientConnection):
    """``arrivals`` holds ``(wall_ns, mono_ns)`` per complete message, in order."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.arrivals: deque[tuple[int, int]] = deque()

    def process_event(self, event) -> None:
        if isinstance(event, WireFrame) and event.fin and event.opcode in DATA_OPCODES:
            self.arrivals.append((time.time_ns(), time.monotonic_ns()))
        super().process_event(event)

    def stamp(self) -> tuple[int, int]:
        """The stamp of the message just received (now, if none was noted)."""
        if self.arrivals:
            return self.arrivals.popleft()
        return time.time_ns(), time.monotonic_ns()
