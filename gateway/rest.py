"""The gateway's REST API under ``/api``: log-in, contracts, the simulated account and bar
history, answered as the ProjectX Gateway answers them.

Bars for ``/History/retrieveBars`` come from the kernel's own bar builder fed with the frames
served (plus, for the simulated market, seeded history before its start).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from rtcap.bars import BarBuilder, resample
from rtcap.gateway.history import SyntheticHistory, calendar_bars
from rtcap.gateway.tokens import TokenIssuer
from rtcap.instruments import InstrumentSpec, session_of
from rtcap.models import Bar
from rtcap.pipeline import Pipeline
from rtcap.timeframes import Grid
from rtcap.timeutil import ns_to_datetime, parse_iso_ns

log = logging.getLogger("rtcap.gateway")

MAX_BARS_PER_RESPONSE = 20_000
HISTORY_UNITS = {1: "sec", 2: "min", 3: "hr", 4: "day", 5: "week", 6: "month"}
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
    active: bool = True  # the front contract of its symbol (``activeContract``)

    def as_json(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "id": self.id,
            "name": self.id.split(".")[-2] + self.id.split(".")[-1] if spec else self.id,
            "description": spec.description if spec else self.symbol,
            "tickSize": spec.tick_size if spec else 0.01,
            "tickValue": spec.tick_value if spec else 0.01,
            "activeContract": self.active,
            "symbolId": spec.symbol_id if spec else self.symbol,
        }


def authorise(request: web.Request, tokens: TokenIssuer, stats: dict[str, int]) -> None:
    """Refuse (401) a request without a valid token, in a header or ``?access_token=``."""
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else None
    token = token or request.query.get("access_token")
    problem = tokens.check(token)
    if problem is not None:
        stats["problems"] += 1
        log.warning("refused %s %s: %s", request.method, request.path, problem)
        raise web.HTTPUnauthorized(text=error_json(problem), content_type="application/json")


class RestApi:
    """The ``/api`` routes over the served contracts, the token issuer and the bars built."""

    def __init__(
        self,
        contracts: dict[str, Contract],
        tokens: TokenIssuer,
        stats: dict[str, int],
        history: dict[str, SyntheticHistory],
        pipeline: Pipeline,
    ) -> None:
        self.contracts = contracts
        self.tokens = tokens
        self.stats = stats
        self.history = history
        self.pipeline = pipeline
        self._history_lock = asyncio.Lock()  # one history answer computed at a time

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
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
        ]

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json(loads=orjson.loads)
        except (orjson.JSONDecodeError, ValueError, UnicodeDecodeError):
            raise web.HTTPBadRequest(
                text=error_json("request body is not valid JSON"), content_type="application/json"
            ) from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(
                text=error_json("request body must be a JSON object"),
                content_type="application/json",
            )
        return body

    def _authorise(self, request: web.Request) -> None:
        authorise(request, self.tokens, self.stats)

    async def _login(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if not self.tokens.accepts_key(body.get("apiKey")):
            log.warning("refused login for user %r: wrong or missing API key", body.get("userName"))
            raise web.HTTPUnauthorized(
                text=error_json("wrong or missing API key", code=3),
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
            body=error_json(f"unknown endpoint {request.method} {request.path}", code=404),
            content_type="application/json",
        )

    async def _retrieve_bars(self, request: web.Request) -> web.Response:
        self._authorise(request)
        body = await self._body(request)
        try:
            query = self._request(body)
        except (KeyError, ValueError, TypeError) as exc:
            return _fail(str(exc).strip("'\""), code=1)
        async with self._history_lock:
            bars = await asyncio.to_thread(self._answer, query)
        return _ok(
            {
                "bars": [
                    {
                        "t": iso(bar.start_ns),
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
        return self._answer(self._request(body))

    def _request(self, body: dict[str, Any]) -> BarsRequest:
        """Check a request body and take the live bars as they stand (on the event loop, where
        the feed builds them; cheap)."""
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
        name = HISTORY_UNITS[unit]
        tz, session = session_of(contract.symbol)
        grid = None if name in ("week", "month") else Grid(f"{count}{name}", tz, session)
        start = parse_iso_ns(str(body["startTime"]))
        end = parse_iso_ns(str(body["endTime"]))
        limit = min(int(body.get("limit") or MAX_BARS_PER_RESPONSE), MAX_BARS_PER_RESPONSE)
        state = self.pipeline.instruments.get(contract.symbol)
        builder = state.builder if state is not None else None
        forming = builder.forming("1sec") if builder is not None else None
        return BarsRequest(
            symbol=contract.symbol,
            unit=name,
            count=count,
            grid=grid,
            tz=tz,
            session=session,
            start_ns=start,
            end_ns=end,
            limit=max(0, limit),
            closed_before=None
            if body.get("includePartialBar") or forming is None
            else forming.start_ns,
            live=_snapshot(builder, "1sec" if name == "sec" else "1min"),
        )

    def _answer(self, request: BarsRequest) -> list[Bar]:
        """The bars for a checked request: pure work on generated history and the snapshot, so
        it runs off the event loop (one at a time) while every stream keeps flowing."""
        name, count, start, end = request.unit, request.count, request.start_ns, request.end_ns
        if name == "sec":
            # Only the seconds the answer can hold: `limit` buckets, one the partial-bar rule
            # may drop, and one cut short at the oldest end (dropped below).
            newest = (request.limit + 2) * count
            base = self._second_bars(request, newest)
            bars = resample(base, request.grid)
            if len(base) == newest:
                bars = bars[1:]
        elif request.grid is None:  # weeks and months: folds of the trading days
            days = resample(self._minute_bars(request), Grid("1day", request.tz, request.session))
            bars = _every(calendar_bars(days, name, request.tz), count)
        else:
            bars = resample(self._minute_bars(request), request.grid)
        bars = [bar for bar in bars if start <= bar.start_ns < end]
        if request.closed_before is not None:
            bars = [bar for bar in bars if bar.end_ns <= request.closed_before]
        return bars[-request.limit :] if request.limit > 0 else []

    def _minute_bars(self, request: BarsRequest) -> list[Bar]:
        """Generated minute history, then the minute bars built live."""
        history = self.history.get(request.symbol)
        older = history.minute_bars() if history is not None else []
        live = request.live
        if older and live:
            older = [bar for bar in older if bar.start_ns < live[0].start_ns]
        return older + live

    def _second_bars(self, request: BarsRequest, newest: int) -> list[Bar]:
        """The newest ``newest`` 1-second bars of the request's window: generated history (only
        the minutes needed), then the bars built live."""
        start, end = request.start_ns, request.end_ns
        live = [b for b in request.live if start <= b.start_ns < end]
        live = live[max(0, len(live) - newest) :]
        history = self.history.get(request.symbol)
        if history is None or len(live) >= newest:
            return live
        older_end = min(end, live[0].start_ns) if live else end
        return history.second_bars(start, older_end, newest - len(live)) + live


@dataclass(frozen=True)
class BarsRequest:
    """A checked ``retrieveBars`` request, with the live bars as they stood when it came."""

    symbol: str
    unit: str  # "sec", "min", "hr", "day", "week" or "month"
    count: int
    grid: Grid | None  # None for weeks and months
    tz: str
    session: str
    start_ns: int
    end_ns: int
    limit: int
    closed_before: int | None  # without includePartialBar: bars must end by then
    live: list[Bar]


def _snapshot(builder: BarBuilder | None, label: str) -> list[Bar]:
    """The builder's bars of ``label``; the forming one copied, as the feed goes on changing it."""
    if builder is None:
        return []
    bars = builder.bars(label)
    if bars and bars[-1] is builder.series[label].current:
        bars[-1] = dataclasses.replace(bars[-1])
    return bars


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


def iso(ns: int) -> str:
    return ns_to_datetime(ns).isoformat()


def _ok(payload: dict[str, Any]) -> web.Response:
    body = {**payload, "success": True, "errorCode": 0, "errorMessage": None}
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def _fail(message: str, code: int) -> web.Response:
    return web.Response(body=error_json(message, code), content_type="application/json")


def error_json(message: str, code: int = 401) -> str:
    return orjson.dumps({"success": False, "errorCode": code, "errorMessage": message}).decode()
