"""The feeds rtcap records: ProjectX Gateway hubs, Binance combined streams, any websocket.

Each says where to connect (logging in or refreshing its token first when needed), what to
send after connecting (handshake, subscriptions — sent again on every reconnect), and which
keep-alive it wants. Credentials stay in memory: URLs and sent frames are redacted before any
row is written.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import orjson

from rtcap import instruments
from rtcap.capture.endpoints import BINANCE_URL
from rtcap.capture.redact import redact_message
from rtcap.capture.rhythm import SPARSE_FLOOR_S
from rtcap.capture.session import FatalFeedError
from rtcap.capture.snapshots import DepthSnapshots, is_futures, rest_url_for
from rtcap.codecs import projectx, signalr
from rtcap.models import Bar
from rtcap.timeframes import parse_timeframe
from rtcap.timeutil import NS, parse_iso_ns

REFRESH_BEFORE_S = 300
UNITS = {"sec": 1, "min": 2, "hr": 3, "day": 4}


def to_ws(url: str) -> str:
    return "ws" + url[4:] if url.startswith("http") else url


def token_expiry(token: str) -> float | None:
    """``exp`` of a JWT, if it is one."""
    try:
        body = token.split(".")[1]
        return float(orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))["exp"])
    except (IndexError, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        return None


class ProjectXAuth:
    """Logs in with an API key and keeps the session token fresh (shared by both hubs)."""

    def __init__(self, api_url: str, username: str, api_key: str) -> None:
        self.api_url = api_url.rstrip("/")
        self.username = username
        self._api_key = api_key
        self.token: str | None = None
        self.expires: float | None = None
        self.logins = 0

    async def post(self, path: str, body: dict[str, Any], *, auth: bool = True) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {await self.fresh_token()}"} if auth else {}
        url = f"{self.api_url}{path}"
        try:
            timeout = aiohttp.ClientTimeout(total=30)
            async with (
                aiohttp.ClientSession(timeout=timeout) as http,
                http.post(url, json=body, headers=headers) as response,
            ):
                if response.status == 401:
                    self.token = None
                    raise FatalFeedError(
                        f"ProjectX refused the request to {path} (401): check the user name "
                        "and API key (PROJECTX_USERNAME / PROJECTX_API_KEY, or PROJECT_X_…)"
                    )
                if response.status >= 400:
                    raise OSError(f"HTTP {response.status} from {url}")
                answer = await response.json(content_type=None)
        except aiohttp.ClientConnectionError as exc:
            raise OSError(f"cannot reach {url}: {exc}") from None
        if not isinstance(answer, dict):
            raise OSError(f"unexpected answer from {url}")
        return answer

    async def fresh_token(self) -> str:
        if self.token is None or (
            self.expires is not None and self.expires - time.time() < REFRESH_BEFORE_S
        ):
            answer = await self.post(
                "/Auth/loginKey", {"userName": self.username, "apiKey": self._api_key}, auth=False
            )
            if not answer.get("success") or not answer.get("token"):
                raise FatalFeedError(
                    f"ProjectX login failed for {self.username!r}: "
                    f"{answer.get('errorMessage') or 'error code ' + str(answer.get('errorCode'))}"
                )
            self.token = answer["token"]
            self.expires = token_expiry(self.token)
            self.logins += 1
        return self.token

    def forget(self) -> None:
        self.token = None


class ProjectXMarketFeed:
    """``/hubs/market``: quotes, trades and depth for each contract."""

    carries_sequence_ids = False  # the gateway numbers nothing: no gaps to find in the data

    def __init__(
        self,
        auth: ProjectXAuth,
        hub_url: str,
        symbols: list[str],
        channels: tuple[str, ...] = ("quotes", "trades", "depth"),
        *,
        stream: str = "market",
    ) -> None:
        self.auth = auth
        self.hub_url = hub_url
        self.symbols = [s.upper() for s in symbols]
        self.channels = channels
        self.stream = stream
        self.contracts: dict[str, str] = {}
        self.contract_info: dict[str, dict[str, str]] = {}
        self.retired: list[dict[str, str]] = []  # contracts rolled away from, and to what
        self._invocations = 0

    async def prepare(self) -> None:
        """Log in and resolve symbols to contract ids (errors here are final)."""
        for symbol in self.symbols:
            self._choose(symbol, await self._front(symbol))

    async def _front(self, symbol: str) -> dict[str, Any]:
        """The gateway's front contract for ``symbol``: the ``activeContract`` among the
        ``Contract/search`` answers whose id has the symbol's root."""
        answer = await self.auth.post("/Contract/search", {"searchText": symbol, "live": False})
        root = instruments.gateway_root(symbol)
        candidates = [
            c
            for c in answer.get("contracts") or []
            if isinstance(c, dict) and instruments.root_of(str(c.get("id", ""))) == root
        ]
        active = [c for c in candidates if c.get("activeContract", True)] or candidates
        if not active:
            raise FatalFeedError(
                f"no ProjectX contract found for {symbol!r} (looked for contract ids "
                f"CON.F.US.{root}.*): check the symbol, e.g. MNQ, ES, CL, GC"
            )
        return active[0]

    def _choose(self, symbol: str, chosen: dict[str, Any]) -> None:
        self.contracts[symbol] = chosen["id"]
        # the gateway's own names, recorded so replay names this contract as it did
        self.contract_info[symbol] = {
            key: chosen[key] for key in ("name", "symbolId") if isinstance(chosen.get(key), str)
        }

    async def recheck(self) -> list[tuple[str, str, str]]:
        """Ask the gateway again for each symbol's front contract (a new session has begun);
        (symbol, old, new) for each that changed, now subscribed to on the next connect. The
        caller moves a live connection over with :meth:`resubscribe_messages`."""
        # Every answer first: a failure part-way must not leave a switch half made.
        fronts = [(symbol, await self._front(symbol)) for symbol in self.symbols]
        changes = []
        for symbol, chosen in fronts:
            old = self.contracts.get(symbol)
            if old is not None and chosen["id"] != old:
                self.retired.append({"symbol": symbol, "contract": old, "rolled_to": chosen["id"]})
                self._choose(symbol, chosen)
                changes.append((symbol, old, chosen["id"]))
        return changes

    def resubscribe_messages(self, old: str, new: str) -> list[bytes]:
        """Subscribe ``new`` first, then unsubscribe ``old``: no moment without the symbol."""
        messages = []
        for contract, subscribe in ((new, True), (old, False)):
            for method, arguments in projectx.subscription_messages(
                contract, self.channels, subscribe=subscribe
            ):
                self._invocations += 1
                messages.append(
                    signalr.encode(signalr.invocation(method, arguments, str(self._invocations)))
                )
        return messages

    @property
    def subscriptions(self) -> list[dict[str, Any]]:
        """What the manifest lists: contracts rolled away from (``rolled_to``), then the
        current ones."""
        current = [
            {
                "symbol": s,
                "contract": c,
                **self.contract_info.get(s, {}),
                "channels": list(self.channels),
            }
            for s, c in self.contracts.items()
        ]
        return [*self.retired, *current]

    async def connect_url(self) -> str:
        return f"{to_ws(self.hub_url)}?access_token={await self.auth.fresh_token()}"

    async def after_connect(self, send: Callable, ws) -> None:
        await send(signalr.HANDSHAKE_REQUEST)
        for contract in self.contracts.values():
            for method, arguments in projectx.subscription_messages(contract, self.channels):
                self._invocations += 1
                message = signalr.invocation(method, arguments, str(self._invocations))
                await send(signalr.encode(message))

    def keepalive(self) -> tuple[float, bytes]:
        return 10.0, signalr.PING_RECORD

    def on_auth_failure(self) -> None:
        self.auth.forget()

    async def history(self, symbol: str, timeframe: str, days: float) -> list[Bar]:
        """``/History/retrieveBars`` for the last ``days``, oldest first, with the forming bar
        (``includePartialBar``, as the SDK asks)."""
        tf = parse_timeframe(timeframe)
        contract = self.contracts.get(symbol.upper())
        if contract is None or days <= 0:
            return []
        end = datetime.now(UTC)
        answer = await self.auth.post(
            "/History/retrieveBars",
            {
                "contractId": contract,
                "live": False,
                "startTime": (end - timedelta(days=days)).isoformat(),
                "endTime": end.isoformat(),
                "unit": UNITS[tf.unit],
                "unitNumber": tf.count,
                "limit": 20_000,
                "includePartialBar": True,
            },
        )
        bars = []
        for row in sorted(answer.get("bars") or [], key=lambda b: b["t"]):
            start = parse_iso_ns(row["t"])
            bars.append(
                Bar(
                    tf.label,
                    start,
                    start + tf.seconds * NS,
                    row["o"],
                    row["h"],
                    row["l"],
                    row["c"],
                    row["v"],
                    0,
                )
            )
        return bars


