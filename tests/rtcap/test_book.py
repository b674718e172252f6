"""Order books rebuilt from depth: checked against the exchange's own top of book on the real
Binance capture, the documented sequencing rules, ProjectX DOM types, and properties."""

import gzip
import itertools

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from rtcap.book import BinanceBook, OrderBook, ProjectXBook
from rtcap.codecs import BinanceCodec
from rtcap.models import DepthLevel, DepthUpdate, Frame


def test_the_rebuilt_book_matches_every_book_ticker_of_the_same_update(
    binance_capture, binance_counts
):
    """For every bookTicker whose update id ``u`` is the last id of an applied diff (in either
    order on the wire), the book's best bid/ask right after that diff equal the ticker's."""
    codec, book = BinanceCodec(), BinanceBook("ETHUSDT")
    tops, tickers, gaps = {}, {}, []
    with gzip.open(binance_capture, "rb") as lines:
        for seq, line in enumerate(lines):
            stamp, _, payload = line.rstrip(b"\n").partition(b" ")
            data = orjson.loads(payload)
            body = data.get("data", data)
            if "u" in body and "b" in body and "e" not in body:
                tickers[body["u"]] = (
                    float(body["b"]),
                    float(body["B"]),
                    float(body["a"]),
                    float(body["A"]),
                )
            for item in codec.decode(Frame(seq, int(stamp), payload=payload)):
                if not isinstance(item, DepthUpdate):
                    continue
                for change in book.apply(item):
                    gaps += [change.gap] if change.gap else []
                    if change.applied and not item.snapshot:
                        (bid, bid_size), (ask, ask_size) = (
                            book.book.best_bid(),
                            book.book.best_ask(),
                        )
                        tops[change.update_id] = (bid, bid_size, ask, ask_size)
    pairs = sorted(set(tops) & set(tickers))
    assert len(pairs) == binance_counts["book_ticker_pairs"]
    assert [u for u in pairs if tops[u] != tickers[u]] == []
    assert gaps == [] and book.valid and not book.book.crossed


def diff(first, last, bids=(), asks=(), prev=None):
    levels = [DepthLevel(p, s, "bid") for p, s in bids] + [DepthLevel(p, s, "ask") for p, s in asks]
    return DepthUpdate("X", levels, None, 0, 0, first, last, prev_id=prev)


def snapshot(last, bids, asks):
    levels = [DepthLevel(p, s, "bid") for p, s in bids] + [DepthLevel(p, s, "ask") for p, s in asks]
    return DepthUpdate("X", levels, None, 0, 0, None, last, snapshot=True)


def test_spot_sequencing_stale_bridge_gap_and_resync():
    book = BinanceBook("X")
    early = book.apply(diff(95, 99, bids=[(9.0, 1.0)]))  # before any snapshot: waits
    assert early[0].applied is False and not book.valid
    changes = book.apply(snapshot(100, [(10.0, 1.0)], [(11.0, 2.0)]))
    assert [c.applied for c in changes] == [True]  # the early diff was older than L: dropped
    assert book.apply(diff(90, 100, bids=[(10.0, 9.0)]))[0].applied is False  # u <= L: stale
    (bridge,) = book.apply(diff(99, 103, bids=[(10.0, 3.0)]))  # U <= L+1 <= u
    assert bridge.applied and book.book.best_bid() == (10.0, 3.0)
    (nxt,) = book.apply(diff(104, 106, asks=[(11.0, 0.0), (11.5, 4.0)]))
    assert nxt.applied and book.book.best_ask() == (11.5, 4.0)
    (gap,) = book.apply(diff(108, 110, bids=[(10.5, 1.0)]))  # 107 never came
    assert gap.gap == {
        "kind": "book",
        "symbol": "X",
        "expected": 107,
        "received": 108,
        "missing": 1,
        "last_applied": 106,
    }
    assert not book.valid and book.book.best_bid() == (10.0, 3.0)  # kept, but invalid
    assert book.apply(diff(111, 112, bids=[(1.0, 1.0)]))[0].applied is False
    book.apply(snapshot(200, [(20.0, 1.0)], [(21.0, 1.0)]))
    assert book.valid and book.book.top(5) == ([(20.0, 1.0)], [(21.0, 1.0)])


def test_diffs_waiting_for_the_snapshot_are_applied_after_it():
    book = BinanceBook("X")
    book.apply(diff(99, 101, bids=[(10.0, 5.0)]))
    book.apply(diff(102, 104, asks=[(12.0, 1.0)]))
    changes = book.apply(snapshot(100, [(10.0, 1.0)], [(11.0, 2.0)]))
    assert [c.applied for c in changes] == [True, True, True]
    assert book.book.best_bid() == (10.0, 5.0) and book.book.top(2)[1] == [(11.0, 2.0), (12.0, 1.0)]


