"""``suite["MNQ"].orderbook``: the ProjectX SDK's order-book methods over the pipeline's book.

The object reads the L2 book the pipeline keeps (``Pipeline(books=True)``, which
``TradingSuite.create(..., features=["orderbook"])`` turns on), so it is the same live and in a
replay. Method names and return shapes follow the SDK's ``OrderBook``; where the SDK returns a
Polars DataFrame so does this. Times are event times from the feed, never the wall clock, and
time windows (``get_cumulative_delta``, ``get_volume_profile``) end at the pipeline's *now*, so
a replay answers exactly as the live session did at the same point.

The SDK's scores that have no definition beyond its own scaling constants (liquidity, resilience,
timing-risk scores and the like) are left out rather than imitated; every number returned here
is computed from the book or the prints.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import polars as pl

from rtcap.book import BinanceBook, OrderBook
from rtcap.pipeline import InstrumentState, Pipeline, RecentTrade
from rtcap.timeutil import NS, ns_to_datetime


class OrderBookView:
    """One instrument's book, read through the SDK's method names."""

    def __init__(self, pipeline: Pipeline, symbol: str) -> None:
        if not (pipeline.books and pipeline.book_levels):
            raise ValueError(
                "this pipeline keeps no order books: create the suite with "
                'features=["orderbook"] (or Pipeline(..., books=True))'
            )
        self._pipeline = pipeline
        self.instrument = symbol

    # --- state ---------------------------------------------------------------------------

    @property
    def _state(self) -> InstrumentState:
        return self._pipeline.instrument(self.instrument)

    @property
    def _levels(self) -> OrderBook:
        book = self._state.book
        return book.book if book is not None else _EMPTY

    def _time(self, ns: int | None) -> datetime | None:
        return None if ns is None else ns_to_datetime(ns, self._state.tz)

    @property
    def is_valid(self) -> bool:
        """The book follows the exchange's update ids without a break (always true for
        ProjectX, which sends none), and has seen depth."""
        book = self._state.book
        return book is not None and book.valid

    @property
    def update_count(self) -> int:
        return self._state.book_updates

    @property
    def last_update(self) -> datetime | None:
        return self._time(self._state.book_ns)

    # --- top of book -------------------------------------------------------------------

    async def get_best_bid_ask(self) -> dict[str, Any]:
        """``{"bid", "ask", "spread", "mid_price", "timestamp"}`` (``None`` where a side is
        empty); also ``bid_size``/``ask_size``."""
        levels = self._levels
        bid, ask = levels.best_bid(), levels.best_ask()
        return {
            "bid": bid[0] if bid else None,
            "ask": ask[0] if ask else None,
            "bid_size": bid[1] if bid else None,
            "ask_size": ask[1] if ask else None,
            "spread": ask[0] - bid[0] if bid and ask else None,
            "mid_price": (ask[0] + bid[0]) / 2 if bid and ask else None,
            "timestamp": self.last_update,
        }

    async def get_bid_ask_spread(self) -> float | None:
        spread = (await self.get_best_bid_ask())["spread"]
        return None if spread is None else float(spread)

    # --- levels ------------------------------------------------------------------------

    def _side_frame(self, side: str, levels: int) -> pl.DataFrame:
        book = self._levels
        bids, asks = book.top(levels)
        rows, stamps = (bids, book.bid_ns) if side == "bid" else (asks, book.ask_ns)
        tz = self._state.tz.key
        return pl.DataFrame(
            {
                "price": [p for p, _ in rows],
                "volume": [s for _, s in rows],
                "timestamp": [self._time(stamps.get(p)) for p, _ in rows],
            },
            schema={
                "price": pl.Float64,
                "volume": self._volume_type,
                "timestamp": pl.Datetime("us", time_zone=tz),
            },
        )

    @property
    def _volume_type(self) -> type[pl.DataType]:
        # Futures trade whole contracts (the SDK's Int64); crypto quantities are fractional.
        return pl.Float64 if isinstance(self._state.book, BinanceBook) else pl.Int64

    async def get_orderbook_bids(self, levels: int = 10) -> pl.DataFrame:
        """The best ``levels`` bids, highest first: ``price``, ``volume``, ``timestamp``."""
        return self._side_frame("bid", levels)

    async def get_orderbook_asks(self, levels: int = 10) -> pl.DataFrame:
        """The best ``levels`` asks, lowest first: ``price``, ``volume``, ``timestamp``."""
        return self._side_frame("ask", levels)

    async def get_orderbook_snapshot(self, levels: int = 10) -> dict[str, Any]:
        """The SDK's snapshot dict: best prices, ``bids``/``asks`` as lists of
        ``{"price", "volume", "timestamp"}``, totals, counts and the imbalance
        ``(bid − ask) / (bid + ask)`` of the listed volume; plus ``valid``."""
        top = await self.get_best_bid_ask()
        bids = (await self.get_orderbook_bids(levels)).to_dicts()
        asks = (await self.get_orderbook_asks(levels)).to_dicts()
        bid_volume = sum(row["volume"] for row in bids)
        ask_volume = sum(row["volume"] for row in asks)
        total = bid_volume + ask_volume
        return {
            "instrument": self.instrument,
            "timestamp": top["timestamp"],
            "best_bid": top["bid"],
            "best_ask": top["ask"],
            "spread": top["spread"],
            "mid_price": top["mid_price"],
            "bids": bids,
            "asks": asks,
            "total_bid_volume": bid_volume,
            "total_ask_volume": ask_volume,
            "bid_count": len(bids),
            "ask_count": len(asks),
            "imbalance": (bid_volume - ask_volume) / total if total else None,
            "valid": self.is_valid,
        }

    async def get_market_imbalance(self, levels: int = 10) -> dict[str, Any]:
        """Liquidity on each side within the best ``levels`` and the depth imbalance."""
        snapshot = await self.get_orderbook_snapshot(levels)
        bid, ask = snapshot["total_bid_volume"], snapshot["total_ask_volume"]
        return {
            "bid_liquidity": float(bid),
            "ask_liquidity": float(ask),
            "total_liquidity": float(bid + ask),
            "depth_imbalance": snapshot["imbalance"] or 0.0,
            "bid_levels": snapshot["bid_count"],
            "ask_levels": snapshot["ask_count"],
            "spread": snapshot["spread"],
            "timestamp": snapshot["timestamp"],
        }

    async def get_orderbook_depth(self, price_range: float) -> dict[str, Any]:
        """Volume resting within ``price_range`` of the touch on each side, and what buying
        (selling) all of it would average."""
        book = self._levels
        bid, ask = book.best_bid(), book.best_ask()
        bids = [(p, s) for p, s in book.bids.items() if bid and p >= bid[0] - price_range]
        asks = [(p, s) for p, s in book.asks.items() if ask and p <= ask[0] + price_range]
        bid_volume = sum(s for _, s in bids)
        ask_volume = sum(s for _, s in asks)
        return {
            "price_range": price_range,
            "best_bid": bid[0] if bid else None,
            "best_ask": ask[0] if ask else None,
            "bid_volume": bid_volume,
            "ask_volume": ask_volume,
            "bid_levels": len(bids),
            "ask_levels": len(asks),
            "avg_buy_price": sum(p * s for p, s in asks) / ask_volume if ask_volume else None,
            "avg_sell_price": sum(p * s for p, s in bids) / bid_volume if bid_volume else None,
            "timestamp": self.last_update,
        }

    # --- prints ------------------------------------------------------------------------

    def _trades_since(self, minutes: float) -> list[RecentTrade]:
        trades = self._state.recent_trades or ()
        now = self._pipeline.now_ns
        if now is None:
            return []
        cutoff = now - int(minutes * 60 * NS)
        return [t for t in trades if t[0] >= cutoff]

    async def get_recent_trades(self, count: int = 100) -> list[dict[str, Any]]:
        """The latest ``count`` prints, oldest first, each with the touch it traded against."""
        trades = list(self._state.recent_trades or ())[-count:] if count > 0 else []
        out = []
        for ns, price, volume, side, bid, ask in trades:
            out.append(
                {
                    "price": price,
                    "volume": volume,
                    "timestamp": self._time(ns),
                    "side": side,
                    "best_bid_at_trade": bid,
                    "best_ask_at_trade": ask,
                    "spread_at_trade": ask - bid if ask is not None and bid is not None else None,
                    "mid_price_at_trade": (
                        (ask + bid) / 2 if ask is not None and bid is not None else None
                    ),
                }
            )
        return out

    async def get_cumulative_delta(self, time_window_minutes: float = 60) -> dict[str, Any]:
        """Buy minus sell volume over the window (aggressor side; unknown sides are neutral)."""
        buy = sell = neutral = 0.0
        for _, _, volume, side, _, _ in self._trades_since(time_window_minutes):
            if side == "buy":
                buy += volume
            elif side == "sell":
                sell += volume
            else:
                neutral += volume
        return {
            "cumulative_delta": buy - sell,
            "buy_volume": buy,
            "sell_volume": sell,
            "neutral_volume": neutral,
            "total_volume": buy + sell + neutral,
            "period_minutes": time_window_minutes,
        }

    async def get_volume_profile(
        self, time_window_minutes: float = 60, price_bins: int = 20
    ) -> dict[str, Any]:
        """Traded volume in ``price_bins`` equal price bins over the window: bin centres,
        volumes, the point of control and the 70% value area around it."""
        trades = self._trades_since(time_window_minutes)
        empty: dict[str, Any] = {
            "price_bins": [],
            "volumes": [],
            "poc": None,
            "value_area_high": None,
            "value_area_low": None,
            "total_volume": 0,
            "time_window_minutes": time_window_minutes,
        }
        if not trades:
            return empty
        prices = [t[1] for t in trades]
        low, high = min(prices), max(prices)
        total = sum(t[2] for t in trades)
        if high == low:
            return {
                **empty,
                "price_bins": [low],
                "volumes": [total],
                "poc": low,
                "value_area_high": low,
                "value_area_low": low,
                "total_volume": total,
            }
        width = (high - low) / price_bins
        volumes = [0.0] * price_bins
        for _, price, volume, *_ in trades:
            volumes[min(price_bins - 1, math.floor((price - low) / width))] += volume
        centres = [low + width * (i + 0.5) for i in range(price_bins)]
        poc = max(range(price_bins), key=lambda i: (volumes[i], -i))
        lo = hi = poc
        area = volumes[poc]
        while area < 0.7 * total:  # grow toward the heavier neighbour, as the SDK does
            below = volumes[lo - 1] if lo > 0 else -1.0
            above = volumes[hi + 1] if hi < price_bins - 1 else -1.0
            if above >= below:
                hi += 1
                area += above
            else:
                lo -= 1
                area += below
        return {
            "price_bins": centres,
            "volumes": volumes,
            "poc": centres[poc],
            "value_area_high": centres[hi],
            "value_area_low": centres[lo],
            "total_volume": total,
            "time_window_minutes": time_window_minutes,
        }

    async def get_stats(self) -> dict[str, Any]:
        state = self._state
        return {
            "instrument": self.instrument,
            "valid": self.is_valid,
            "updates": state.book_updates,
            "gaps": state.book_gaps,
            "refused_levels": state.book_errors,
            "bid_levels": len(self._levels.bids),
            "ask_levels": len(self._levels.asks),
            "last_update": self.last_update,
        }

    def __repr__(self) -> str:
        return f"OrderBookView({self.instrument!r})"


_EMPTY = OrderBook()