class ProjectXUserFeed:
    """``/hubs/user``: account, order, position and fill updates for the first account."""

    carries_sequence_ids = False
    min_silence_s = SPARSE_FLOOR_S  # account events are sparse; the hub pings every 15 s

    def __init__(self, auth: ProjectXAuth, hub_url: str, *, stream: str = "user") -> None:
        self.auth = auth
        self.hub_url = hub_url
        self.stream = stream
        self.account_id: int | None = None

    async def prepare(self) -> None:
        answer = await self.auth.post("/Account/search", {"onlyActiveAccounts": True})
        accounts = answer.get("accounts") or []
        self.account_id = accounts[0]["id"] if accounts else None

    async def connect_url(self) -> str:
        return f"{to_ws(self.hub_url)}?access_token={await self.auth.fresh_token()}"

    async def after_connect(self, send: Callable, ws) -> None:
        await send(signalr.HANDSHAKE_REQUEST)
        await send(signalr.encode(signalr.invocation("SubscribeAccounts", [], "1")))
        if self.account_id is not None:
            for index, method in enumerate(
                ("SubscribeOrders", "SubscribePositions", "SubscribeTrades"), start=2
            ):
                invocation = signalr.invocation(method, [self.account_id], str(index))
                await send(signalr.encode(invocation))

    def keepalive(self) -> tuple[float, bytes]:
        return 10.0, signalr.PING_RECORD

    def on_auth_failure(self) -> None:
        self.auth.forget()


