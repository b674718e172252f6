"""A ProjectX-compatible gateway on loopback: REST under ``/api`` and SignalR hubs, one port.

It serves any frame source — the simulated market paced in real time, or a capture — to any
number of clients, each getting only the contracts and channels it subscribed to. Bars for
``/History/retrieveBars`` come from the kernel's own bar builder fed with the frames served
(plus, for the simulated market, seeded history before its start). Faults can be injected into
every connection (:mod:`rtcap.replay.faults`).

Tokens travel in ``?access_token=`` query strings, so the access log is off: nothing here ever
writes a token or API key to a log.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import WSMsgType, web
from rtcap.replay.faults import MALFORMED_RECORD, FaultPlan
from rtcap.replay.history import SyntheticHistory, calendar_bars
from rtcap.replay.hub import HubSession, HubState
from rtcap.replay.tokens import TokenIssuer

from rtcap.bars import resample
from rtcap.codecs import projectx, signalr
from rtcap.instruments import CME_FUTURES, InstrumentSpec, default_session
from rtcap.models import Bar, Frame
from rtcap.pipeline import Pipeline
from rtcap.timeframes import Grid
from rtcap.timeutil import NS, ns_to_datetime, parse_iso_ns

log = logging.getLogger("rtcap.gateway")

MAX_MESSAGE = 16 * 1024 * 1024
MAX_BARS_PER_RESPONSE = 20_000
HISTORY_UNITS = {1: "sec", 2: "min", 3: "hr", 4: "day", 5: "week", 6: "month"}
HANDSHAKE_TIMEOUT_S = 15.0
SIM_ACCOUNT = {
    "id": 1,
    "name": "RTCAP-SIM-1",
    "balance": 50_000.0,
    "canTrade": True,
    "isVisible": True,
    "simulated": True,
}


@dataclass
class Contract:
    """A contract the gateway serves."""

    id: str
    spec: InstrumentSpec | None
    symbol: str

    def as_json(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "id": self.id,
            "name": self.id.split(".")[-2] + self.id.split(".")[-1] if spec else self.id,
            "description": spec.description if spec else self.symbol,
            "tickSize": spec.tick_size if spec else 0.01,
            "tickValue": spec.tick_value if spec else 0.01,
            "activeContract": True,
            "symbolId": spec.symbol_id if spec else self.symbol,
        }


@dataclass(eq=False)
class Connection:
    """One websocket client and what is waiting to be sent to it."""

    number: int
    hub: str
    ws: web.WebSocketResponse
    session: HubSession
    opened_mono: float = field(default_factory=time.monotonic)
    pending: deque[bytes] = field(default_factory=deque)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    records_sent: int = 0
    market_records: int = 0
    stalled_until: float = 0.0
    closing: bool = False
    tasks: list[asyncio.Task] = field(default_factory=list)

    def push(self, record: bytes) -> None:
        self.pending.append(record)
        self.wakeup.set()

    @property
    def stalled(self) -> bool:
        return time.monotonic() < self.stalled_until


class GatewayServer:
    """Serve ``source`` (an object with ``async batches()`` of frames) on ``host:port``."""

    def __init__(
        self,
        source: Any,
        contracts: dict[str, str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tokens: TokenIssuer | None = None,
        faults: FaultPlan | None = None,
        history: dict[str, SyntheticHistory] | None = None,
        keepalive_s: float = 15.0,
        max_pending: int = 500_000,
        wait_for_client: bool = False,
    ) -> None:
        self.source = source
        # A replay should start when someone is listening, not play to an empty room.
        self.wait_for_client = wait_for_client
        self.first_client = asyncio.Event()
        self.contracts = {
            cid: Contract(cid, CME_FUTURES.get(symbol), symbol) for symbol, cid in contracts.items()
        }
        self.host, self.port = host, port
        self.tokens = tokens or TokenIssuer()
        self.faults = faults or FaultPlan()
        self.history = history or {}
        self.keepalive_s = keepalive_s
        self.max_pending = max_pending
        self.connections: set[Connection] = set()
        self.closed_connections: list[Connection] = []
        self.raw_clients: dict[web.WebSocketResponse, asyncio.Queue] = {}
        self.pipeline = Pipeline(
            None, ["1sec", "1min"], codec="projectx", max_bars=86_400, wanted=set()
        )
        self.stats = {"frames_in": 0, "records_routed": 0, "connections": 0, "problems": 0}
        self._numbers = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._feed_task: asyncio.Task | None = None
        self.feed_done = asyncio.Event()

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=1024 * 1024)
        app.add_routes(
            [
                web.post("/api/Auth/loginKey", self._login),
                web.post("/api/Auth/validate", self._validate),
                web.post("/api/Contract/search", self._contract_search),
                web.post("/api/Contract/searchById", self._contract_by_id),
                web.post("/api/Account/search", self._account_search),
                web.post("/api/History/retrieveBars", self._retrieve_bars),
                web.post("/api/Contract/available", self._contract_available),
                web.post("/api/Auth/logout", self._logout),
                web.get("/api/Status/ping", self._ping),
                *(
                    web.post(f"/api/{path}", self._empty_search(field))
                    for path, field in EMPTY_SEARCHES.items()
                ),
                *(web.post(f"/api/{path}", self._no_trading) for path in TRADING_PATHS),
                web.route("*", "/api/{tail:.*}", self._unknown),
                web.post("/hubs/{hub}/negotiate", self._negotiate),
                web.get("/hubs/{hub}", self._hub),
                web.get("/ws", self._raw),
                web.get("/stream", self._raw),
            ]
        )
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self._feed_task = asyncio.create_task(self._feed(), name="rtcap-gateway-feed")

    async def stop(self) -> None:
        if self._feed_task is not None:
            self._feed_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._feed_task
        close = getattr(self.source, "close", None)
        if close is not None:
            await close()
        for conn in list(self.connections):
            await self._close(conn, code=1001, message="server shutting down")
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> GatewayServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def urls(self) -> dict[str, str]:
        return {
            "api": f"{self.base}/api",
            "market_hub": f"{self.base}/hubs/market",
            "user_hub": f"{self.base}/hubs/user",
        }

    # --- feed --------------------------------------------------------------------------

    async def _feed(self) -> None:
        try:
            if self.wait_for_client:
                await self.first_client.wait()
            async for batch in _batches(self.source):
                for frame in batch:
                    self._route(frame)
                await asyncio.sleep(0)
        finally:
            self.feed_done.set()

    def _route(self, frame: Frame) -> None:
        if frame.kind not in ("text", "binary"):
            return
        self.stats["frames_in"] += 1
        for queue in self.raw_clients.values():
            queue.put_nowait(frame)
        self.pipeline.feed(frame)
        target, contract = frame.target, frame.symbol
        payload = frame.payload
        if target in projectx.CHANNEL_OF_TARGET and contract and payload.count(signalr.RS) == 1:
            self._deliver(projectx.CHANNEL_OF_TARGET[target], contract, payload)
            return
        for record in signalr.split_records(payload):
            message = signalr.parse_record(record)
            if not isinstance(message, dict) or message.get("type") != signalr.INVOCATION:
                continue  # pings, completions: the server makes its own
            channel = projectx.CHANNEL_OF_TARGET.get(message.get("target"))
            arguments = message.get("arguments")
            if channel and isinstance(arguments, list) and arguments:
                self._deliver(channel, str(arguments[0]), record + signalr.RS)

    def _deliver(self, channel: str, contract: str, record: bytes) -> None:
        every = self.faults.malformed_every
        for conn in self.connections:
            if conn.hub == "market" and conn.session.wants(channel, contract):
                if conn.stalled or conn.closing:
                    continue
                conn.push(record)
                self.stats["records_routed"] += 1
                conn.market_records += 1
                if every is not None and conn.market_records % every == 0:
                    conn.push(MALFORMED_RECORD)
                if len(conn.pending) > self.max_pending:
                    conn.closing = True
                    asyncio.get_running_loop().create_task(
                        self._close(conn, error="slow consumer: too many messages pending")
                    )

    # --- REST --------------------------------------------------------------------------

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json(loads=orjson.loads)
        except (orjson.JSONDecodeError, ValueError, UnicodeDecodeError):
            raise web.HTTPBadRequest(
                text=_error_json("request body is not valid JSON"), content_type="application/json"
            ) from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(
                text=_error_json("request body must be a JSON object"),
                content_type="application/json",
            )
        return body

    def _authorise(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else None
        token = token or request.query.get("access_token")
        problem = self.tokens.check(token)
        if problem is not None:
            self.stats["problems"] += 1
            log.warning("refused %s %s: %s", request.method, request.path, problem)
            raise web.HTTPUnauthorized(text=_error_json(problem), content_type="application/json")

    async def _login(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if not self.tokens.accepts_key(body.get("apiKey")):
            log.warning("refused login for user %r: wrong or missing API key", body.get("userName"))
            raise web.HTTPUnauthorized(
                text=_error_json("wrong or missing API key", code=3),
                content_type="application/json",
            )
        token = self.tokens.issue(str(body.get("userName") or ""))
        return _ok({"token": token})

    async def _validate(self, request: web.Request) -> web.Response:
        self._authorise(request)
        return _ok({"newToken": self.tokens.issue("rtcap")})

    async def _contract_search(self, request: web.Request) -> web.Response:
        self._authorise(request)
        body = await self._body(request)
        text = str(body.get("searchText") or "").upper()
        found = [
            c.as_json()
            for c in self.contracts.values()
            if not text
            or text in c.id.upper()
            or text in c.symbol.upper()
            or (c.spec and text in c.spec.description.upper())
        ]
        return _ok({"contracts": found})

    async def _contract_by_id(self, request: web.Request) -> web.Response:
        self._authorise(request)
        body = await self._body(request)
        contract = self.contracts.get(str(body.get("contractId")))
        if contract is None:
            return _fail(f"unknown contract {body.get('contractId')!r}", code=1)
        return _ok({"contract": contract.as_json()})

    async def _account_search(self, request: web.Request) -> web.Response:
        self._authorise(request)
        return _ok({"accounts": [SIM_ACCOUNT]})

    async def _contract_available(self, request: web.Request) -> web.Response:
        self._authorise(request)
        return _ok({"contracts": [c.as_json() for c in self.contracts.values()]})

    async def _logout(self, request: web.Request) -> web.Response:
        self._authorise(request)
        return _ok({})

    async def _ping(self, request: web.Request) -> web.Response:
        return web.json_response("pong")

    def _empty_search(self, field: str):
        """A search of the simulated account's trading activity: it never traded."""

        async def search(request: web.Request) -> web.Response:
            self._authorise(request)
            await self._body(request)
            if field == "order":
                return _fail("no such order: the simulated account places no orders", code=1)
            return _ok({field: []})

        return search

    async def _no_trading(self, request: web.Request) -> web.Response:
        self._authorise(request)
        return _fail(
            f"{request.path} is not available: rtcap serves market data (simulated or "
            "replayed) and executes no orders",
            code=2,
        )

    async def _unknown(self, request: web.Request) -> web.Response:
        log.warning("unknown REST endpoint %s %s", request.method, request.path)
        return web.Response(
            status=404,
            body=_error_json(f"unknown endpoint {request.method} {request.path}", code=404),
            content_type="application/json",
        )

    async def _retrieve_bars(self, request: web.Request) -> web.Response:
        self._authorise(request)
        body = await self._body(request)
        try:
            bars = self.bars_for(body)
        except (KeyError, ValueError, TypeError) as exc:
            return _fail(str(exc).strip("'\""), code=1)
        return _ok(
            {
                "bars": [
                    {
                        "t": _iso(bar.start_ns),
                        "o": bar.open,
                        "h": bar.high,
                        "l": bar.low,
                        "c": bar.close,
                        "v": bar.volume,
                    }
                    for bar in reversed(bars)  # newest first, as the gateway answers
                ]
            }
        )

    def bars_for(self, body: dict[str, Any]) -> list[Bar]:
        """Bars answering a ``retrieveBars`` request body, oldest first."""
        contract = self.contracts.get(str(body.get("contractId")))
        if contract is None:
            raise KeyError(f"unknown contract {body.get('contractId')!r}")
        unit, count = int(body.get("unit", 2)), int(body.get("unitNumber", 1))
        if unit not in HISTORY_UNITS:
            raise ValueError(
                f"unit {unit} is not served: use 1 (second), 2 (minute), 3 (hour), 4 (day), "
                "5 (week) or 6 (month)"
            )
        if count < 1:
            raise ValueError("unitNumber must be at least 1")
        start = parse_iso_ns(str(body["startTime"]))
        end = parse_iso_ns(str(body["endTime"]))
        limit = min(int(body.get("limit") or MAX_BARS_PER_RESPONSE), MAX_BARS_PER_RESPONSE)
        tz, session = default_session(contract.symbol)
        name = HISTORY_UNITS[unit]
        if name == "sec":
            base = self._base_bars(contract.symbol, "1sec", start - 60 * NS, end)
            bars = resample(base, Grid(f"{count}sec", tz, session))
        elif name in ("week", "month"):
            days = resample(self._base_bars(contract.symbol, "1min"), Grid("1day", tz, session))
            bars = _every(calendar_bars(days, name, tz), count)
        else:
            base = self._base_bars(contract.symbol, "1min")
            bars = resample(base, Grid(f"{count}{name}", tz, session))
        bars = [bar for bar in bars if start <= bar.start_ns < end]
        forming_start = self._forming_start(contract.symbol)
        if not body.get("includePartialBar", False) and forming_start is not None:
            bars = [bar for bar in bars if bar.end_ns <= forming_start]
        return bars[-limit:] if limit > 0 else []

    def _base_bars(
        self, symbol: str, label: str, start_ns: int = 0, end_ns: int = 1 << 62
    ) -> list[Bar]:
        """Generated history (seconds only for the window asked), then the bars built live."""
        history = self.history.get(symbol)
        if history is None:
            older = []
        elif label == "1min":
            older = history.minute_bars()
        else:
            older = history.second_bars(start_ns, end_ns)
        state = self.pipeline.instruments.get(symbol)
        live = state.builder.bars(label) if state is not None else []
        if older and live:
            older = [bar for bar in older if bar.start_ns < live[0].start_ns]
        return older + live

    def _forming_start(self, symbol: str) -> int | None:
        state = self.pipeline.instruments.get(symbol)
        forming = state.builder.forming("1sec") if state is not None else None
        return None if forming is None else forming.start_ns

    # --- raw frames (captures of any feed) ----------------------------------------------

    async def _raw(self, request: web.Request) -> web.StreamResponse:
        """Every data frame of the source, exactly as recorded and in order (any feed)."""
        ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE, compress=False)
        await ws.prepare(request)
        queue: asyncio.Queue = asyncio.Queue()
        self.raw_clients[ws] = queue
        self.stats["connections"] += 1
        self.first_client.set()

        async def write() -> None:
            while not ws.closed:
                frame = await queue.get()
                with contextlib.suppress(ConnectionError, RuntimeError):
                    if frame.kind == "text":
                        await ws.send_str(frame.payload.decode("utf-8", "replace"))
                    else:
                        await ws.send_bytes(frame.payload)

        writer = asyncio.create_task(write())
        try:
            async for _ in ws:
                pass  # the raw endpoint ignores what clients send
        finally:
            self.raw_clients.pop(ws, None)
            writer.cancel()
        return ws

    # --- SignalR hubs ------------------------------------------------------------------

    async def _negotiate(self, request: web.Request) -> web.Response:
        hub = request.match_info["hub"]
        if hub not in ("market", "user"):
            raise web.HTTPNotFound(text=f"no hub named {hub!r}: use /hubs/market or /hubs/user")
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
            raise web.HTTPNotFound(text=f"no hub named {hub!r}: use /hubs/market or /hubs/user")
        self._authorise(request)
        ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE, compress=False, heartbeat=None)
        await ws.prepare(request)
        known = frozenset(self.contracts) if hub == "market" else None
        conn = Connection(next(self._numbers), hub, ws, HubSession(hub, known))
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
                    self.first_client.set()
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
            await conn.wakeup.wait()
            conn.wakeup.clear()
            await self._flush(conn)

    async def _flush(self, conn: Connection) -> None:
        while conn.pending and not conn.ws.closed:
            chunk = []
            size = 0
            while conn.pending and size < 256 * 1024:
                record = conn.pending.popleft()
                chunk.append(record)
                size += len(record)
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

    async def _drop(self, conn: Connection) -> None:
        """Abort the TCP connection without a close frame, once what was sent has left: a
        dropped network, not lost writes (so the client's tape can be checked against ours)."""
        conn.closing = True
        await self._flush(conn)
        log.info("%s hub connection %d: dropping (fault)", conn.hub, conn.number)
        transport = conn.ws._req.transport if conn.ws._req is not None else None
        if transport is None:
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
            "timestamp": _iso(time.time_ns()),
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
            conn.pending.append(signalr.close(error, True if error else None))
            await self._flush(conn)
            with contextlib.suppress(Exception):
                await conn.ws.close(code=code, message=message.encode())


