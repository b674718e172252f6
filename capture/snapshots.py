"""REST depth snapshots for Binance diff-depth streams, recorded as frames like any other.

A book built from ``depthUpdate`` diffs needs a snapshot to start from and a new one after every
break in the update ids. :class:`DepthSnapshots` fetches ``GET /api/v3/depth`` (spot) or
``/fapi/v1/depth`` (USD-M futures) for a symbol after each (re)connect and whenever the recorder's
book reports a break, at most once per ``min_interval_s`` per symbol (a request inside the
interval is served at its end, once). The response body is recorded exactly as received, as a
``text`` row hinted with the symbol (``target`` ``depthSnapshot``); a failed fetch is an
``error`` row (``snapshot_failed``) and is retried after the interval, a few times.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import aiohttp

SNAPSHOT_LIMIT = 1000  # levels per side: Binance's largest spot depth request
MIN_INTERVAL_S = 5.0  # per symbol; a 1000-level spot snapshot weighs 50 of 6000/min
RETRIES = 3
TARGET = "depthSnapshot"

Emit = Callable[[bytes, str], None]  # (response body, symbol)
Report = Callable[..., None]  # error row: event=..., detail


def rest_url_for(ws_url: str) -> str:
    """The REST base beside a Binance websocket base (``fstream`` → futures ``fapi``); any
    other host (a local test exchange) serves REST on the same address."""
    host = urlsplit(ws_url).hostname or ""
    if host.startswith("fstream"):
        return "https://fapi.binance.com"
    if host.endswith("binance.us"):
        return "https://api.binance.us"
    if host.endswith("binance.com"):
        return "https://api.binance.com"
    return ws_url.replace("wss://", "https://", 1).replace("ws://", "http://", 1)


def is_futures(rest_url: str) -> bool:
    return (urlsplit(rest_url).hostname or "").startswith("fapi")


class DepthSnapshots:
    """Rate-limited snapshot fetches for a set of symbols."""

    def __init__(
        self,
        rest_url: str,
        symbols: list[str],
        *,
        futures: bool = False,
        limit: int = SNAPSHOT_LIMIT,
        min_interval_s: float = MIN_INTERVAL_S,
    ) -> None:
        self.rest_url = rest_url.rstrip("/")
        self.symbols = [s.upper() for s in symbols]
        self.path = "/fapi/v1/depth" if futures else "/api/v3/depth"
        self.limit = limit
        self.min_interval_s = min_interval_s
        self.fetched = 0
        self.failed = 0
        self._emit: Emit | None = None
        self._report: Report | None = None
        self._last: dict[str, float] = {}
        self._pending: dict[str, asyncio.Task] = {}

    def attach(self, emit: Emit, report: Report) -> None:
        """Where fetched bodies and failures go (the session's row writers)."""
        self._emit, self._report = emit, report

    def request(self, symbol: str) -> None:
        """Fetch ``symbol``'s snapshot now, or at the end of its rate-limit interval."""
        symbol = symbol.upper()
        if symbol not in self.symbols or symbol in self._pending or self._emit is None:
            return
        last = self._last.get(symbol)
        wait = 0.0 if last is None else max(0.0, last + self.min_interval_s - time.monotonic())
        self._pending[symbol] = asyncio.get_running_loop().create_task(
            self._fetch(symbol, wait), name=f"rtcap-snapshot-{symbol}"
        )

    def request_all(self) -> None:
        for symbol in self.symbols:
            self.request(symbol)

    async def cancel(self) -> None:
        tasks = list(self._pending.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._pending.clear()

    async def _fetch(self, symbol: str, wait: float) -> None:
        url = f"{self.rest_url}{self.path}"
        try:
            for attempt in range(1, RETRIES + 1):
                if wait:
                    await asyncio.sleep(wait)
                self._last[symbol] = time.monotonic()
                try:
                    body = await self._get(url, symbol)
                except (OSError, aiohttp.ClientError, TimeoutError) as exc:
                    self.failed += 1
                    self._report(
                        event="snapshot_failed",
                        symbol=symbol,
                        error=str(exc) or type(exc).__name__,
                        attempt=attempt,
                    )
                    wait = self.min_interval_s
                    continue
                self.fetched += 1
                self._emit(body, symbol)
                return
        finally:
            self._pending.pop(symbol, None)

    async def _get(self, url: str, symbol: str) -> bytes:
        timeout = aiohttp.ClientTimeout(total=30)
        params = {"symbol": symbol, "limit": str(self.limit)}
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.get(url, params=params) as response,
        ):
            body = await response.read()
            if response.status != 200:
                raise OSError(f"HTTP {response.status} from {url}?symbol={symbol}: {body[:200]!r}")
            if b'"lastUpdateId"' not in body[:64]:
                raise OSError(f"{url}?symbol={symbol} answered something other than a snapshot")
            return body
