"""One live websocket feed: connect, subscribe, read, detect stalls, reconnect, resubscribe.

Every inbound message becomes a ``text``/``binary`` row, byte for byte, with its arrival stamp;
everything sent becomes a ``sent`` row; and the connection's life is written down as rows too:
``open``, ``close`` (code, reason), ``error`` (reconnect attempts, stalls, failures) and a ``gap``
row spanning each interval without a connection. Rows go to ``sink`` in order; the recorder
gives them their ``seq``.

Silence is written down too: when a connected stream receives nothing (data or ping) for
longer than its own recent rhythm allows (:mod:`rtcap.capture.rhythm`: four times the longest
of its last 512 gaps, at least half a second, at most ``silence_after_s``), a ``gap`` row of
kind ``silence`` spans the quiet interval, from the last message before it to the first after
it (or to the moment the stall was detected and the connection dropped). A dropped connection's
``gap`` row likewise starts at the last message received, not when the drop was noticed. So a
capture never looks complete across a stall, however short.

Credentials refused after the feed has worked (a gateway restart invalidates tokens) mean
"log in again": the session keeps retrying with backoff until it is stopped. Refusal before
the first connection is final: the credentials are wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI
from websockets.frames import CloseCode

from rtcap.capture.connection import StampedConnection
from rtcap.capture.redact import redact_json, redact_text, redact_url
from rtcap.capture.rhythm import FLOOR_S, Rhythm
from rtcap.codecs import frame_hints
from rtcap.lifecycle import (
    Closed,
    ConnectionGap,
    LifecycleRow,
    Opened,
    SilenceGap,
    error_row,
)
from rtcap.models import Frame

log = logging.getLogger("rtcap.capture")
MAX_MESSAGE = 16 * 1024 * 1024
SILENCE_AFTER_S = 5.0


class FatalFeedError(Exception):
    """A failure that retrying cannot fix (bad credentials, bad URL); the message says why."""


@dataclass(frozen=True)
class Backoff:
    """Jittered exponential backoff: ``initial_s·factor^attempt`` capped at ``max_s``, times a
    random factor in ``[1 - jitter/2, 1 + jitter/2]``."""

    initial_s: float = 0.5
    factor: float = 2.0
    max_s: float = 30.0
    jitter: float = 0.5

    def delay(self, attempt: int, rng: random.Random) -> float:
        base = min(self.max_s, self.initial_s * self.factor ** max(0, attempt))
        return base * (1 - self.jitter / 2 + rng.random() * self.jitter)


class Feed(Protocol):
    """What a session needs to know about one kind of feed."""

    stream: str
    carries_sequence_ids: bool  # whether a pipeline can find exchange sequence gaps in it

    async def connect_url(self) -> str:
        """The URL to connect to now (may log in or refresh a token first)."""
        ...

    async def after_connect(self, send: Callable[[bytes | str], Any], ws) -> None:
        """Handshake and subscriptions on a fresh connection."""
        ...

    def keepalive(self) -> tuple[float, bytes] | None:
        """(interval, message) to send while connected, if the protocol wants one."""
        ...

    def on_auth_failure(self) -> None:
        """The server refused our credentials (401): forget the token."""
        ...


class Session:
    """Runs one :class:`Feed` until ``stop`` is set, reconnecting as needed."""

    def __init__(
        self,
        feed: Feed,
        sink: Callable[[Frame], Any],
        *,
        backoff: Backoff | None = None,
        stale_after_s: float | None = 30.0,
        open_timeout_s: float = 10.0,
        max_attempts: int | None = None,
        first_connect_attempts: int = 3,
        seed: int | None = None,
        silence_after_s: float | None = SILENCE_AFTER_S,
    ) -> None:
        self.feed = feed
        self.sink = sink
        self.backoff = backoff or Backoff()
        self.stale_after_s = stale_after_s
        self.open_timeout_s = open_timeout_s
        self.max_attempts = max_attempts
        self.first_connect_attempts = first_connect_attempts
        floor = getattr(feed, "min_silence_s", None)
        upper = None if silence_after_s is None else max(silence_after_s, floor or 0.0)
        self.rhythm = (
            None
            if upper is None
            else Rhythm(int(upper * 1e9), int((floor if floor is not None else FLOOR_S) * 1e9))
        )
        self.silences = 0
        self._last_message_ns = 0
        self.ever_connected = False
        self.conn = 0
        self.state = "starting"
        self.reconnects = 0
        self.last_gap_s: float | None = None
        self._rng = random.Random(seed)
        self._disconnected_at: int | None = None
        self._ws: StampedConnection | None = None
        self.snapshots = getattr(feed, "snapshots", None)
        if self.snapshots is not None:
            self.snapshots.attach(self._snapshot_row, self._snapshot_failed)

    @property
    def last_message_ns(self) -> int:
        """When the last message arrived (0 before the first connection)."""
        return self._last_message_ns

    def oldest_unrecorded_ns(self) -> int | None:
        """Arrival stamp of a message parsed off the socket but not recorded yet, if any."""
        ws = self._ws
        return ws.arrivals[0][0] if ws is not None and ws.arrivals else None

    # --- rows ----------------------------------------------------------------------------

    def _row(self, kind: str, payload: bytes, wall: int | None = None, mono: int | None = None):
        wall = time.time_ns() if wall is None else wall
        mono = time.monotonic_ns() if mono is None else mono
        self.sink(Frame(0, wall, mono, self.conn, self.feed.stream, kind, payload))

    def _write(self, row: LifecycleRow, wall: int | None = None, mono: int | None = None) -> None:
        wall = time.time_ns() if wall is None else wall
        mono = time.monotonic_ns() if mono is None else mono
        self.sink(row.to_frame(wall, mono, self.conn, self.feed.stream))

    def _snapshot_row(self, body: bytes, symbol: str) -> None:
        """A REST snapshot the feed fetched, recorded byte for byte beside the stream."""
        wall, mono = time.time_ns(), time.monotonic_ns()
        self._last_message_ns = max(self._last_message_ns, wall)
        row = Frame(0, wall, mono, self.conn, self.feed.stream, "text", body, "depthSnapshot")
        row.symbol = symbol
        self.sink(row)

    def _snapshot_failed(self, **detail: Any) -> None:
        self._write(error_row(**detail))

    async def _send(self, message: bytes | str) -> None:
        await self._ws.send(message)
        self._row("sent", redact_json(message.encode() if isinstance(message, str) else message))

    async def send_now(self, messages: list[bytes]) -> bool:
        """Send ``messages`` on the open connection (recorded as ``sent`` rows); ``False`` when
        there is none or it closed meanwhile (the next connect subscribes afresh anyway)."""
        if self._ws is None:
            return False
        try:
            for message in messages:
                await self._send(message)
        except (ConnectionClosed, OSError):
            return False
        return True

    # --- main loop -----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        attempt = 0
        url = failure = None
        while not stop.is_set():
            try:
                try:
                    url = await self.feed.connect_url()
                except FatalFeedError as exc:
                    if not self.ever_connected:
                        raise
                    # It worked before: the gateway is restarting or refusing for now.
                    raise _Retry(str(exc)) from None
                self.state = "connecting"
                ws = await asyncio.wait_for(
                    websockets.connect(
                        url,
                        max_size=MAX_MESSAGE,
                        compression=None,
                        create_connection=StampedConnection,
                        open_timeout=None,
                        ping_interval=20,
                        ping_timeout=20,
                        close_timeout=2,
                        user_agent_header="rtcap",
                    ),
                    self.open_timeout_s,
                )
            except _Retry as exc:
                failure = str(exc)
                self._write(error_row("connect_failed", failure))
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status in (401, 403):
                    self.feed.on_auth_failure()  # log in again before the next attempt
                    if attempt >= 1 and not self.ever_connected:
                        raise FatalFeedError(
                            f"{self.feed.stream}: the server refused the credentials "
                            f"(HTTP {status}) twice: check the API key and user name"
                        ) from None
                failure = f"HTTP {status}"
                self._write(error_row("connect_failed", failure))
            except InvalidURI as exc:
                raise FatalFeedError(f"invalid websocket URL: {exc}") from None
            except FatalFeedError:
                raise
            except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                failure = _describe(exc)
                self._write(error_row("connect_failed", failure))
            else:
                attempt = 0
                await self._connected(ws, url, stop)
                continue
            attempt += 1
            if not self.ever_connected and attempt >= self.first_connect_attempts:
                where = redact_url(url) if url else self.feed.stream
                raise FatalFeedError(
                    f"cannot connect to {where} ({failure}): check the URL and the network"
                )
            if self.max_attempts is not None and attempt >= self.max_attempts:
                raise FatalFeedError(
                    f"{self.feed.stream}: could not connect after {attempt} attempts ({failure})"
                )
            delay = self.backoff.delay(attempt - 1, self._rng)
            self.state = f"reconnecting in {delay:.1f}s"
            self._write(error_row("reconnecting", attempt=attempt, delay_s=round(delay, 3)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
        if self.snapshots is not None:
            await self.snapshots.cancel()
        self._close_gap(final=True)
        self.state = "stopped"

    async def _connected(self, ws: StampedConnection, url: str, stop: asyncio.Event) -> None:
        self._ws = ws
        self.ever_connected = True
        self.conn += 1
        self._close_gap(final=False)
        self._write(Opened(redact_url(url), MAX_MESSAGE))
        self._last_message_ns = time.time_ns()
        if self.rhythm is not None:
            self.rhythm.restart()
        self.state = "connected"
        keepalive = None
        reason = "server"
        try:
            await self.feed.after_connect(self._send, ws)
            if (spec := self.feed.keepalive()) is not None:
                keepalive = asyncio.create_task(self._keepalive(*spec))
            reason = await self._read(ws, stop)
        except ConnectionClosed as exc:
            reason = "server"
            if exc.sent is not None and exc.sent.code == CloseCode.MESSAGE_TOO_BIG:
                reason = "message_too_big"
                self._write(
                    error_row(
                        "message_too_big",
                        f"a message was larger than the {MAX_MESSAGE // (1 << 20)} MiB limit; "
                        "it was not recorded and the connection was closed",
                        limit_bytes=MAX_MESSAGE,
                    )
                )
        except FatalFeedError:
            raise
        except (OSError, websockets.WebSocketException) as exc:
            reason = f"error: {_describe(exc)}"
        finally:
            if keepalive is not None:
                keepalive.cancel()
            if reason not in ("server", "message_too_big"):
                with contextlib.suppress(Exception):
                    await ws.close()
            if reason != "client":  # our own shutdown is not a gap in the feed
                # from the last message received: what the drop cost starts there
                self._disconnected_at = self._last_message_ns or time.time_ns()
            code = ws.close_code if ws.close_code is not None else 1006
            if reason == "message_too_big":
                code = CloseCode.MESSAGE_TOO_BIG  # we closed it: the limit was exceeded
            self._write(Closed(code, ws.close_reason or "", reason))
            self._ws = None
            self.state = "disconnected"
            if not stop.is_set():
                self.reconnects += 1

    async def _read(self, ws: StampedConnection, stop: asyncio.Event) -> str:
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while True:
                receive = asyncio.ensure_future(ws.recv())
                done, _ = await asyncio.wait(
                    {receive, stopping},
                    timeout=self.stale_after_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if receive not in done:
                    receive.cancel()
                    with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                        await receive
                    if stopping in done:
                        await self._close_and_drain(ws)
                        return "client"
                    self._write(error_row("stale", silent_s=self.stale_after_s))
                    self._note_silence(time.time_ns(), force=True)
                    return "stale"
                self._record(ws, receive.result())
        finally:
            stopping.cancel()

    def _note_silence(self, until_ns: int, mono_ns: int | None = None, *, force=False) -> bool:
        """A ``silence`` gap row (stamped like the message that ended it) if nothing arrived for
        longer than the stream's rhythm allows (:mod:`rtcap.capture.rhythm`); whether it was."""
        quiet = until_ns - self._last_message_ns
        silent = bool(self._last_message_ns) and self.rhythm is not None
        silent = silent and (force or self.rhythm.is_silence(quiet))
        if silent:
            self.silences += 1
            gap = SilenceGap(self._last_message_ns, until_ns, round(quiet / 1e9, 6))
            self._write(gap, until_ns, mono_ns)
        self._last_message_ns = until_ns
        return silent

    def _record(self, ws: StampedConnection, message: str | bytes) -> None:
        wall, mono = ws.stamp()
        silent = self._note_silence(wall, mono)
        if self.rhythm is not None:
            self.rhythm.arrived(wall, after_silence=silent)
        if isinstance(message, str):
            payload = message.encode()
            target, symbol, exch = frame_hints(payload)
            self.sink(
                Frame(
                    0,
                    wall,
                    mono,
                    self.conn,
                    self.feed.stream,
                    "text",
                    payload,
                    target,
                    symbol,
                    exch,
                )
            )
        else:
            self._row("binary", message, wall, mono)

    async def _close_and_drain(self, ws: StampedConnection) -> None:
        """Close from our side but keep what the server sent before it saw our close frame."""
        closing = asyncio.create_task(ws.close())
        with contextlib.suppress(ConnectionClosed, TimeoutError):
            while True:
                self._record(ws, await asyncio.wait_for(ws.recv(), 5))
        with contextlib.suppress(Exception):
            await closing

    async def _keepalive(self, interval: float, message: bytes) -> None:
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(ConnectionClosed):
                await self._send(message)

    def _close_gap(self, *, final: bool) -> None:
        if self._disconnected_at is None:
            return
        now = time.time_ns()
        self.last_gap_s = (now - self._disconnected_at) / 1e9
        self._write(
            ConnectionGap(self._disconnected_at, now, round(self.last_gap_s, 6), final), now
        )
        self._disconnected_at = None


class _Retry(Exception):
    """A connect failure worth retrying (credentials refused by a feed that worked before)."""


def _describe(exc: BaseException) -> str:
    return redact_text(str(exc) or type(exc).__name__)
