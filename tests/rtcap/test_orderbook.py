"""Order books in the pipeline and the SDK-style face: ORDERBOOK_UPDATE events (one per frame
and instrument), determinism under any batching and clock interleaving, bad levels counted as
ERROR events, the coherent simulated book, and ``features=["orderbook"]`` live and in replay."""

import gzip
import itertools

import polars as pl
import pytest
from helpers import event_signatures, write_capture
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtcap import EventType, ListSource, TradingSuite
from rtcap.codecs import projectx
from rtcap.models import Frame
from rtcap.pipeline import Pipeline
from rtcap.replay.source import Replay
from rtcap.simulator import MarketSimulator

CONTRACT = "CON.F.US.MNQ.Z25"
T0 = 1_756_821_600_000_000_000


def depth_record(*levels) -> bytes:
    return projectx.encode_depth(
        CONTRACT,
        [
            {"timestamp": "2025-09-02T14:00:00Z", "type": t, "price": p, "volume": v}
            for t, p, v in levels
        ],
    )


def sim_frames(seconds=240):
    return list(MarketSimulator(11, ("MNQ", "ES")).frames(duration_s=seconds))


def binance_frames(path, limit=4000):
    with gzip.open(path, "rb") as lines:
        return [
            Frame(seq, int(stamp), payload=payload)
            for seq, (stamp, _, payload) in enumerate(
                line.rstrip(b"\n").partition(b" ") for line in itertools.islice(lines, limit)
            )
        ]


def test_one_orderbook_update_per_frame_and_instrument():
    payload = depth_record((2, 100.0, 5), (1, 100.25, 3)) + depth_record((4, 100.0, 7))
    pipeline = Pipeline(["MNQ"], ["1min"], codec="projectx", books=True)
    events = pipeline.feed(Frame(0, T0, payload=payload))
    (update,) = [e for e in events if e.type is EventType.ORDERBOOK_UPDATE]
    assert update.instrument == "MNQ" and update.timestamp == T0
    data = update.data
    assert (data["best_bid"], data["best_bid_size"], data["best_ask"], data["best_ask_size"]) == (
        100.0,
        7,
        100.25,
        3,
    )
    assert data["spread"] == 0.25 and data["valid"] and not data["crossed"]
    assert data["changes"] == [("bid", 100.0, 5), ("ask", 100.25, 3), ("bid", 100.0, 7)]
    depth = [e for e in events if e.type is EventType.MARKET_DEPTH_UPDATE]
    assert len(depth) == 2  # the raw levels, one event per GatewayDepth as the SDK names them


def test_without_books_depth_builds_no_book_and_no_book_events():
    pipeline = Pipeline(["MNQ"], ["1min"], codec="projectx")
    events = pipeline.feed(Frame(0, T0, payload=depth_record((2, 100.0, 5))))
    assert pipeline.instrument("MNQ").book is None
    assert [e.type for e in events] == [EventType.MARKET_DEPTH_UPDATE]


def test_bad_levels_are_counted_error_events_and_crossed_books_are_flagged():
    pipeline = Pipeline(["MNQ"], ["1min"], codec="projectx", books=True)
    frames = [
        depth_record((2, 100.0, 5), (1, 100.25, 3)),
        depth_record((2, 99.75, -4), (42, 100.0, 1), (1, 100.5, 2)),  # negative, unknown type
        depth_record((2, 100.5, 1)),  # a bid through the ask: kept as sent, flagged
    ]
    events = [e for i, p in enumerate(frames) for e in pipeline.feed(Frame(i, T0 + i, payload=p))]
    errors = [e for e in events if e.type is EventType.ERROR]
    assert len(errors) == 1 and errors[0].data["rejected"] == 2 and errors[0].data["seq"] == 1
    updates = [e.data for e in events if e.type is EventType.ORDERBOOK_UPDATE]
    assert [u["crossed"] for u in updates] == [False, False, True]
    assert updates[-1]["best_bid"] == 100.5 and updates[-1]["best_ask"] == 100.25
    state = pipeline.instrument("MNQ")
    assert state.book_errors == 2 and state.book_updates == 3


@pytest.fixture(scope="module")
def mixed_frames(binance_capture):
    return sim_frames(120), binance_frames(binance_capture, 3000)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    which=st.sampled_from([0, 1]),
    cuts=st.lists(st.integers(0, 3000), max_size=10),
    advances=st.lists(st.tuples(st.integers(0, 3000), st.floats(0, 1)), max_size=20),
)
def test_book_events_are_the_same_for_any_batching_and_clock(mixed_frames, which, cuts, advances):
    frames = mixed_frames[which][:1500]
    reference = event_signatures(Pipeline(None, ["1min"], books=True).feed_many(frames))
    assert sum(s.startswith(f"{EventType.ORDERBOOK_UPDATE}|") for s in reference) > 100
    batched, got = Pipeline(None, ["1min"], books=True), []
    bounds = sorted({0, len(frames), *(c % (len(frames) + 1) for c in cuts)})
    for lo, hi in itertools.pairwise(bounds):
        got += event_signatures(batched.feed_many(frames[lo:hi]))
    assert got == reference
    clocked, got = Pipeline(None, ["1min"], books=True), []
    plan = {}
    for position, fraction in advances:
        plan.setdefault(position % len(frames), []).append(fraction)
    for index, frame in enumerate(frames):
        previous = frames[index - 1].recv_ns if index else frame.recv_ns
        for fraction in sorted(plan.get(index, [])):
            got += event_signatures(
                clocked.advance_to(previous + int((frame.recv_ns - previous) * fraction))
            )
        got += event_signatures(clocked.feed(frame))
    assert got == reference


