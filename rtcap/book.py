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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from rtcap.accel import speedups
from rtcap.models import DepthLevel, DepthUpdate
from rtcap.sequence import bridges, chained_by_previous_id, follows, is_stale

Level = tuple[float, float]  # (price, size)
INF = math.inf

# ProjectX DomType (shared/research/projectx.md §1.4)
DOM_ASK, DOM_BID, DOM_BEST_ASK, DOM_BEST_BID, DOM_TRADE, DOM_RESET = 1, 2, 3, 4, 5, 6
DOM_NEW_BEST_BID, DOM_NEW_BEST_ASK = 9, 10
DOM_IGNORED = frozenset({0, 7, 8, 11})  # unknown, session low/high, fill
# What each DOM type does to the book (OrderBook.apply_levels' ``sides``): a side, a reset, or
# nothing (None: a print or a session figure); a type not named here is refused.
_DOM_ACTION: dict[int, str | None] = {
    DOM_ASK: "ask",
    DOM_BEST_ASK: "ask",
    DOM_NEW_BEST_ASK: "ask",
    DOM_BID: "bid",
    DOM_BEST_BID: "bid",
    DOM_NEW_BEST_BID: "bid",
    DOM_RESET: "reset",
    DOM_TRADE: None,
    **dict.fromkeys(DOM_IGNORED),
}
_UNNAMED = object()  # a DOM type _DOM_ACTION does not name
# The compiled per-level loop (None: OrderBook.apply_levels runs its own, the reference)
apply_levels_compiled: Callable[..., int] | None = (
    speedups.apply_levels if speedups is not None else None
)


class OrderBook:
    """Price levels of one instrument: ``bids``/``asks`` map price to size, ``bid_ns``/``ask_ns``
    price to the event time (epoch ns) the level last changed."""

    __slots__ = ("_ask_prices", "_bid_prices", "ask_ns", "asks", "bid_ns", "bids")

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.bid_ns: dict[float, int] = {}
        self.ask_ns: dict[float, int] = {}
        self._bid_prices: list[float] = []  # ascending; best bid last
        self._ask_prices: list[float] = []  # ascending; best ask first

    def set_level(self, side: str, price: float, size: float, ns: int = 0) -> bool:
        """The absolute size at ``price`` (0 removes the level), as of event time ``ns``;
        ``False`` if the level was refused."""
        return not self.apply_levels((DepthLevel(price, size, side),), ns)

    def apply_levels(
        self,
        levels: Iterable[DepthLevel],
        ns: int,
        changed: list[tuple[str, float, float]] | None = None,
        sides: dict[Any, str | None] | None = None,
    ) -> int:
        """:meth:`set_level` for each ``bid``/``ask`` level, and :meth:`clear` for each
        ``reset`` level (others are skipped), appending ``(side, price, size)`` (``("reset",
        price, 0.0)``) to ``changed`` when given; returns how many levels were refused
        (negative or non-finite size, non-finite or non-numeric price). With ``sides``, a
        level's side is ``sides[level.type]`` instead of ``level.side``, and a level of a type
        ``sides`` does not name is refused. One loop with the lookups hoisted: this is the
        per-level hot path of every depth message (compiled in
        ``rtcap._speedups.apply_levels``, which makes the same Python operations)."""
        bids, asks, bid_ns, ask_ns = self.bids, self.asks, self.bid_ns, self.ask_ns
        bid_prices, ask_prices = self._bid_prices, self._ask_prices
        if apply_levels_compiled is not None:
            return apply_levels_compiled(
                bids, asks, bid_ns, ask_ns, bid_prices, ask_prices, levels, ns, changed, sides
            )
        rejected = 0
        insort, locate = bisect.insort, bisect.bisect_left
        for level in levels:
            side = level.side if sides is None else sides.get(level.type, _UNNAMED)
            if side == "bid":
                book, prices, stamps = bids, bid_prices, bid_ns
            elif side == "ask":
                book, prices, stamps = asks, ask_prices, ask_ns
            elif side == "reset":
                self.clear()
                if changed is not None:
                    changed.append(("reset", level.price, 0.0))
                continue
            else:
                rejected += side is _UNNAMED
                continue
            price, size = level.price, level.volume
            try:
                if size:
                    # A price already in the book was checked when it came in (NaN never is).
                    if price not in book:
                        if not (0 < size < INF and -INF < price < INF):
                            rejected += 1
                            continue
                        insort(prices, price)
                    elif not 0 < size < INF:
                        rejected += 1
                        continue
                    book[price] = size
                    stamps[price] = ns
                elif price in book:
                    del book[price]
                    del stamps[price]
                    del prices[locate(prices, price)]
            except TypeError:  # a price or size that is not a number
                rejected += 1
                continue
            if changed is not None:
                changed.append((side, price, size))
        return rejected

    def clear(self, side: str | None = None) -> None:
        if side in (None, "bid"):
            self.bids.clear()
            self.bid_ns.clear()
            self._bid_prices.clear()
        if side in (None, "ask"):
            self.asks.clear()
            self.ask_ns.clear()
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
    changed: list[tuple[str, float, float]] | None = None  # kept when asked (track=True)
    gap: dict[str, Any] | None = None
    rejected: int = 0  # levels refused (negative size, non-finite price)


