"""Bar building through the pipeline, on hand-written ProjectX frames (UTC grid)."""

import pytest
from helpers import ES, Tape, ns

from rtcap.events import EventType
from rtcap.pipeline import Pipeline


def pipeline(timeframes=("1min",), **options) -> Pipeline:
    options.setdefault("timezone", "UTC")
    options.setdefault("session_start", "00:00")
    return Pipeline(["MNQ", "ES"], list(timeframes), codec="projectx", **options)


def ohlcv(bar):
    return (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.trades)


def closed(events, timeframe="1min", instrument="MNQ"):
    return [
        e
        for e in events
        if e.type is EventType.BAR_CLOSED
        and e.data["timeframe"] == timeframe
        and e.instrument == instrument
    ]


def minute_tape() -> Tape:
    tape = Tape()
    tape.trade("2025-09-02T10:00:05Z", 100.0, 1)
    tape.trade("2025-09-02T10:00:20Z", 102.0, 2)
    tape.trade("2025-09-02T10:00:40Z", 99.0, 3)
    tape.trade("2025-09-02T10:00:59.999Z", 101.0, 1)
    tape.trade("2025-09-02T10:01:10Z", 103.0, 5)
    tape.trade("2025-09-02T10:03:30Z", 104.0, 1)
    return tape


def test_bar_closes_on_a_later_trade_stamped_with_its_boundary():
    events = pipeline().feed_many(minute_tape().frames)
    bars = closed(events)
    assert [ohlcv(e.data["bar"]) for e in bars] == [
        (100.0, 102.0, 99.0, 101.0, 7, 4),
        (103.0, 103.0, 103.0, 103.0, 5, 1),
    ]
    assert [e.timestamp for e in bars] == [ns("2025-09-02T10:01:00Z"), ns("2025-09-02T10:02:00Z")]
    assert bars[0].data["bar_time"].isoformat() == "2025-09-02T10:00:00+00:00"
    assert bars[0].data["data"]["trades"] == 4


def test_new_bar_fires_on_open_with_the_sdk_payload():
    events = pipeline().feed_many(minute_tape().frames)
    opened = [e for e in events if e.type is EventType.NEW_BAR]
    assert [e.data["bar_time"].strftime("%H:%M") for e in opened] == ["10:00", "10:01", "10:03"]
    first = opened[0]
    assert set(first.data) == {"timeframe", "bar_time", "data"}
    assert first.data["data"] == {
        "timestamp": first.data["bar_time"],
        "open": 100.0,
        "high": 100.0,
        "low": 100.0,
        "close": 100.0,
        "volume": 1,
    }
    assert first.instrument == "MNQ" and first.timestamp == ns("2025-09-02T10:00:05Z")


def test_flat_bars_fill_every_skipped_bucket():
    events = pipeline(fill_flat=True).feed_many(minute_tape().frames)
    bars = [e.data["bar"] for e in closed(events)]
    assert [b.start_ns for b in bars] == [ns(f"2025-09-02T10:0{m}:00Z") for m in (0, 1, 2)]
    assert ohlcv(bars[2]) == (103.0, 103.0, 103.0, 103.0, 0, 0) and bars[2].flat
    tape = minute_tape()
    tape.trade("2025-09-02T10:09:01Z", 105.0, 1)  # five empty buckets: 10:04 … 10:08
    events = pipeline(fill_flat=True).feed_many(tape.frames)
    flats = [e.data["bar"] for e in closed(events) if e.data["bar"].flat]
    assert [b.start_ns for b in flats] == [
        ns(f"2025-09-02T10:0{m}:00Z") for m in (2, 4, 5, 6, 7, 8)
    ]
    assert all(b.close == 104.0 for b in flats[1:])


