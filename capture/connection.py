"""A websockets client connection that stamps each message when its last frame is parsed.

A stamp taken after ``recv()`` would include time spent queued behind other messages; this one
is taken as the bytes are parsed off the socket (wall and monotonic clocks), by wrapping the
documented ``events_received()`` of the connection's sans-I/O protocol (websockets calls it once
per chunk of bytes read, and hands on every frame it returns).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.client import ClientProtocol
from websockets.frames import Frame as WireFrame
from websockets.frames import Opcode
from websockets.protocol import Event

DATA_OPCODES = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)


class StampedConnection(ClientConnection):
    """``arrivals`` holds ``(wall_ns, mono_ns)`` per complete message, in order."""

    def __init__(self, protocol: ClientProtocol, *args: Any, **kwargs: Any) -> None:
        super().__init__(protocol, *args, **kwargs)
        self.arrivals: deque[tuple[int, int]] = deque()
        parsed = protocol.events_received

        def stamped() -> list[Event]:
            events = parsed()
            now = None
            for event in events:
                if isinstance(event, WireFrame) and event.fin and event.opcode in DATA_OPCODES:
                    now = now or (time.time_ns(), time.monotonic_ns())
                    self.arrivals.append(now)
            return events

        protocol.events_received = stamped  # type: ignore[method-assign]

    def stamp(self) -> tuple[int, int]:
        """The stamp of the message just received (now, if none was noted)."""
        if self.arrivals:
            return self.arrivals.popleft()
        return time.time_ns(), time.monotonic_ns()
