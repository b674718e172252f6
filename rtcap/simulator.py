"""A seeded, pure generator of a ProjectX-like futures market.

Each instrument runs its own random walk on its tick grid, switching between normal trading,
bursts (many messages, bigger moves) and quiet spells. It emits quotes, trades (a message may hold
several prints) and depth updates, encoded exactly as the gateway's market hub sends them. Time is
simulated: nothing here reads a clock, so the same seed always gives the same frames.

The market is coherent: there is one touch (best bid, best ask one tick above it) that quotes
report, prints trade at or through (a buy at the ask or above, a sell at the bid or below, the
touch following each print), and every depth message brings the book back onto: levels that the
touch has crossed are removed, the touch is sent as BestBid/BestAsk, the other changes sit behind
it, and every ``BOOK_RESET_S`` of market time a Reset is followed by the whole book. So a book
rebuilt from the depth is never crossed and its best prices are the latest quote's.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from rtcap.codecs import projectx
from rtcap.instruments import InstrumentSpec, spec_for
from rtcap.models import Frame
from rtcap.timeutil import NS, format_iso_ns, parse_iso_ns

DEFAULT_START_NS = parse_iso_ns("2025-09-02T13:30:00Z")  # 08:30 Chicago, the cash open
MS = 1_000_000

EXPIRING_SHARE = 0.25  # of prints and quotes that go to the old contract after a roll
REGIMES = {  # name: (message-rate multiplier, step scale in ticks, mean duration in s)
    "normal": (1.0, 1, 40.0),
    "burst": (6.0, 3, 6.0),
    "quiet": (0.15, 1, 20.0),
}
BOOK_RESET_S = 120  # a Reset and the full book this often (and in the first depth message)
BOOK_LEVELS = 10  # levels kept behind the touch on each side
DOM_ASK, DOM_BID, DOM_BEST_ASK, DOM_BEST_BID, DOM_RESET = 1, 2, 3, 4, 6
REGIME_NEXT = {
    "normal": (("burst", 0.35), ("quiet", 0.65)),
    "burst": (("normal", 1.0),),
    "quiet": (("normal", 1.0),),
}


@dataclass(slots=True)
class SimMessage:
    """One hub record as the gateway would push it."""

    exch_ns: int
    recv_ns: int
    instrument: str
    contract_id: str
    target: str  # GatewayQuote | GatewayTrade | GatewayDepth
    record: bytes  # SignalR record, separator included


class _Walk:
    """One instrument's market state."""

    def __init__(self, spec: InstrumentSpec, seed: int, start_ns: int, rate: float) -> None:
        self.spec = spec
        self.rng = random.Random(f"rtcap-sim:{seed}:{spec.symbol}")
        # Book sizes draw from their own stream, so the walk (prices, volumes, timing) is the
        # same with and without depth.
        self.book_rng = random.Random(f"rtcap-sim-book:{seed}:{spec.symbol}")
        self.contract_id = spec.contract_id(start_ns)
        self.next_roll_ns = spec.next_roll_ns(start_ns)
        # After a roll the old contract trades on (prints and quotes, no book) to the end of
        # the roll date's session, as expiring contracts do while volume moves to the next.
        self.expiring: str | None = None
        self.expiring_until = 0
        base = round(spec.base_price / spec.tick_size)
        # up to 400 ticks from the base, less where 400 ticks are a large part of the price
        self.price_ticks = base + self.rng.randint(-400, 400) * base // max(base, 20_000)
        self.bid_ticks = self.price_ticks  # the touch: best bid here, best ask one tick above
        self.book: dict[str, dict[int, int]] = {"bid": {}, "ask": {}}
        self.next_reset_ns = start_ns
        self.start_price = spec.price(self.price_ticks)
        self.open_ticks = self.high_ticks = self.low_ticks = self.price_ticks
        self.session_volume = 0
        self.rate = rate
        self.regime = "normal"
        self.regime_until = start_ns + self._regime_length()
        self.next_ns = start_ns + self._gap()

    def _regime_length(self) -> int:
        return int(self.rng.expovariate(1.0 / REGIMES[self.regime][2]) * NS) + NS

    def _gap(self) -> int:
        rate = self.rate * REGIMES[self.regime][0]
        return int(self.rng.expovariate(rate) * NS)

    def price(self, ticks: int) -> float:
        return self.spec.price(ticks)

    def step(self, depth: bool) -> tuple[int, str, bytes, str]:
        """Produce the message due at ``next_ns``; returns (exch_ns, target, record, contract
        id).

        Time runs exactly; stamps are floored to the millisecond, the wire's resolution, so
        busy moments put several messages on one millisecond as real feeds do.
        """
        exact = self.next_ns
        now = exact - exact % MS
        if now >= self.regime_until:
            choices = REGIME_NEXT[self.regime]
            pick, acc = self.rng.random(), 0.0
            for name, weight in choices:
                acc += weight
                if pick <= acc:
                    self.regime = name
                    break
            self.regime_until = now + self._regime_length()
        if now >= self.next_roll_ns:
            self._roll(now)
        pick = self.rng.random()
        target = (
            projectx.TRADE if pick < 0.45 else projectx.QUOTE if pick < 0.80 or not depth else None
        )
        contract = self.contract_id
        if self.expiring is not None:
            if now >= self.expiring_until:
                self.expiring = None
            elif target is not None and self.rng.random() < EXPIRING_SHARE:
                contract = self.expiring
        if target == projectx.TRADE:
            record = self._trades(now, contract)
        elif target == projectx.QUOTE:
            record = self._quote(now, contract)
        else:
            target, record = projectx.DEPTH, self._depth(now)
        self.next_ns = exact + self._gap()
        return now, target, record, contract

    def _roll(self, now: int) -> None:
        """The front contract changes (CME's calendar, :mod:`rtcap.instruments`): the next one
        takes the walk and a whole book; the old one trades on until its session ends."""
        spec = self.spec
        self.expiring = self.contract_id
        self.expiring_until = spec.session_start_ns(spec.trading_day(now) + timedelta(days=1))
        self.contract_id = spec.contract_id(now)
        self.next_roll_ns = spec.next_roll_ns(now)
        self.next_reset_ns = now

    def _move(self) -> int:
        scale = REGIMES[self.regime][1]
        move = self.rng.choice((-1, 0, 0, 1)) * self.rng.randint(1, scale)
        self.price_ticks = self.spec.keep_in_range(self.price_ticks + move)
        self.high_ticks = max(self.high_ticks, self.price_ticks)
        self.low_ticks = min(self.low_ticks, self.price_ticks)
        return move

    def _trades(self, now: int, contract: str) -> bytes:
        count = 1 if self.rng.random() < 0.7 else self.rng.randint(2, 5)
        prints = []
        for _ in range(count):
            at_ask = self.price_ticks == self.bid_ticks + 1
            move = self._move()
            side = 0 if move > 0 else 1 if move < 0 else self.rng.randint(0, 1)
            if move == 0:  # a print without a move trades at the touch it stands on
                side = 0 if at_ask else 1
            self.bid_ticks = self.price_ticks - 1 if side == 0 else self.price_ticks
            volume = min(50, int(self.rng.expovariate(0.4)) + 1)
            self.session_volume += volume
            prints.append((now, self.price(self.price_ticks), volume, side))
        return projectx.encode_trades(contract, self.spec.symbol_id, prints)

    def _quote(self, now: int, contract: str) -> bytes:
        self._move()
        bid = self.price_ticks - self.rng.randint(0, 1)
        self.bid_ticks = bid
        last = self.price(self.price_ticks)
        stamp = format_iso_ns(now)
        fields = {
            "symbol": self.spec.symbol_id,
            "symbolName": f"/{self.spec.symbol}",
            "lastPrice": last,
            "bestBid": self.price(bid),
            "bestAsk": self.price(bid + 1),
            "change": self.price(self.price_ticks - self.open_ticks),
            "changePercent": round((self.price_ticks - self.open_ticks) / self.open_ticks, 6),
            "open": self.price(self.open_ticks),
            "high": self.price(self.high_ticks),
            "low": self.price(self.low_ticks),
            "volume": self.session_volume,
            "lastUpdated": stamp,
            "timestamp": stamp,
        }
        return projectx.encode_quote(contract, fields)

    def _depth(self, now: int) -> bytes:
        stamp = format_iso_ns(now)
        levels: list[dict[str, Any]] = []

        def send(kind: int, ticks: int, size: int) -> None:
            levels.append(
                {
                    "timestamp": stamp,
                    "type": kind,
                    "price": self.price(ticks),
                    "volume": size,
                    "currentVolume": size,
                }
            )

        bids, asks = self.book["bid"], self.book["ask"]
        bid, ask = self.bid_ticks, self.bid_ticks + 1
        reset = now >= self.next_reset_ns
        if reset:
            self.next_reset_ns = now + BOOK_RESET_S * NS
            bids.clear()
            asks.clear()
            send(DOM_RESET, bid, 0)
            for offset in range(1, BOOK_LEVELS + 1):
                bids[bid - offset] = self.book_rng.randint(1, 60)
                asks[ask + offset] = self.book_rng.randint(1, 60)
        else:  # levels the touch has crossed, or that fell out of range, go
            for ticks in sorted(t for t in bids if t > bid or t < bid - BOOK_LEVELS):
                del bids[ticks]
                send(DOM_BID, ticks, 0)
            for ticks in sorted(t for t in asks if t < ask or t > ask + BOOK_LEVELS):
                del asks[ticks]
                send(DOM_ASK, ticks, 0)
        # The walk's own draws (the same as ever, so prices and volumes do not depend on the
        # book): changes behind the touch.
        for _ in range(self.rng.randint(1, 5)):
            is_bid = self.rng.random() < 0.5
            offset = self.rng.randint(0, 9) + 1
            size = 0 if self.rng.random() < 0.15 else self.rng.randint(1, 60)
            levels_of, ticks = (bids, bid - offset) if is_bid else (asks, ask + offset)
            if size:
                levels_of[ticks] = size
            elif levels_of.pop(ticks, None) is None:
                continue
            if not reset:
                send(DOM_BID if is_bid else DOM_ASK, ticks, size)
        for ticks, levels_of in ((bid, bids), (ask, asks)):
            if ticks not in levels_of:
                levels_of[ticks] = self.book_rng.randint(1, 60)
        if reset:
            for ticks in sorted((t for t in bids if t != bid), reverse=True):
                send(DOM_BID, ticks, bids[ticks])
            for ticks in sorted(t for t in asks if t != ask):
                send(DOM_ASK, ticks, asks[ticks])
        send(DOM_BEST_BID, bid, bids[bid])
        send(DOM_BEST_ASK, ask, asks[ask])
        return projectx.encode_depth(self.contract_id, levels)