def test_quotes_move_ohlc_only_when_asked_and_never_volume():
    tape = Tape()
    tape.trade("2025-09-02T10:00:05Z", 100.0, 2)
    tape.quote("2025-09-02T10:00:06Z", lastPrice=150.0, bestBid=149.75, bestAsk=150.0, volume=90000)
    tape.quote("2025-09-02T10:00:07Z", bestBid=90.0, bestAsk=91.0)
    tape.trade("2025-09-02T10:01:00Z", 101.0, 1)
    default = closed(pipeline().feed_many(tape.frames))[0].data["bar"]
    assert ohlcv(default) == (100.0, 100.0, 100.0, 100.0, 2, 1)
    with_quotes = closed(pipeline(price_source="trades+quotes").feed_many(tape.frames))[0].data[
        "bar"
    ]
    assert ohlcv(with_quotes) == (100.0, 150.0, 90.5, 90.5, 2, 1)


def test_quote_update_payload_falls_back_to_last_trade_price():
    tape = Tape()
    tape.trade("2025-09-02T10:00:05Z", 100.25, 2)
    tape.quote("2025-09-02T10:00:06Z", bestBid=100.0, bestAsk=100.25, volume=1234)
    (quote,) = [e for e in pipeline().feed_many(tape.frames) if e.type is EventType.QUOTE_UPDATE]
    assert {k: v for k, v in quote.data.items() if k != "timestamp"} == {
        "symbol": "MNQ",
        "bid": 100.0,
        "ask": 100.25,
        "last": 100.25,
        "volume": 1234.0,
    }
    assert quote.data["timestamp"].isoformat() == "2025-09-02T10:00:06+00:00"


def test_trade_tick_payload_names_instrument_and_side():
    tape = Tape()
    tape.trades("2025-09-02T10:00:05Z", [(6000.25, 3, 1)], contract=ES)
    (tick,) = [e for e in pipeline().feed_many(tape.frames) if e.type is EventType.TRADE_TICK]
    assert tick.instrument == "ES"
    assert (tick.data["symbol"], tick.data["price"], tick.data["volume"], tick.data["side"]) == (
        "ES",
        6000.25,
        3,
        "sell",
    )


def test_late_trades_are_dropped_and_counted_or_folded_into_the_forming_bar():
    tape = minute_tape()
    tape.trade("2025-09-02T10:00:50Z", 50.0, 9, recv="2025-09-02T10:03:31Z")
    drop = pipeline()
    drop.feed_many(tape.frames)
    assert drop.instrument("MNQ").builder.series["1min"].late_dropped == 1
    assert drop.instrument("MNQ").builder.forming("1min").volume == 1
    keep = pipeline(late_policy="current")
    keep.feed_many(tape.frames)
    forming = keep.instrument("MNQ").builder.forming("1min")
    assert (forming.low, forming.close, forming.volume) == (50.0, 50.0, 10)
    with pytest.raises(ValueError, match="late_policy"):
        pipeline(late_policy="amend")


def test_clock_closes_bars_after_grace_when_bucketing_by_exchange_time():
    p = pipeline()
    p.feed_many(minute_tape().frames[:4])
    assert p.advance_to(ns("2025-09-02T10:01:00.500Z")) == []
    (event,) = closed(p.advance_to(ns("2025-09-02T10:01:01Z")))
    assert event.timestamp == ns("2025-09-02T10:01:00Z")  # the boundary, not the clock time
    assert p.advance_to(ns("2025-09-02T10:00:00Z")) == []  # never backwards
    receive = pipeline(time_source="receive")
    receive.feed_many(minute_tape().frames[:3])
    (event,) = closed(receive.advance_to(ns("2025-09-02T10:01:00Z")))  # no grace needed
    assert event.data["bar"].close == 99.0


