"""The gateway's SignalR hubs (``/hubs/market``, ``/hubs/user``): negotiate, one websocket per
client around a :class:`~rtcap.gateway.protocol.HubSession`, its write queue, keep-alive pings
and the injected faults (:mod:`rtcap.gateway.faults`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from rtcap.codecs import projectx, signalr
from rtcap.gateway.faults import MALFORMED_RECORD, FaultPlan
from rtcap.gateway.protocol import HubSession, HubState
from rtcap.gateway.rest import SIM_ACCOUNT, Contract, authorise, error_json, iso
from rtcap.gateway.sendqueue import MAX_PENDING_BYTES, SendQueue, close_slow_consumer
from rtcap.gateway.tokens import TokenIssuer

log = logging.getLogger("rtcap.gateway")

MAX_MESSAGE = 16 * 1024 * 1024
HANDSHAKE_TIMEOUT_S = 15.0


@dataclass(eq=False)
class Connection:
    """One websocket client and what is waiting to be sent to it."""

    number: int
    hub: str
    ws: web.WebSocketResponse
    session: HubSession
    # The request's own transport (public in aiohttp), for the drop fault's abort.
    transport: asyncio.BaseTransport | None = None
    opened_mono: float = field(default_factory=time.monotonic)
    pending: SendQueue[bytes] = field(default_factory=SendQueue)
    records_sent: int = 0
    market_records: int = 0
    stalled_until: float = 0.0
    closing: bool = False
    tasks: list[asyncio.Task] = field(default_factory=list)

    def push(self, record: bytes) -> bool:
        """Queue a record; False once the client has fallen too far behind (it is dropped)."""
        return self.pending.push(record, len(record))

    @property
    def stalled(self) -> bool:
        return time.monotonic() < self.stalled_until


class Hubs:
    """Every hub connection: accepts them, routes market records to them, closes them."""

    def __init__(
        self,
        contracts: dict[str, Contract],
        tokens: TokenIssuer,
        faults: FaultPlan,
        stats: dict[str, int],
        *,
        keepalive_s: float,
        max_pending_bytes: int = MAX_PENDING_BYTES,
        on_subscribe: Callable[[], None],
    ) -> None:
        self.contracts = contracts
        self.tokens = tokens
        self.faults = faults
        self.stats = stats
        self.keepalive_s = keepalive_s
        self.max_pending_bytes = max_pending_bytes
        self.on_subscribe = on_subscribe
        self.connections: set[Connection] = set()
        self.closed_connections: list[Connection] = []
        self._numbers = itertools.count(1)

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.post("/hubs/{hub}/negotiate", self._negotiate),
            web.get("/hubs/{hub}", self._hub),
        ]

    async def close_all(self) -> None:
        for conn in list(self.connections):
            await self._close(conn, code=1001, message="server shutting down")

    def deliver(self, channel: str, contract: str, record: bytes) -> None:
        every = self.faults.malformed_every
        for conn in self.connections:
            if conn.hub == "market" and conn.session.wants(channel, contract):
                if conn.stalled or conn.closing:
                    continue
                kept = conn.push(record)
                self.stats["records_routed"] += 1
                conn.market_records += 1
                if every is not None and conn.market_records % every == 0:
                    kept = conn.push(MALFORMED_RECORD) and kept
                if not kept:
                    conn.closing = True
                    asyncio.get_running_loop().create_task(self._drop_slow(conn))

    def _authorise(self, request: web.Request) -> None:
        authorise(request, self.tokens, self.stats)

    async def _negotiate(self, request: web.Request) -> web.Response:
        hub = request.match_info["hub"]
        if hub not in ("market", "user"):
            raise web.HTTPNotFound(
                text=error_json(f"no hub named {hub!r}: use /hubs/market or /hubs/user", code=404),
                content_type="application/json",
            )
        self._authorise(request)
        try:
            version = min(int(request.query.get("negotiateVersion", "0")), 1)
        except ValueError:
            version = 0
        connection_id = secrets.token_urlsafe(16)
        answer: dict[str, Any] = {
            "connectionId": connection_id,
            "negotiateVersion": version,
            "availableTransports": [
                {"transport": "WebSockets", "transferFormats": ["Text", "Binary"]}
            ],
        }
        if version >= 1:
            answer["connectionToken"] = secrets.token_urlsafe(16)
        return web.json_response(answer, dumps=lambda o: orjson.dumps(o).decode())

    async def _hub(self, request: web.Request) -> web.StreamResponse:
        hub = request.match_info["hub"]
        if hub not in ("market", "user"):
            raise web.HTTPNotFound(
                text=error_json(f"no hub named {hub!r}: use /hubs/market or /hubs/user", code=404),
                content_type="application/json",
            )
        self._authorise(request)
        ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE, compress=False, heartbeat=None)
        await ws.prepare(request)
        known = self.contracts if hub == "market" else None  # live: contracts roll
        conn = Connection(
            next(self._numbers),
            hub,
            ws,
            HubSession(hub, known),
            transport=request.transport,
            pending=SendQueue(self.max_pending_bytes),
        )
        self.connections.add(conn)
        self.stats["connections"] += 1
        conn.tasks = [
            asyncio.create_task(self._writer(conn)),
            asyncio.create_task(self._keepalive(conn)),
            asyncio.create_task(self._faults(conn)),
        ]
        try:
            await self._read(conn)
        finally:
            self.connections.discard(conn)
            self.closed_connections.append(conn)
            conn.pending.clear()
            for task in conn.tasks:
                task.cancel()
            with contextlib.suppress(Exception):
                await ws.close()
        return ws

    async def _read(self, conn: Connection) -> None:
        ws = conn.ws
        while True:
            timeout = (
                HANDSHAKE_TIMEOUT_S if conn.session.state is HubState.AWAITING_HANDSHAKE else None
            )
            try:
                message = await ws.receive(timeout=timeout)
            except TimeoutError:
                self._problem(conn, "no handshake within 15 s")
                await self._close(conn, error="Handshake was not received in time.")
                return
            if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                reply = conn.session.receive(message.data)
                for record in reply.send:
                    conn.push(record)
                if conn.session.subscriptions:
                    self.on_subscribe()
                if reply.subscribed_accounts:
                    conn.push(
                        signalr.encode(
                            signalr.invocation(
                                "GatewayUserAccount", [{"action": 1, "data": SIM_ACCOUNT}]
                            )
                        )
                    )
                if reply.problem:
                    self._problem(conn, reply.problem)
                if reply.close:
                    await self._flush(conn)
                    await ws.close()
                    return
            else:  # CLOSE, CLOSING, CLOSED, ERROR
                return

    def _problem(self, conn: Connection, reason: str) -> None:
        self.stats["problems"] += 1
        log.warning("%s hub connection %d: %s", conn.hub, conn.number, reason)

    async def _writer(self, conn: Connection) -> None:
        ws = conn.ws
        while not ws.closed:
            await conn.pending.wakeup.wait()
            conn.pending.wakeup.clear()
            await self._flush(conn)

    async def _flush(self, conn: Connection) -> None:
        while conn.pending and not conn.ws.closed:
            chunk = conn.pending.take(256 * 1024)
            conn.records_sent += len(chunk)
            try:
                await conn.ws.send_str(b"".join(chunk).decode("utf-8", "replace"))
            except (ConnectionError, RuntimeError):
                return

    async def _keepalive(self, conn: Connection) -> None:
        while not conn.ws.closed:
            await asyncio.sleep(self.keepalive_s)
            if conn.session.state is HubState.OPEN and not conn.stalled:
                conn.push(signalr.PING_RECORD)

    async def _faults(self, conn: Connection) -> None:
        plan = self.faults
        steps = sorted(
            (at, name)
            for at, name in (
                (plan.stall_after_s, "stall"),
                (plan.oversized_after_s, "oversized"),
                (plan.error_close_after_s, "error_close"),
                (plan.drop_after_s, "drop"),
            )
            if at is not None
        )
        for at, name in steps:
            delay = conn.opened_mono + at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if conn.ws.closed:
                return
            if name == "stall":
                conn.stalled_until = time.monotonic() + plan.stall_for_s
                conn.pending.clear()
                log.info(
                    "market hub connection %d: stalling %.1f s (fault)",
                    conn.number,
                    plan.stall_for_s,
                )
            elif name == "oversized":
                conn.push(self._oversized_record(conn, plan.oversized_bytes))
            elif name == "error_close":
                await self._close(conn, error="Simulated server error (fault injection)")
                return
            elif name == "drop":
                await self._drop(conn)
                return

    async def _drop_slow(self, conn: Connection) -> None:
        """A client that stopped reading: its queue is already emptied; close it with 1008,
        and abort the socket if even the close frame cannot leave."""
        log.warning(
            "%s hub connection %d: slow consumer, more than %s bytes waiting: disconnected",
            conn.hub,
            conn.number,
            f"{conn.pending.limit:,}",
        )
        await close_slow_consumer(conn.ws, conn.transport)

    async def _drop(self, conn: Connection) -> None:
        """Abort the TCP connection without a close frame, once what was sent has left: a
        dropped network, not lost writes (so the client's tape can be checked against ours)."""
        conn.closing = True
        await self._flush(conn)
        log.info("%s hub connection %d: dropping (fault)", conn.hub, conn.number)
        transport = conn.transport
        if not isinstance(transport, asyncio.WriteTransport):
            return
        for _ in range(200):
            if transport.get_write_buffer_size() == 0:
                break
            await asyncio.sleep(0.01)
        transport.abort()

    def _oversized_record(self, conn: Connection, size: int) -> bytes:
        wanted = [cid for channel, cid in conn.session.subscriptions if channel == "depth"]
        contract = wanted[0] if wanted else next(iter(self.contracts), "CON.F.US.MNQ.Z25")
        level = {
            "timestamp": iso(time.time_ns()),
            "type": 2,
            "price": 1.0,
            "volume": 1,
            "currentVolume": 1,
        }
        per_level = len(orjson.dumps(level)) + 1
        levels = [level] * (size // per_level + 1)
        return projectx.encode_depth(contract, levels)

    async def _close(
        self, conn: Connection, *, error: str | None = None, code: int = 1000, message: str = ""
    ) -> None:
        conn.closing = True
        if not conn.ws.closed:
            conn.push(signalr.close(error, True if error else None))
            await self._flush(conn)
            with contextlib.suppress(Exception):
                await conn.ws.close(code=code, message=message.encode())
