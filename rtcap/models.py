"""The kernel's data model: raw capture frames, decoded market events and bars.

Every time is an ``int`` of nanoseconds since the epoch, UTC. Classes use ``slots`` so that
creating one per frame or per trade stays cheap on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass

# Frame kinds (the ``kind`` column of a capture).
TEXT = "text"
BINARY = "binary"
SENT = "sent"
OPEN = "open"
CLOSE = "close"
GAP = "gap"
ERROR = "error"
CLOCK = "clock"

DATA_KINDS = frozenset({TEXT, BINARY})


@dataclass(slots=True)
class Frame:
    """One row of a capture: exact bytes as received (or sent), with receive times.

    ``kind == "clock"`` rows carry no payload: they advance time to ``recv_ns``.
    """

    seq: int
    recv_ns: int
    mono_ns: int = 0
    conn: int = 0
    stream: str = "market"
    kind: str = TEXT
    payload: bytes = b""
    target: str | None = None
    symbol: str | None = None
    exch_ns: int | None = None


@dataclass(slots=True)
class Quote:
    """Best bid/ask (and last price when the feed sends it) for one instrument."""

    symbol: str
    bid: float | None
    ask: float | None
    last: float | None
    volume: float | None  # session cumulative on ProjectX, never a trade size
    exch_ns: int | None
    recv_ns: int
    seq: int
    bid_size: float | None = None
    ask_size: float | None = None


@dataclass(slots=True)
class Trade:
    """One print. ``side`` is the aggressor: ``"buy"``, ``"sell"`` or ``None`` when unknown."""

    symbol: str
    price: float
    volume: float
    side: str | None
    exch_ns: int | None
    recv_ns: int
    seq: int
    trade_id: int | None = None
    aggregated: bool = False  # Binance aggTrade: ids count aggregates, not prints


@dataclass(slots=True)
class DepthLevel:
    """One changed price level; ``volume`` is the new absolute size (0 removes the level)."""

    price: float
    volume: float
    side: str  # "bid", "ask", "trade", "reset", or "other"
    type: int | None = None


@dataclass(slots=True)
class DepthUpdate:
    """A batch of order-book level changes for one instrument.

    ``first_id``/``last_id`` carry exchange update ids where the feed has them (Binance ``U``/``u``,
    or ``lastUpdateId`` of a snapshot), for gap detection; ``prev_id`` the ``pu`` of futures
    diffs. ``snapshot`` marks a full book.
    """

    symbol: str
    levels: list[DepthLevel]
    exch_ns: int | None
    recv_ns: int
    seq: int
    first_id: int | None = None
    last_id: int | None = None
    snapshot: bool = False
    prev_id: int | None = None  # Binance USD-M futures ``pu``: the ``u`` this diff follows

    @property
    def event_ns(self) -> int:
        """Exchange time when the feed gives one, else receive time."""
        return self.recv_ns if self.exch_ns is None else self.exch_ns


@dataclass(slots=True)
class Bar:
    """OHLCV for one bucket ``[start_ns, end_ns)`` of one timeframe.

    ``trades`` counts the prints folded in; ``gap`` is set when a disconnect overlapped the bar;
    ``flat`` marks a bar made for a bucket with no trades (O=H=L=C=previous close, volume 0).
    """

    timeframe: str
    start_ns: int
    end_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: float = 0
    trades: int = 0
    gap: bool = False
    flat: bool = False


MarketEvent = Quote | Trade | DepthUpdate