def test_clock_frames_advance_time_too():
    tape = minute_tape()
    tape.frames = tape.frames[:4]
    tape.clock("2025-09-02T10:01:02Z")
    assert len(closed(pipeline().feed_many(tape.frames))) == 1
    p = pipeline()
    p.feed_many(minute_tape().frames[:4])
    assert p.next_deadline() == ns("2025-09-02T10:01:01Z")
    (event,) = closed(p.advance_to(ns("2025-09-02T10:05:00Z")))
    assert event.timestamp == ns("2025-09-02T10:01:00Z")
    assert p.advance_to(ns("2025-09-02T10:06:00Z")) == []


def test_exchange_and_receive_time_sources_bucket_differently():
    tape = Tape()  # exchange 10:00:59.9, received 10:01:00.3: a boundary-straddling trade
    tape.trade("2025-09-02T10:00:59.900Z", 100.0, 1, recv="2025-09-02T10:01:00.300Z")
    for source, minute in (("auto", "10:00"), ("exchange", "10:00"), ("receive", "10:01")):
        p = pipeline(time_source=source)
        p.feed_many(tape.frames)
        start = p.instrument("MNQ").builder.forming("1min").start_ns
        assert start == ns(f"2025-09-02T{minute}:00Z"), source


def test_max_bars_keeps_a_plain_sliding_window():
    tape = Tape()
    for minute in range(6):
        tape.trade(f"2025-09-02T10:0{minute}:30Z", 100.0 + minute, 1)
    p = pipeline(max_bars=2)
    p.feed_many(tape.frames)
    bars = p.instrument("MNQ").builder.bars("1min")
    assert [b.close for b in bars] == [103.0, 104.0, 105.0]  # 2 closed + the forming one


def test_disconnect_flags_bars_that_overlap_it():
    tape = Tape()
    tape.trade("2025-09-02T10:00:05Z", 100.0, 1)
    tape.lifecycle("2025-09-02T10:00:30Z", "close", code=1006, reason="abnormal")
    tape.lifecycle("2025-09-02T10:02:10Z", "open", url="wss://example")
    tape.trade("2025-09-02T10:02:30Z", 101.0, 1)
    tape.trade("2025-09-02T10:03:05Z", 102.0, 1)
    tape.trade("2025-09-02T10:04:05Z", 103.0, 1)
    p = pipeline()
    p.feed_many(tape.frames)
    gaps = [(b.start_ns, b.gap) for b in p.instrument("MNQ").builder.bars("1min")]
    assert gaps == [
        (ns("2025-09-02T10:00:00Z"), True),
        (ns("2025-09-02T10:02:00Z"), True),
        (ns("2025-09-02T10:03:00Z"), False),
        (ns("2025-09-02T10:04:00Z"), False),
    ]


def test_four_hour_and_daily_bars_in_chicago_session_time():
    tape = Tape()
    tape.trade("2025-09-02T22:30:00Z", 100.0, 1)  # 17:30 CDT
    tape.trade("2025-09-03T01:59:00Z", 101.0, 1)  # 20:59 CDT, same 4hr bar
    tape.trade("2025-09-03T02:01:00Z", 102.0, 1)  # 21:01 CDT, next 4hr bar
    tape.trade("2025-09-03T21:59:00Z", 103.0, 1)  # 16:59 CDT next day, same daily bar
    tape.trade("2025-09-03T22:00:00Z", 104.0, 1)  # 17:00 CDT, new session
    p = Pipeline("MNQ", ["4hr", "1day"], codec="projectx")  # CME defaults: Chicago, 17:00
    events = p.feed_many(tape.frames)
    four = [e.data["bar"] for e in closed(events, "4hr")]
    assert [(e.open, e.close, e.volume) for e in four] == [
        (100.0, 101.0, 2),
        (102.0, 102.0, 1),
        (103.0, 103.0, 1),
    ]
    (day,) = [e.data["bar"] for e in closed(events, "1day")]
    assert (day.open, day.close, day.volume) == (100.0, 103.0, 4)
    assert closed(events, "1day")[0].data["bar_time"].isoformat() == "2025-09-02T17:00:00-05:00"