class MarketSimulator:
    """Seeded market for one or more instruments, merged in exchange-time order."""

    def __init__(
        self,
        seed: int = 7,
        instruments: tuple[str, ...] | list[str] | str = ("MNQ",),
        *,
        start_ns: int = DEFAULT_START_NS,
        rate: float = 40.0,
        depth: bool = True,
        latency_ns: tuple[int, int] = (300_000, 3_000_000),
    ) -> None:
        if isinstance(instruments, str):
            instruments = [s for s in instruments.split(",") if s]
        if not instruments:
            raise ValueError("the simulator needs at least one instrument, e.g. 'MNQ'")
        if rate <= 0:
            raise ValueError(f"rate must be positive (messages per second), got {rate}")
        self.seed = seed
        self.start_ns = start_ns
        self.depth = depth
        self.specs = [spec_for(symbol) for symbol in instruments]
        per_instrument = rate / len(self.specs)
        self._walks = [_Walk(spec, seed, start_ns, per_instrument) for spec in self.specs]
        self._latency_rng = random.Random(f"rtcap-sim-latency:{seed}")
        self._latency = latency_ns

    def start_price(self, symbol: str) -> float:
        """Where ``symbol``'s walk begins (history generated for it ends there)."""
        for walk in self._walks:
            if walk.spec.symbol == symbol.upper():
                return walk.start_price
        raise KeyError(f"{symbol!r} is not simulated here")

    def set_rate(self, rate: float) -> None:
        """Change the mean message rate from the next message on (bursts, throttling)."""
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        for walk in self._walks:
            walk.rate = rate / len(self._walks)

    @property
    def contracts(self) -> dict[str, str]:
        """Instrument symbol → its front contract id now (it changes when the walk rolls)."""
        return {walk.spec.symbol: walk.contract_id for walk in self._walks}

    @property
    def expiring(self) -> dict[str, str]:
        """Instrument symbol → the contract it rolled from, while that one still trades."""
        return {w.spec.symbol: w.expiring for w in self._walks if w.expiring is not None}

    def messages(self) -> Iterator[SimMessage]:
        """The endless market, in exchange-time order (ties broken by instrument order)."""
        heap = [(walk.next_ns, index) for index, walk in enumerate(self._walks)]
        heapq.heapify(heap)
        low, high = self._latency
        last_recv = 0
        while True:
            _, index = heapq.heappop(heap)
            walk = self._walks[index]
            exch_ns, target, record, contract = walk.step(self.depth)
            # Receive times keep the stream's order, as one socket delivers it.
            last_recv = max(last_recv, exch_ns + self._latency_rng.randint(low, high))
            yield SimMessage(exch_ns, last_recv, walk.spec.symbol, contract, target, record)
            heapq.heappush(heap, (walk.next_ns, index))

    def frames(
        self,
        *,
        duration_s: float | None = None,
        max_frames: int | None = None,
        stream: str = "market",
        first_seq: int = 0,
    ) -> Iterator[Frame]:
        """Messages as captured frames (one record each), until ``duration_s`` or
        ``max_frames``."""
        if duration_s is None and max_frames is None:
            raise ValueError("give duration_s or max_frames: the simulated market never ends")
        end_ns = None if duration_s is None else self.start_ns + int(duration_s * NS)
        seq = first_seq
        for message in self.messages():
            if end_ns is not None and message.exch_ns >= end_ns:
                return
            if max_frames is not None and seq - first_seq >= max_frames:
                return
            yield Frame(
                seq,
                message.recv_ns,
                message.recv_ns - self.start_ns,
                0,
                stream,
                "text",
                message.record,
                message.target,
                message.contract_id,
                message.exch_ns,
            )
            seq += 1
