"""A ProjectX-compatible gateway on loopback: REST under ``/api`` (:mod:`rtcap.gateway.rest`),
SignalR hubs (:mod:`rtcap.gateway.hubs`) and raw ``/ws`` frames, on one port.

It serves any frame source — the simulated market paced in real time, or a capture — to any
number of clients, each getting only the contracts and channels it subscribed to. Faults can be
injected into every connection (:mod:`rtcap.gateway.faults`).

Tokens travel in ``?access_token=`` query strings, so the access log is off: nothing here ever
writes a token or API key to a log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from rtcap.codecs import projectx, signalr
from rtcap.gateway.faults import FaultPlan
from rtcap.gateway.history import SyntheticHistory
from rtcap.gateway.hubs import MAX_MESSAGE, Connection, Hubs
from rtcap.gateway.rest import Contract, RestApi, authorise
from rtcap.gateway.sendqueue import MAX_PENDING_BYTES, SendQueue, close_slow_consumer
from rtcap.gateway.tokens import TokenIssuer
from rtcap.instruments import CME_FUTURES, root_of, spec_of_root, symbol_of
from rtcap.models import Bar, Frame
from rtcap.pipeline import Pipeline
from rtcap.replay.run import batches_of

log = logging.getLogger("rtcap.gateway")


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
        max_pending_bytes: int = MAX_PENDING_BYTES,
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
        self.raw_clients: list[RawClient] = []
        self.max_pending_bytes = max_pending_bytes
        self.pipeline = Pipeline(
            None, ["1sec", "1min"], codec="projectx", max_bars=86_400, wanted=set()
        )
        self.stats = {"frames_in": 0, "records_routed": 0, "connections": 0, "problems": 0}
        self.rest = RestApi(self.contracts, self.tokens, self.stats, self.history, self.pipeline)
        self.hubs = Hubs(
            self.contracts,
            self.tokens,
            self.faults,
            self.stats,
            keepalive_s=keepalive_s,
            max_pending_bytes=max_pending_bytes,
            on_subscribe=self.first_client.set,
        )
        self._runner: web.AppRunner | None = None
        self._feed_task: asyncio.Task | None = None
        self.feed_done = asyncio.Event()

    @property
    def connections(self) -> set[Connection]:
        return self.hubs.connections

    @property
    def closed_connections(self) -> list[Connection]:
        return self.hubs.closed_connections

    def bars_for(self, body: dict[str, Any]) -> list[Bar]:
        """Bars answering a ``retrieveBars`` request body, oldest first."""
        return self.rest.bars_for(body)

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=1024 * 1024)
        app.add_routes(
            [
                *self.rest.routes(),
                *self.hubs.routes(),
                web.get("/ws", self._raw),
                web.get("/stream", self._raw),
            ]
        )
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._feed_task = asyncio.create_task(self._feed(), name="rtcap-gateway-feed")

    async def stop(self) -> None:
        if self._feed_task is not None:
            self._feed_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._feed_task
        close = getattr(self.source, "close", None)
        if close is not None:
            await close()
        await self.hubs.close_all()
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
            async for batch in batches_of(self.source):
                for frame in batch:
                    self._route(frame)
                await asyncio.sleep(0)
        finally:
            self.feed_done.set()

    def _route(self, frame: Frame) -> None:
        if frame.kind not in ("text", "binary"):
            return
        self.stats["frames_in"] += 1
        size = len(frame.payload)
        for client in [c for c in self.raw_clients if not c.queue.push(frame, size)]:
            self._drop_slow_raw(client)
        self.pipeline.feed(frame)
        target, contract = frame.target, frame.symbol
        if contract and contract not in self.contracts and target in projectx.CHANNEL_OF_TARGET:
            self._learn(contract, frame.exch_ns or frame.recv_ns)
        payload = frame.payload
        if target in projectx.CHANNEL_OF_TARGET and contract and payload.count(signalr.RS) == 1:
            self.hubs.deliver(projectx.CHANNEL_OF_TARGET[target], contract, payload)
            return
        for record in signalr.split_records(payload):
            message = signalr.parse_record(record)
            if not isinstance(message, dict) or message.get("type") != signalr.INVOCATION:
                continue  # pings, completions: the server makes its own
            channel = projectx.CHANNEL_OF_TARGET.get(message.get("target"))
            arguments = message.get("arguments")
            if channel and isinstance(arguments, list) and arguments:
                self.hubs.deliver(channel, str(arguments[0]), record + signalr.RS)

    def _learn(self, contract_id: str, at_ns: int) -> None:
        """A contract the source began to send (a simulated market rolled to its next month):
        served from now on, and the front one of its symbol if CME's calendar says so then."""
        spec = spec_of_root(root_of(contract_id))
        symbol = symbol_of(contract_id)
        active = spec is None or spec.contract_id(at_ns) == contract_id
        if active:
            for other in self.contracts.values():
                if other.symbol == symbol:
                    other.active = False
        self.contracts[contract_id] = Contract(contract_id, spec, symbol, active)
        log.info("serving %s (%s)", contract_id, "front" if active else "not the front")

    # --- raw frames (captures of any feed) ----------------------------------------------

    async def _raw(self, request: web.Request) -> web.StreamResponse:
        """Every data frame of the source, exactly as recorded and in order (any feed). With a
        required API key, a token from ``/api/Auth/loginKey`` is needed here as on the hubs."""
        if self.tokens.required_key is not None:
            authorise(request, self.tokens, self.stats)
        ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE, compress=False)
        await ws.prepare(request)
        client = RawClient(ws, SendQueue(self.max_pending_bytes), request.transport)
        client.writer = asyncio.create_task(self._write_raw(client))
        self.raw_clients.append(client)
        self.stats["connections"] += 1
        self.first_client.set()
        try:
            async for _ in ws:
                pass  # the raw endpoint ignores what clients send
        finally:
            self._forget_raw(client)
        return ws

    async def _write_raw(self, client: RawClient) -> None:
        ws, queue = client.ws, client.queue
        while not ws.closed:
            await queue.wakeup.wait()
            queue.wakeup.clear()
            while queue and not ws.closed:
                for frame in queue.take(256 * 1024):
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        if frame.kind == "text":
                            await ws.send_str(frame.payload.decode("utf-8", "replace"))
                        else:
                            await ws.send_bytes(frame.payload)

    def _forget_raw(self, client: RawClient) -> None:
        with contextlib.suppress(ValueError):
            self.raw_clients.remove(client)
        client.queue.clear()
        if client.writer is not None:
            client.writer.cancel()

    def _drop_slow_raw(self, client: RawClient) -> None:
        log.warning(
            "raw client: slow consumer, more than %s bytes waiting: disconnected",
            f"{client.queue.limit:,}",
        )
        self._forget_raw(client)
        asyncio.get_running_loop().create_task(close_slow_consumer(client.ws, client.transport))


@dataclass(eq=False)
class RawClient:
    """One ``/ws`` client: its socket, its bounded queue and the task writing to it."""

    ws: web.WebSocketResponse
    queue: SendQueue[Frame]
    transport: asyncio.BaseTransport | None
    writer: asyncio.Task[None] | None = None


def simulated_history(market, days: float, end_ns: int, seed: int) -> dict[str, SyntheticHistory]:
    """Seeded history for every simulated instrument, ending where its live walk starts."""
    return {
        spec.symbol: SyntheticHistory(seed, spec, end_ns, market.start_price(spec.symbol), days)
        for spec in market.specs
    }


__all__ = ["Connection", "Contract", "GatewayServer", "simulated_history"]