def test_futures_sequencing_follows_pu():
    book = BinanceBook("X", futures=True)
    book.apply(snapshot(100, [(10.0, 1.0)], [(11.0, 1.0)]))
    assert book.apply(diff(98, 100, prev=97))[0].applied  # U <= L <= u
    assert book.apply(diff(101, 105, bids=[(10.0, 2.0)], prev=100))[0].applied
    (gap,) = book.apply(diff(107, 109, prev=106))  # pu must be 105
    assert gap.gap["kind"] == "book" and gap.gap["received"] == 106 and not book.valid


def test_projectx_dom_types_reset_and_bad_levels(kernel_path):
    book = ProjectXBook("MNQ")

    def update(*levels):
        return DepthUpdate("MNQ", [DepthLevel(p, v, "x", t) for t, p, v in levels], None, 0, 0)

    book.apply(update((2, 100.0, 5), (1, 100.5, 3), (4, 100.25, 2), (3, 100.75, 7)))
    assert book.book.best_bid() == (100.25, 2) and book.book.best_ask() == (100.5, 3)
    book.apply(update((5, 100.5, 1), (7, 99.0, 1), (8, 101.0, 1), (11, 100.5, 1)))  # no levels
    assert len(book.book) == 4
    (change,) = book.apply(update((1, 100.5, 0), (2, 100.0, -1), (2, float("nan"), 1), (42, 1, 1)))
    assert change.rejected == 3 and book.unknown_types == 1
    assert book.book.best_ask() == (100.75, 7)
    (change,) = book.apply(update((6, 0.0, 0), (9, 99.75, 4), (10, 100.0, 6)))  # reset, bests
    assert change.changed == [("reset", 0.0, 0.0), ("bid", 99.75, 4), ("ask", 100.0, 6)]
    assert book.book.top(5) == ([(99.75, 4)], [(100.0, 6)])
    book.apply(update((2, 100.5, 1)))  # a crossed book is kept as sent, and flagged
    assert book.book.crossed


LEVEL = st.tuples(st.sampled_from(["bid", "ask"]), st.integers(1, 40), st.integers(0, 5))


@settings(max_examples=200, deadline=None)
@given(
    diffs=st.lists(st.lists(LEVEL, max_size=6), min_size=1, max_size=25),
    cuts=st.lists(st.integers(1, 24), max_size=6),
)
def test_one_batch_or_many_give_the_same_book(diffs, cuts):
    """Diffs applied one by one, or merged into batches (U of the first, u of the last, levels
    in order), leave the same book."""

    def as_update(first, last, levels):
        return DepthUpdate(
            "X",
            [DepthLevel(float(p), float(s), side) for side, p, s in levels],
            None,
            0,
            0,
            first,
            last,
        )

    one = BinanceBook("X")
    many = BinanceBook("X")
    for book in (one, many):
        book.apply(snapshot(0, [(1.0, 1.0)], [(50.0, 1.0)]))
    for index, levels in enumerate(diffs, start=1):
        one.apply(as_update(index, index, levels))
    bounds = sorted({c for c in cuts if c < len(diffs)} | {0, len(diffs)})
    for start, end in itertools.pairwise(bounds):
        merged = [level for levels in diffs[start:end] for level in levels]
        many.apply(as_update(start + 1, end, merged))
    assert one.valid and many.valid
    assert one.book.bids == many.book.bids and one.book.asks == many.book.asks
    assert one.book.top(100) == many.book.top(100)


@settings(max_examples=200, deadline=None)
@given(count=st.integers(3, 30), data=st.data())
def test_a_dropped_diff_is_always_detected(count, data):
    spans, last = [], 10
    for _ in range(count):
        width = data.draw(st.integers(1, 4))
        spans.append((last + 1, last + width))
        last += width
    dropped = data.draw(st.integers(1, count - 1))  # any but the bridging first one
    book = BinanceBook("X")
    book.apply(snapshot(10, [(1.0, 1.0)], [(2.0, 1.0)]))
    gaps = []
    for index, (first, last_id) in enumerate(spans):
        if index != dropped:
            gaps += [c.gap for c in book.apply(diff(first, last_id)) if c.gap]
    if dropped == count - 1:
        assert gaps == [] and book.last_id == spans[-2][1]  # a lost tail shows only later
    else:
        assert len(gaps) == 1 and gaps[0]["expected"] == spans[dropped][0]
        assert not book.valid


def test_order_book_keeps_prices_sorted_through_inserts_and_removals():
    book = OrderBook()
    for price in (5.0, 3.0, 4.0, 6.0, 1.0):
        book.set_level("bid", price, price)
        book.set_level("ask", price + 10, price)
    book.set_level("bid", 6.0, 0)
    book.set_level("ask", 11.0, 0)
    book.set_level("bid", 2.0, 0)  # removing an absent level changes nothing
    assert book.top(3) == (
        [(5.0, 5.0), (4.0, 4.0), (3.0, 3.0)],
        [(13.0, 3.0), (14.0, 4.0), (15.0, 5.0)],
    )
    assert book.best_bid() == (5.0, 5.0) and len(book) == 8
    book.clear("bid")
    assert book.best_bid() is None and book.best_ask() == (13.0, 3.0)