class BinanceBook:
    """One Binance instrument's book from a snapshot and ``depthUpdate`` diffs. ``futures``
    chooses the USD-M rules; ``None`` decides from the first diff (futures diffs carry ``pu``)."""

    def __init__(
        self,
        symbol: str,
        *,
        futures: bool | None = None,
        buffer: int = 10_000,
        levels: bool = True,
    ) -> None:
        self.symbol = symbol
        self.futures = futures
        self.levels = levels  # False: follow the update ids only (breaks), keep no levels
        self.book = OrderBook()
        self.valid = False
        self.last_id: int | None = None  # u of the last diff applied (or the snapshot's L)
        self._synced = False  # a diff has been applied since the snapshot
        self._waiting: deque[DepthUpdate] = deque(maxlen=buffer)
        self._track = True

    def apply(self, update: DepthUpdate, track: bool = True) -> list[BookChange]:
        """Apply a snapshot or diff; a snapshot may also apply diffs that waited for it.
        ``track`` keeps the changed levels on each :class:`BookChange`."""
        self._track = track
        if update.snapshot:
            return self._snapshot(update)
        if self.last_id is None:
            self._waiting.append(update)
            return [BookChange(False, False, update.last_id)]
        return [self._diff(update)]

    def _applied(self, update: DepthUpdate, last_id: int | None) -> BookChange:
        change = BookChange(True, True, last_id, [] if self._track else None)
        if self.levels:
            change.rejected = self.book.apply_levels(update.levels, update.event_ns, change.changed)
        return change

    def _snapshot(self, update: DepthUpdate) -> list[BookChange]:
        self.book.clear()
        snapshot_id = update.last_id
        change = self._applied(update, snapshot_id)
        self.last_id, self.valid, self._synced = update.last_id, True, False
        changes = [change]
        waiting, self._waiting = list(self._waiting), deque(maxlen=self._waiting.maxlen)
        for diff in waiting:
            if diff.last_id is not None and snapshot_id is not None and diff.last_id >= snapshot_id:
                changes.append(self._diff(diff))  # _diff drops the stale ones by the rules
        return changes

    def _diff(self, update: DepthUpdate) -> BookChange:
        first, last = update.first_id, update.last_id
        if first is None or last is None:
            return BookChange(False, self.valid, last)
        if self.futures is None:
            self.futures = chained_by_previous_id(update)
        if not self.valid:
            return BookChange(False, False, last)  # waiting for the next snapshot
        expected = self.last_id
        if expected is None:  # nothing to chain to until a snapshot with an id
            return BookChange(False, self.valid, last)
        synced = self._synced
        if is_stale(update, expected, after_snapshot=not synced):
            return BookChange(False, True, last)  # older than the snapshot, or a repeat
        if not (follows(update, expected) if synced else bridges(update, expected)):
            self.valid = False
            chained = self.futures and synced  # futures: pu names the u it follows
            wanted_id = expected if chained else expected + 1
            received = update.prev_id if chained else first
            gap = {
                "kind": "book",
                "symbol": self.symbol,
                "expected": wanted_id,
                "received": received,
                "missing": max(0, received - wanted_id) if received is not None else None,
                "last_applied": expected,
            }
            return BookChange(False, False, last, gap=gap)
        change = self._applied(update, last)
        self.last_id, self._synced = last, True
        return change


class ProjectXBook:
    """One ProjectX contract's book from ``GatewayDepth`` levels (no sequence numbers: always
    valid once it has levels)."""

    def __init__(self, symbol: str, *, levels: bool = True) -> None:
        self.symbol = symbol
        self.book = OrderBook()
        self.valid = True
        self.levels = levels
        self.unknown_types = 0

    def apply(self, update: DepthUpdate, track: bool = True) -> list[BookChange]:
        changed: list[tuple[str, float, float]] | None = [] if track else None
        change = BookChange(True, True, None, changed)
        if not self.levels:
            return [change]
        levels = update.levels
        change.rejected = self.book.apply_levels(levels, update.event_ns, changed, _DOM_ACTION)
        if change.rejected:  # rare: only then is it worth telling unknown types from bad levels
            self.unknown_types += sum(level.type not in _DOM_ACTION for level in levels)
        return [change]


Book = BinanceBook | ProjectXBook


def book_for(symbol: str, update: DepthUpdate, *, levels: bool = True) -> Book:
    """The book kind a feed's depth needs: exchange update ids (or a snapshot) mean Binance's
    snapshot + diff sequencing, DOM-typed levels without ids mean ProjectX. ``levels=False``
    follows the sequence only (breaks are found; no price levels are kept)."""
    if update.snapshot or update.last_id is not None:
        return BinanceBook(symbol, levels=levels)
    return ProjectXBook(symbol, levels=levels)
