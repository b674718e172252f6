import polars as pl
import pytest
from helpers import Tape, ns

from rtcap.dataview import InstrumentData
from rtcap.events import EventType
from rtcap.pipeline import Pipeline


def pipe(**options):
    return Pipeline(["MNQ"], ["1min", "5min"], codec="projectx", timezone="UTC", **options)


def test_lifecycle_rows_become_connection_events():
    tape = Tape()
    tape.lifecycle("2025-09-02T10:00:00Z", "open", url="wss://gw/hubs/market")
    tape.lifecycle("2025-09-02T10:00:30Z", "close", code=1006, reason="abnormal closure")
    tape.lifecycle("2025-09-02T10:00:31Z", "error", event="reconnecting", attempt=1)
    tape.lifecycle("2025-09-02T10:00:35Z", "gap", from_ns=1, to_ns=2)
    tape.lifecycle("2025-09-02T10:00:36Z", "error", reason="DNS failure")
    tape.lifecycle("2025-09-02T10:00:37Z", "sent")
    p = pipe()
    events = p.feed_many(tape.frames)
    assert [e.type for e in events] == [
        EventType.CONNECTED,
        EventType.DISCONNECTED,
        EventType.RECONNECTING,
        EventType.GAP,
        EventType.ERROR,
    ]
    assert events[0].data == {
        "stream": "market",
        "conn": 0,
        "url": "wss://gw/hubs/market",
        "connected": True,  # as SDK handlers read it: event.data.get("connected", False)
    }
    assert events[1].data == {
        "stream": "market",
        "conn": 0,
        "code": 1006,
        "reason": "abnormal closure",
        "connected": False,
    }
    assert events[3].data["kind"] == "connection" and events[3].instrument is None
    assert p.connected is False and p.stats["disconnects"] == 1


def test_malformed_frames_are_counted_and_reported_and_processing_goes_on():
    tape = Tape()
    tape.raw("2025-09-02T10:00:01Z", b"{broken json\x1e")
    tape.trade("2025-09-02T10:00:02Z", 100.0, 1)
    p = pipe()
    events = p.feed_many(tape.frames)
    errors = [e for e in events if e.type is EventType.ERROR]
    assert (
        len(errors) == 1
        and errors[0].data["seq"] == 0
        and "invalid JSON" in errors[0].data["reason"]
    )
    assert p.stats["decode_errors"] == 1 and p.instrument("MNQ").trades == 1


def test_unlisted_instruments_are_not_routed_but_counted():
    tape = Tape()
    tape.trade("2025-09-02T10:00:01Z", 6000.0, 1, contract="CON.F.US.EP.Z25")
    p = pipe()
    assert p.feed_many(tape.frames) == []
    assert p.stats["unrouted"] == 1
    with pytest.raises(KeyError, match="MNQ"):
        p.instrument("ES")


def test_binance_gaps_in_trade_ids_become_gap_events():
    import orjson

    tape = Tape()
    for trade_id in (1, 2, 5, 4, 6):
        data = {
            "e": "trade",
            "E": 1,
            "s": "ETHUSDT",
            "t": trade_id,
            "p": "1",
            "q": "1",
            "T": 1,
            "m": True,
        }
        tape.raw("2025-09-02T10:00:01Z", orjson.dumps({"stream": "ethusdt@trade", "data": data}))
    p = Pipeline(None, ["1min"], codec="binance", timezone="UTC")
    gaps = [e for e in p.feed_many(tape.frames) if e.type is EventType.GAP]
    assert [g.data for g in gaps] == [
        {"symbol": "ETHUSDT", "kind": "trade_id", "expected": 3, "received": 5, "missing": 2}
    ]
    assert p.instrument("ETHUSDT").sequence_gaps == 1


def test_binance_depth_update_ids_checked_against_snapshot():
    from rtcap.models import DepthUpdate
    from rtcap.sequence import SequenceChecker

    checker = SequenceChecker()

    def update(first, last, snapshot=False):
        return DepthUpdate("ETHUSDT", [], None, 0, 0, first, last, snapshot)

    assert checker.check_depth(update(None, 100, snapshot=True)) is None
    assert checker.check_depth(update(90, 99)) is None  # older than the snapshot: skipped
    assert checker.check_depth(update(99, 103)) is None  # straddles lastUpdateId + 1
    assert checker.check_depth(update(104, 110)) is None
    gap = checker.check_depth(update(115, 120))
    assert (gap.kind, gap.expected, gap.received, gap.missing) == ("depth_update_id", 111, 115, 4)


