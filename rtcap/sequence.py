"""Sequence checks on exchange ids: a jump in trade ids or depth update ids is a gap.

Binance trade ids grow by one per symbol; a diff-depth update must start right after the previous
one ends (``U == previous u + 1``), and after a snapshot with ``lastUpdateId = L`` the first update
to apply is the one with ``U <= L + 1 <= u`` (older buffered updates are skipped, not gaps).
"""

from __future__ import annotations

from dataclasses import dataclass

from rtcap.models import DepthUpdate

# Gap kinds the checker derives from the data itself. Recorders write them down as ``gap`` rows
# for people and SQL; the pipeline re-derives them on replay and so ignores those rows.
SEQUENCE_GAP_KINDS = frozenset({"trade_id", "agg_trade_id", "depth_update_id", "book"})


@dataclass(slots=True)
class SequenceGap:
    """Ids ``expected`` … ``received - 1`` never arrived."""

    symbol: str
    kind: str  # "trade_id" or "depth_update_id"
    expected: int
    received: int

    @property
    def missing(self) -> int:
        return max(0, self.received - self.expected)

    def as_dict(self) -> dict:
        return {
            "symbol": self.symbol,
            "kind": self.kind,
            "expected": self.expected,
            "received": self.received,
            "missing": self.missing,
        }


class SequenceChecker:
    """Tracks the last id per symbol and reports jumps; duplicates and replays are ignored."""

    def __init__(self) -> None:
        self._next_trade: dict[tuple[str, bool], int] = {}
        self._next_depth: dict[str, int] = {}
        self._after_snapshot: set[str] = set()

    def check_trade(
        self, symbol: str, trade_id: int, aggregated: bool = False
    ) -> SequenceGap | None:
        """Check one trade id (``aggregated`` ids, Binance ``aggTrade``, are a separate series)."""
        key = (symbol, aggregated)
        expected = self._next_trade.get(key)
        if expected is not None and trade_id < expected:
            return None  # a replay after reconnect: already seen
        self._next_trade[key] = trade_id + 1
        if expected is not None and trade_id > expected:
            kind = "agg_trade_id" if aggregated else "trade_id"
            return SequenceGap(symbol, kind, expected, trade_id)
        return None

    def check_depth(self, update: DepthUpdate) -> SequenceGap | None:
        if update.last_id is None:
            return None
        symbol = update.symbol
        if update.snapshot:
            self._next_depth[symbol] = update.last_id + 1
            self._after_snapshot.add(symbol)
            return None
        first = update.first_id if update.first_id is not None else update.last_id
        expected = self._next_depth.get(symbol)
        if expected is None:
            self._next_depth[symbol] = update.last_id + 1
            return None
        if update.last_id < expected:
            return None  # entirely older than what we have
        if symbol in self._after_snapshot:
            self._after_snapshot.discard(symbol)
            gap = first > expected
        else:
            gap = first != expected
        self._next_depth[symbol] = update.last_id + 1
        if gap and first > expected:
            return SequenceGap(symbol, "depth_update_id", expected, first)
        return None