def test_the_simulated_book_is_coherent_with_quotes_and_trades():
    """Never crossed; right after a quote its bid/ask are the book's touch; the first print
    after a quote trades at or through that touch; Resets come and the book survives them."""
    pipeline = Pipeline(None, ["1min"], codec="projectx", books=True)
    quote, fresh, resets, updates, checked, prints = {}, {}, 0, 0, 0, 0
    for frame in sim_frames(600):
        resets += frame.target == "GatewayDepth" and b'"type":6' in frame.payload
        for event in pipeline.feed(frame):
            symbol, data = event.instrument, event.data
            if event.type is EventType.QUOTE_UPDATE:
                quote[symbol], fresh[symbol] = (data["bid"], data["ask"]), True
            elif event.type is EventType.TRADE_TICK and symbol in quote:
                if fresh[symbol]:
                    bid, ask = quote[symbol]
                    assert data["price"] >= ask if data["side"] == "buy" else data["price"] <= bid
                    prints += 1
                fresh[symbol] = False
            elif event.type is EventType.ORDERBOOK_UPDATE:
                updates += 1
                assert not data["crossed"] and data["best_bid"] < data["best_ask"]
                if fresh.get(symbol):
                    assert (data["best_bid"], data["best_ask"]) == quote[symbol]
                    checked += 1
    assert resets >= 2 * 5 and updates > 1000 and checked > 300 and prints > 300
    for state in pipeline.instruments.values():
        assert state.book_errors == 0 and 10 <= len(state.book.book) <= 22


async def face_answers(suite, symbol):
    book = suite[symbol].orderbook
    return {
        "top": await book.get_best_bid_ask(),
        "spread": await book.get_bid_ask_spread(),
        "bids": await book.get_orderbook_bids(5),
        "asks": await book.get_orderbook_asks(5),
        "snapshot": await book.get_orderbook_snapshot(3),
        "imbalance": await book.get_market_imbalance(5),
        "depth": await book.get_orderbook_depth(1.0),
        "trades": await book.get_recent_trades(10),
        "delta": await book.get_cumulative_delta(5),
        "profile": await book.get_volume_profile(5, 10),
        "stats": await book.get_stats(),
    }


async def test_features_orderbook_gives_the_sdk_methods_identically_live_and_in_replay(tmp_path):
    frames = sim_frames(180)
    updates = []
    live = await TradingSuite.create(
        ["MNQ", "ES"], ["1min"], source=ListSource(frames), features=["orderbook"]
    )
    await live["MNQ"].on(EventType.ORDERBOOK_UPDATE, updates.append)
    await live.wait_until_done(timeout=30)
    answers = await face_answers(live, "MNQ")

    top, bids, asks = answers["top"], answers["bids"], answers["asks"]
    assert bids.columns == ["price", "volume", "timestamp"] and bids.schema["volume"] == pl.Int64
    assert bids["price"].to_list() == sorted(bids["price"].to_list(), reverse=True)
    assert asks["price"].to_list() == sorted(asks["price"].to_list())
    assert (top["bid"], top["ask"]) == (bids["price"][0], asks["price"][0])
    assert top["spread"] == answers["spread"] == pytest.approx(0.25)
    assert top["mid_price"] == pytest.approx((top["bid"] + top["ask"]) / 2)
    snapshot = answers["snapshot"]
    assert [b["price"] for b in snapshot["bids"]] == bids["price"].to_list()[:3]
    assert snapshot["total_bid_volume"] == sum(bids["volume"].to_list()[:3])
    total = snapshot["total_bid_volume"] + snapshot["total_ask_volume"]
    expected = (snapshot["total_bid_volume"] - snapshot["total_ask_volume"]) / total
    assert snapshot["imbalance"] == pytest.approx(expected) and snapshot["valid"]
    assert answers["imbalance"]["bid_liquidity"] == float(sum(bids["volume"]))
    depth = answers["depth"]  # MNQ ticks 0.25: four ticks behind the touch, and the touch
    assert depth["bid_levels"] <= 5 and depth["bid_volume"] > 0
    trades = answers["trades"]
    assert len(trades) == 10
    assert [t["timestamp"] for t in trades] == sorted(t["timestamp"] for t in trades)
    assert all(t["best_bid_at_trade"] < t["best_ask_at_trade"] for t in trades)
    delta = answers["delta"]
    assert delta["cumulative_delta"] == delta["buy_volume"] - delta["sell_volume"]
    profile = answers["profile"]
    assert sum(profile["volumes"]) == profile["total_volume"] == delta["total_volume"]
    assert profile["value_area_low"] <= profile["poc"] <= profile["value_area_high"]
    assert answers["stats"]["updates"] == len(updates) > 100

    write_capture(tmp_path / "cap", frames).close()
    replayed = await TradingSuite.create(
        ["MNQ", "ES"],
        ["1min"],
        source=Replay(tmp_path / "cap", 50.0),
        features=["orderbook"],
    )
    await replayed.wait_until_done(timeout=60)
    again = await face_answers(replayed, "MNQ")
    for key, value in answers.items():
        if isinstance(value, pl.DataFrame):
            assert value.equals(again[key]), key
        else:
            assert value == again[key], key
    with pytest.raises(ValueError, match="unknown feature"):
        await TradingSuite.create(["MNQ"], source=ListSource([]), features=["orderbok"])
    plain = await TradingSuite.create(["MNQ"], source=ListSource([]), auto_connect=False)
    with pytest.raises(AttributeError, match='features=\\["orderbook"\\]'):
        plain["MNQ"].orderbook  # noqa: B018
