"""Order-book maintenance on the real Binance capture's depth diffs.

Applies the snapshot and every ``depthUpdate`` of the capture and reads the best bid/ask and
the top 10 levels after each, with :class:`rtcap.book.BinanceBook`, against a naive book (a
``dict`` per side and ``sorted()`` after every update) measured in the same run. The capture is
the whole one in ``../shared/data`` when present, else the slice in ``fixtures/``.

    python bench/book.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import gzip
import time
from pathlib import Path

from rtcap.book import BinanceBook, OrderBook
from rtcap.codecs import BinanceCodec
from rtcap.models import DepthUpdate, Frame

ROOT = Path(__file__).resolve().parents[1]
CAPTURES = [
    ROOT.parent / "shared" / "data" / "binance-spot" / "ethusdt_20240808.gz",
    ROOT / "fixtures" / "binance-spot" / "ethusdt_20240808_3min.gz",
]


def depth_updates(path: Path) -> list[DepthUpdate]:
    codec, updates = BinanceCodec(), []
    with gzip.open(path, "rb") as lines:
        for seq, line in enumerate(lines):
            stamp, _, payload = line.rstrip(b"\n").partition(b" ")
            if b"depth" in payload[:40] or b"lastUpdateId" in payload[:40]:
                frame = Frame(seq, int(stamp), payload=payload)
                updates += [d for d in codec.decode(frame) if isinstance(d, DepthUpdate)]
    return updates


def applied_sequence(updates: list[DepthUpdate]) -> list[DepthUpdate]:
    """The snapshot and the diffs the sequencing rules apply, in order (both books get these)."""
    book, applied = BinanceBook("ETHUSDT"), []
    for update in updates:
        changes = book.apply(update)
        if update.snapshot:
            applied.append(update)
            applied += [
                w
                for w, c in zip(book_waiting(update, updates), changes[1:], strict=False)
                if c.applied
            ]
        elif changes[0].applied:
            applied.append(update)
    return applied


def book_waiting(snapshot: DepthUpdate, updates: list[DepthUpdate]) -> list[DepthUpdate]:
    before = updates[: updates.index(snapshot)]
    return [u for u in before if not u.snapshot and u.last_id >= snapshot.last_id]


def rtcap_book(updates: list[DepthUpdate]) -> float:
    book = OrderBook()
    checksum = 0.0
    for update in updates:
        if update.snapshot:
            book.clear()
        book.apply_levels(update.levels, 0)
        bids, asks = book.top(10)
        checksum += bids[0][0] + asks[0][0] if bids and asks else 0.0
    return checksum


def naive_book(updates: list[DepthUpdate]) -> float:
    sides: dict[str, dict[float, float]] = {"bid": {}, "ask": {}}
    checksum = 0.0
    for update in updates:
        if update.snapshot:
            sides = {"bid": {}, "ask": {}}
        for level in update.levels:
            if level.volume:
                sides[level.side][level.price] = level.volume
            else:
                sides[level.side].pop(level.price, None)
        bids = sorted(sides["bid"].items(), reverse=True)[:10]
        asks = sorted(sides["ask"].items())[:10]
        checksum += bids[0][0] + asks[0][0] if bids and asks else 0.0
    return checksum


def best_of(function, updates, repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = function(updates)
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    path = next(p for p in CAPTURES if p.exists())
    updates = applied_sequence(depth_updates(path))
    levels = sum(len(u.levels) for u in updates)
    naive_s, naive_sum = best_of(naive_book, updates, args.repeat)
    ours_s, ours_sum = best_of(rtcap_book, updates, args.repeat)
    assert abs(naive_sum - ours_sum) < 1e-6, "the two books disagree"
    print(f"book maintenance on {path.name}: {len(updates):,} depth messages, {levels:,} levels")
    print(f"  naive dict + sorted() per update : {len(updates) / naive_s:12,.0f} updates/s")
    print(f"  rtcap OrderBook (bisect)         : {len(updates) / ours_s:12,.0f} updates/s")
    print(f"rtcap book vs naive: {naive_s / ours_s:.1f}x faster (target >= 3x)")


if __name__ == "__main__":
    main()