async def _batches(source: Any) -> AsyncIterator[list[Frame]]:
    batches = getattr(source, "batches", None)
    if batches is not None:
        async for batch in batches():
            yield batch
    else:
        async for frame in source:
            yield [frame]


# What the ProjectX SDK asks about the account at start-up and in use, with the field each
# answer carries; the simulated account holds nothing, so every list is empty.
EMPTY_SEARCHES = {
    "Position/searchOpen": "positions",
    "Order/searchOpen": "orders",
    "Order/search": "orders",
    "Order/searchById": "order",
    "Trade/search": "trades",
}
TRADING_PATHS = (
    "Order/place",
    "Order/modify",
    "Order/cancel",
    "Position/closeContract",
    "Position/partialCloseContract",
)


def _every(bars: list[Bar], count: int) -> list[Bar]:
    """Consecutive groups of ``count`` bars folded into one (2 weeks, 3 months…)."""
    if count == 1:
        return bars
    out = []
    for index in range(0, len(bars), count):
        group = bars[index : index + count]
        first, last = group[0], group[-1]
        out.append(
            Bar(
                first.timeframe,
                first.start_ns,
                last.end_ns,
                first.open,
                max(b.high for b in group),
                min(b.low for b in group),
                last.close,
                sum(b.volume for b in group),
                sum(b.trades for b in group),
            )
        )
    return out


def _iso(ns: int) -> str:
    return ns_to_datetime(ns).isoformat()


def _ok(payload: dict[str, Any]) -> web.Response:
    body = {**payload, "success": True, "errorCode": 0, "errorMessage": None}
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def _fail(message: str, code: int) -> web.Response:
    return web.Response(body=_error_json(message, code), content_type="application/json")


def _error_json(message: str, code: int = 401) -> str:
    return orjson.dumps({"success": False, "errorCode": code, "errorMessage": message}).decode()


def simulated_history(market, days: float, end_ns: int, seed: int) -> dict[str, SyntheticHistory]:
    """Seeded history for every simulated instrument, ending where its live walk starts."""
    return {
        spec.symbol: SyntheticHistory(seed, spec, end_ns, market.start_price(spec.symbol), days)
        for spec in market.specs
    }


__all__ = ["Connection", "Contract", "GatewayServer", "simulated_history"]