async def test_get_data_schema_and_forming_bar_last():
    tape = Tape()
    for second, price in ((5, 100.0), (65, 101.5), (70, 99.25)):
        tape.trade(f"2025-09-02T10:{second // 60:02d}:{second % 60:02d}Z", price, 2)
    p = pipe()
    p.feed_many(tape.frames)
    data = InstrumentData(p, "MNQ")
    frame = await data.get_data("1min")
    assert frame.schema == pl.Schema(
        {
            "timestamp": pl.Datetime("ns", "UTC"),
            "open": pl.Float64,
            "high": pl.Float64,
            "low": pl.Float64,
            "close": pl.Float64,
            "volume": pl.Int64,
        }
    )
    assert frame.rows() == [
        (frame["timestamp"][0], 100.0, 100.0, 100.0, 100.0, 2),
        (frame["timestamp"][1], 101.5, 101.5, 99.25, 99.25, 4),
    ]
    assert frame["timestamp"][1].isoformat() == "2025-09-02T10:01:00+00:00"
    assert (await data.get_data("1m", bars=1)).height == 1
    assert await data.get_current_price() == 99.25
    with pytest.raises(ValueError, match="not configured"):
        await data.get_data("15min")


async def test_health_score_follows_documented_formula():
    tape = Tape()
    tape.lifecycle("2025-09-02T10:00:00Z", "open")
    for i in range(9):
        tape.trade(f"2025-09-02T10:00:0{i}Z", 100.0, 1)
    tape.raw("2025-09-02T10:00:09.5Z", b"garbage\x1e")  # 1 error in 10 data frames
    p = pipe()
    p.feed_many(tape.frames)
    data = InstrumentData(p, "MNQ")
    # connection 100, errors max(0, 100 - 1000 * 0.1) = 0, freshness 100 (age < 10 s)
    assert await data.get_health_score() == 0.4 * 100 + 0.3 * 0 + 0.3 * 100
    p.advance_to(ns("2025-09-02T10:00:45Z"))  # 37 s since the last trade: freshness 50
    assert await data.get_health_score() == 40 + 0 + 15
    p.feed(Tape().lifecycle("2025-09-02T10:00:46Z", "close"))
    assert await data.get_health_score() == 0 + 0 + 15
    stats = await data.get_stats()
    assert stats["trades"] == 9 and stats["feed"]["decode_errors"] == 1
    assert stats["bars"] == {"1min": 1, "5min": 1}


def test_seed_history_then_live_bars_continue_the_series():
    from rtcap.models import Bar

    start = ns("2025-09-02T09:58:00Z")
    history = [
        Bar(
            "1min",
            start + i * 60 * 10**9,
            start + (i + 1) * 60 * 10**9,
            90.0,
            91.0,
            89.0,
            90.5,
            10,
            3,
        )
        for i in range(2)
    ]
    p = pipe()
    assert p.seed_history("MNQ", "1min", history) == 2
    tape = Tape()
    tape.trade("2025-09-02T09:59:30Z", 1.0, 1)  # inside history: late
    tape.trade("2025-09-02T10:00:30Z", 100.0, 1)
    p.feed_many(tape.frames)
    bars = p.instrument("MNQ").builder.bars("1min")
    assert [b.close for b in bars] == [90.5, 90.5, 100.0]
    with pytest.raises(ValueError):
        p.seed_history("MNQ", "15min", [])


def test_a_partial_history_bar_is_continued_by_live_prints_without_a_new_bar():
    """As the SDK: history asked with its partial bar ends with the forming bar; the first live
    print inside it updates that bar, and NEW_BAR comes only when the next bucket opens."""
    from rtcap.models import Bar

    start = ns("2025-09-02T10:00:00Z")
    minute = 60 * 10**9
    closed = Bar("1min", start - minute, start, 90.0, 91.0, 89.0, 90.5, 10, 3)
    partial = Bar("1min", start, start + minute, 90.5, 92.0, 90.0, 91.0, 7, 0)
    p = pipe()
    as_of = ns("2025-09-02T10:00:20Z")
    assert p.seed_history("MNQ", "1min", [closed, partial], as_of_ns=as_of) == 2
    tape = Tape()
    tape.trade("2025-09-02T10:00:30Z", 93.0, 2)
    tape.trade("2025-09-02T10:00:40Z", 91.5, 1)
    first = p.feed_many(tape.frames)
    assert [e.data["timeframe"] for e in first if e.type == EventType.NEW_BAR] == ["5min"]
    bars = p.instrument("MNQ").builder.bars("1min")
    assert [(b.start_ns, b.open, b.high, b.low, b.close, b.volume) for b in bars] == [
        (start - minute, 90.0, 91.0, 89.0, 90.5, 10),
        (start, 90.5, 93.0, 90.0, 91.5, 10),
    ]
    tape = Tape()
    tape.trade("2025-09-02T10:01:05Z", 94.0, 1)
    later = p.feed_many(tape.frames)
    opened = [e.data for e in later if e.type == EventType.NEW_BAR]
    assert [(d["timeframe"], d["bar_time"].minute) for d in opened] == [("1min", 1)]
    closed_bars = [e for e in later if e.type == EventType.BAR_CLOSED]
    assert [e.data["bar"].close for e in closed_bars if e.data["timeframe"] == "1min"] == [91.5]
    # without as_of_ns every bar is closed: a print inside the last one is late
    q = pipe()
    q.seed_history("MNQ", "1min", [closed, partial])
    tape = Tape()
    tape.trade("2025-09-02T10:00:30Z", 93.0, 2)
    q.feed_many(tape.frames)
    series = q.instrument("MNQ").builder.series["1min"]
    assert series.current is None and series.late_dropped == 1