def is_diff_depth(kind: str) -> bool:
    """``depth`` / ``depth@100ms`` (diffs that need a snapshot), not ``depth20`` (partial
    books that are snapshots themselves)."""
    return kind == "depth" or kind.startswith("depth@")


class BinanceFeed:
    """Binance combined streams, e.g. ``btcusdt@trade/ethusdt@depth@100ms``. With a diff-depth
    stream it also records REST depth snapshots (:mod:`rtcap.capture.snapshots`)."""

    carries_sequence_ids = True  # trade ids and depth update ids

    def __init__(
        self,
        symbols: list[str],
        streams: list[str],
        *,
        base_url: str = BINANCE_URL,
        rest_url: str | None = None,
        stream: str = "binance",
        snapshot_interval_s: float | None = None,
    ) -> None:
        if not symbols or not streams:
            raise ValueError("Binance needs --symbols and --streams, e.g. btcusdt and trade")
        self.names = [f"{s.lower()}@{kind}" for s in symbols for kind in streams]
        self.base_url = base_url.rstrip("/")
        self.stream = stream
        depth = [s.upper() for s in symbols] if any(map(is_diff_depth, streams)) else []
        rest = rest_url or rest_url_for(self.base_url)
        options = {} if snapshot_interval_s is None else {"min_interval_s": snapshot_interval_s}
        self.snapshots = (
            DepthSnapshots(rest, depth, futures=is_futures(rest), **options) if depth else None
        )

    @property
    def subscriptions(self) -> list[str]:
        return self.names

    async def prepare(self) -> None:
        return None

    async def connect_url(self) -> str:
        return f"{self.base_url}/stream?streams={'/'.join(self.names)}"

    async def after_connect(self, send: Callable, ws) -> None:
        # Diffs are already flowing (the streams are in the URL): the book buffers them until
        # the snapshot, which must be younger than the first diff, as Binance documents.
        if self.snapshots is not None:
            self.snapshots.request_all()

    def keepalive(self) -> None:
        return None  # Binance pings at the protocol level; websockets answers

    def on_auth_failure(self) -> None:
        return None


class GenericFeed:
    """Any websocket URL plus messages to send after each connect; recorded raw."""

    carries_sequence_ids = True  # unknown content: check whatever a codec recognises

    def __init__(self, url: str, messages: list[str], *, stream: str = "ws") -> None:
        if not url.startswith(("ws://", "wss://")):
            raise ValueError(f"--url must be a ws:// or wss:// URL, got {url!r}")
        self.url = url
        self.messages = messages
        self.stream = stream

    @property
    def subscriptions(self) -> list[str]:
        return [redact_message(m) for m in self.messages]

    async def prepare(self) -> None:
        return None

    async def connect_url(self) -> str:
        return self.url

    async def after_connect(self, send: Callable, ws) -> None:
        for message in self.messages:
            await send(message)

    def keepalive(self) -> None:
        return None

    def on_auth_failure(self) -> None:
        return None


def local_gateway_feed(
    gateway: Any, symbols: list[str], channels: tuple[str, ...] = ("quotes", "trades", "depth")
) -> ProjectXMarketFeed:
    """A market feed from rtcap's own gateway (``gateway.api_url``, ``gateway.market_hub_url``:
    the embedded market), which takes any key."""
    auth = ProjectXAuth(gateway.api_url, "rtcap-embedded", "embedded-simulated-market")
    return ProjectXMarketFeed(auth, gateway.market_hub_url, symbols, tuple(channels))
