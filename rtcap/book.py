"""Level-2 order books rebuilt from recorded depth: pure and deterministic, so a book rebuilt in
replay is the book live code saw.

* :class:`OrderBook` holds one instrument's price levels per side, with the prices of each side
  kept sorted (``bisect``), so best bid/ask and the top N levels cost nothing to read and an
  update costs one dictionary write plus, for a new or vanished level, one sorted insert.
* :class:`BinanceBook` applies Binance depth in the documented sequence: a REST snapshot
  (``lastUpdateId`` L), then ``depthUpdate`` diffs. Spot: diffs with ``u <= L`` are stale, the
  first applied one has ``U <= L+1 <= u``, each next one ``U == previous u + 1``. USD-M
  futures: diffs with ``u < L`` are stale, the first has ``U <= L <= u``, each next one
  ``pu == previous u``. Diffs that arrive
  before the snapshot wait in a bounded buffer. A break in the sequence makes the book invalid
  and reports a ``book`` gap; it stays invalid until the next snapshot.
* :class:`ProjectXBook` applies ProjectX ``GatewayDepth`` levels by DOM type as the ProjectX
  SDK treats them: Ask/Bid/BestAsk/BestBid/NewBestBid/NewBestAsk set the absolute size at a
  price (0 removes it), Reset clears the book, Trade is a print (not a level), SessionLow,
  SessionHigh and Fill change nothing.

Crossed books (best bid >= best ask) are kept as the exchange sent them and flagged; negative
sizes and non-finite prices are refused level by level and counted, never raised.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from rtcap.models import DepthLevel, DepthUpdate

Level = tuple[float, float]  # (price, size)

# ProjectX DomType (shared/research/projectx.md §1.4)
DOM_ASK, DOM_BID, DOM_BEST_ASK, DOM_BEST_BID, DOM_TRADE, DOM_RESET = 1, 2, 3, 4, 5, 6
DOM_NEW_BEST_BID, DOM_NEW_BEST_ASK = 9, 10
DOM_IGNORED = frozenset({0, 7, 8, 11})  # unknown, session low/high, fill
_DOM_SIDE = {
    DOM_ASK: "ask",
    DOM_BEST_ASK: "ask",
    DOM_NEW_BEST_ASK: "ask",
    DOM_BID: "bid",
    DOM_BEST_BID: "bid",
    DOM_NEW_BEST_BID: "bid",
}


class OrderBook:
    """Price levels of one instrument: ``bids``/``asks`` map price to size."""

    __slots__ = ("_ask_prices", "_bid_prices", "asks", "bids")

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self._bid_prices: list[float] = []  # ascending; best bid last
        self._ask_prices: list[float] = []  # ascending; best ask first

    def set_level(self, side: str, price: float, size: float) -> None:
        """The absolute size at ``price`` (0 removes the level)."""
        levels, prices = (
            (self.bids, self._bid_prices) if side == "bid" else (self.asks, self._ask_prices)
        )
        if size:
            if price not in levels:
                bisect.insort(prices, price)
            levels[price] = size
        elif price in levels:
            del levels[price]
            del prices[bisect.bisect_left(prices, price)]

    def clear(self, side: str | None = None) -> None:
        if side in (None, "bid"):
            self.bids.clear()
            self._bid_prices.clear()
        if side in (None, "ask"):
            self.asks.clear()
            self._ask_prices.clear()

    def best_bid(self) -> Level | None:
        if not self._bid_prices:
            return None
        price = self._bid_prices[-1]
        return price, self.bids[price]

    def best_ask(self) -> Level | None:
        if not self._ask_prices:
            return None
        price = self._ask_prices[0]
        return price, self.asks[price]

    def top(self, levels: int) -> tuple[list[Level], list[Level]]:
        """The best ``levels`` bids (highest first) and asks (lowest first)."""
        bids = [(p, self.bids[p]) for p in reversed(self._bid_prices[-levels:])]
        asks = [(p, self.asks[p]) for p in self._ask_prices[:levels]]
        return bids, asks

    @property
    def crossed(self) -> bool:
        bid, ask = self.best_bid(), self.best_ask()
        return bid is not None and ask is not None and bid[0] >= ask[0]

    def __len__(self) -> int:
        return len(self.bids) + len(self.asks)


@dataclass
class BookChange:
    """What applying one depth message did to a book."""

    applied: bool
    valid: bool
    update_id: int | None = None
    changed: list[tuple[str, float, float]] = field(default_factory=list)
    gap: dict[str, Any] | None = None
    rejected: int = 0  # levels refused (negative size, non-finite price)


def _acceptable(level: DepthLevel) -> bool:
    price, size = level.price, level.volume
    return (
        isinstance(price, int | float)
        and isinstance(size, int | float)
        and math.isfinite(price)
        and math.isfinite(size)
        and size >= 0
    )


def _apply(book: OrderBook, update: DepthUpdate, change: BookChange) -> None:
    for level in update.levels:
        if level.side not in ("bid", "ask"):
            continue
        if not _acceptable(level):
            change.rejected += 1
            continue
        book.set_level(level.side, level.price, level.volume)
        change.changed.append((level.side, level.price, level.volume))


class BinanceBook:
    """One Binance instrument's book from a snapshot and ``depthUpdate`` diffs."""

    def __init__(self, symbol: str, *, futures: bool = False, buffer: int = 10_000) -> None:
        self.symbol = symbol
        self.futures = futures
        self.book = OrderBook()
        self.valid = False
        self.last_id: int | None = None  # u of the last diff applied (or the snapshot's L)
        self._synced = False  # a diff has been applied since the snapshot
        self._waiting: deque[DepthUpdate] = deque(maxlen=buffer)

    def apply(self, update: DepthUpdate) -> list[BookChange]:
        """Apply a snapshot or diff; a snapshot may also apply diffs that waited for it."""
        if update.snapshot:
            return self._snapshot(update)
        if self.last_id is None:
            self._waiting.append(update)
            return [BookChange(False, False, update.last_id)]
        return [self._diff(update)]

    def _snapshot(self, update: DepthUpdate) -> list[BookChange]:
        self.book.clear()
        change = BookChange(True, True, update.last_id)
        _apply(self.book, update, change)
        self.last_id, self.valid, self._synced = update.last_id, True, False
        changes = [change]
        waiting, self._waiting = list(self._waiting), deque(maxlen=self._waiting.maxlen)
        for diff in waiting:
            if diff.last_id is not None and diff.last_id >= update.last_id:
                changes.append(self._diff(diff))  # _diff drops the stale ones by the rules
        return changes

    def _diff(self, update: DepthUpdate) -> BookChange:
        first, last = update.first_id, update.last_id
        if first is None or last is None:
            return BookChange(False, self.valid, last)
        if not self.valid:
            return BookChange(False, False, last)  # waiting for the next snapshot
        expected = self.last_id
        if not self._synced:
            if last < expected or (last == expected and not self.futures):
                return BookChange(False, True, last)  # older than the snapshot
            bridges = first <= expected <= last if self.futures else first <= expected + 1 <= last
        elif self.futures:
            bridges = update.prev_id == expected
        else:
            if last <= expected:
                return BookChange(False, True, last)  # a repeat of what was applied
            bridges = first == expected + 1
        if not bridges:
            self.valid = False
            gap = {
                "kind": "book",
                "symbol": self.symbol,
                "expected": expected + (0 if self.futures and self._synced else 1),
                "received": update.prev_id if self.futures and self._synced else first,
                "last_applied": expected,
            }
            return BookChange(False, False, last, gap=gap)
        change = BookChange(True, True, last)
        _apply(self.book, update, change)
        self.last_id, self._synced = last, True
        return change


class ProjectXBook:
    """One ProjectX contract's book from ``GatewayDepth`` levels (no sequence numbers: always
    valid once it has levels)."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.book = OrderBook()
        self.valid = True
        self.unknown_types = 0

    def apply(self, update: DepthUpdate) -> list[BookChange]:
        change = BookChange(True, True)
        for level in update.levels:
            kind = level.type
            if kind == DOM_RESET:
                self.book.clear()
                change.changed.append(("reset", level.price, 0.0))
            elif kind in _DOM_SIDE:
                if not _acceptable(level):
                    change.rejected += 1
                    continue
                side = _DOM_SIDE[kind]
                self.book.set_level(side, level.price, level.volume)
                change.changed.append((side, level.price, level.volume))
            elif kind != DOM_TRADE and kind not in DOM_IGNORED:
                self.unknown_types += 1
                change.rejected += 1
        return [change]
