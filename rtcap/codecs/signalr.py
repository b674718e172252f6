"""SignalR JSON hub protocol framing, as a sans-I/O parser and encoder.

Records are JSON objects terminated by the record separator ``0x1E``; one websocket frame may hold
several. Parsing never raises: a record that is not valid JSON or not a message object comes back
as a :class:`BadRecord` so callers can count it and go on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

RS = b"\x1e"
RS_TEXT = "\x1e"

INVOCATION = 1
STREAM_ITEM = 2
COMPLETION = 3
STREAM_INVOCATION = 4
CANCEL_INVOCATION = 5
PING = 6
CLOSE = 7

HANDSHAKE_REQUEST = b'{"protocol":"json","version":1}' + RS
HANDSHAKE_RESPONSE = b"{}" + RS
PING_RECORD = b'{"type":6}' + RS


@dataclass(slots=True)
class BadRecord:
    """A record that could not be understood; ``raw`` is kept for the error report."""

    raw: bytes
    reason: str


def split_records(payload: bytes | str) -> list[bytes]:
    """Split a frame into records, dropping empty pieces (and a trailing partial separator)."""
    if isinstance(payload, str):
        payload = payload.encode()
    return [piece for piece in payload.split(RS) if piece.strip()]


def parse_record(record: bytes) -> dict[str, Any] | BadRecord:
    """Decode one record to a dict; anything else becomes a :class:`BadRecord`."""
    try:
        message = orjson.loads(record)
    except orjson.JSONDecodeError as exc:
        return BadRecord(record, f"invalid JSON: {exc}")
    if type(message) is not dict:
        return BadRecord(record, "record is not a JSON object")
    return message


def parse_frame(payload: bytes | str) -> list[dict[str, Any] | BadRecord]:
    """All records of one websocket frame, in order."""
    return [parse_record(record) for record in split_records(payload)]


def is_handshake_response(message: dict[str, Any]) -> bool:
    """``{}`` (success) or ``{"error": …}`` without a ``type`` field."""
    return "type" not in message and (not message or set(message) == {"error"})


def encode(message: dict[str, Any]) -> bytes:
    """One record: compact JSON plus the separator."""
    return orjson.dumps(message) + RS


def invocation(
    target: str, arguments: list[Any], invocation_id: str | None = None
) -> dict[str, Any]:
    """An Invocation message (type 1); without an id the peer must not answer."""
    message: dict[str, Any] = {"type": INVOCATION, "target": target, "arguments": arguments}
    if invocation_id is not None:
        message["invocationId"] = invocation_id
    return message


def completion(invocation_id: str, *, result: Any = None, error: str | None = None) -> bytes:
    """A Completion record answering ``invocation_id`` (with an error, or a result, or neither)."""
    message: dict[str, Any] = {"type": COMPLETION, "invocationId": invocation_id}
    if error is not None:
        message["error"] = error
    elif result is not None:
        message["result"] = result
    return encode(message)


def close(error: str | None = None, allow_reconnect: bool | None = None) -> bytes:
    """A Close record (type 7)."""
    message: dict[str, Any] = {"type": CLOSE}
    if error is not None:
        message["error"] = error
    if allow_reconnect is not None:
        message["allowReconnect"] = allow_reconnect
    return encode(message)
