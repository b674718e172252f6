"""Sequence rules, one per venue: when an exchange id says data went missing.

* Trade ids (Binance ``t``; ``a`` of ``aggTrade`` is a separate series) grow by one per symbol.
* Binance spot diff depth chains by ``U == previous u + 1``; USD-M and COIN-M futures diffs
  carry ``pu`` and chain by ``pu == previous u`` (their ids are not contiguous).
* A REST snapshot (``lastUpdateId = L``) starts a book, not a chain: the first diff to apply on
  it straddles it (spot ``U <= L + 1 <= u``, futures ``U <= L <= u``); older diffs are stale.

:func:`follows`, :func:`bridges` and :func:`is_stale` are the rules; :class:`SequenceChecker`
(the recorder, import, ``info`` and the views, through the pipeline's ``gap`` rows) and the
order book (:mod:`rtcap.book`) both ask them, so the two can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rtcap.models import DepthUpdate

# Gap kinds the checker derives from the data itself. Recorders write them down as ``gap`` rows
# for people and SQL; the pipeline re-derives them on replay and so ignores those rows.
SEQUENCE_GAP_KINDS = frozenset({"trade_id", "agg_trade_id", "depth_update_id", "book"})


def chained_by_previous_id(update: DepthUpdate) -> bool:
    """Futures diffs name the ``u`` they follow (``pu``); spot diffs do not."""
    return update.prev_id is not None


def follows(update: DepthUpdate, last_id: int) -> bool:
    """Does ``update`` continue a chain of diffs whose last ``u`` was ``last_id``?"""
    if update.prev_id is not None:
        return update.prev_id == last_id
    return update.first_id == last_id + 1


def bridges(update: DepthUpdate, snapshot_id: int) -> bool:
    """Is ``update`` the first diff to apply on a snapshot with ``lastUpdateId = snapshot_id``?"""
    first, last = update.first_id, update.last_id
    if first is None or last is None:
        return False
    target = snapshot_id if update.prev_id is not None else snapshot_id + 1
    return first <= target <= last


def is_stale(update: DepthUpdate, last_id: int, *, after_snapshot: bool) -> bool:
    """Is ``update`` entirely older than what was applied (a repeat, or from before the
    snapshot)? Futures diffs ending exactly at a snapshot's id still straddle it."""
    last = update.last_id
    if last is None:
        return True
    if after_snapshot and update.prev_id is not None:
        return last < last_id
    return last <= last_id


@dataclass(slots=True)
class SequenceGap:
    """Ids ``expected`` … ``received - 1`` never arrived (futures: the diff that should have
    followed ``expected`` names ``received`` as its predecessor)."""

    symbol: str
    kind: str  # "trade_id", "agg_trade_id" or "depth_update_id"
    expected: int
    received: int

    @property
    def missing(self) -> int:
        return max(0, self.received - self.expected)

    def as_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "kind": self.kind,
            "expected": self.expected,
            "received": self.received,
            "missing": self.missing,
        }


class SequenceChecker:
    """Tracks the last id per symbol and reports jumps; duplicates and replays are ignored.

    Diff depth is checked diff against diff: a snapshot never makes a gap (a diff that covered
    its ``lastUpdateId`` may well have arrived before it), it only tells the book where to
    start."""

    def __init__(self) -> None:
        self._next_trade: dict[tuple[str, bool], int] = {}
        self._last_depth: dict[str, int] = {}

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
        if update.last_id is None or update.snapshot:
            return None
        symbol = update.symbol
        last = self._last_depth.get(symbol)
        if last is not None and is_stale(update, last, after_snapshot=False):
            return None
        self._last_depth[symbol] = update.last_id
        if last is None or follows(update, last):
            return None
        if update.prev_id is not None:
            return SequenceGap(symbol, "depth_update_id", last, update.prev_id)
        first = update.first_id if update.first_id is not None else update.last_id
        if first <= last:
            return None  # overlaps what came before: nothing is missing
        return SequenceGap(symbol, "depth_update_id", last + 1, first)
