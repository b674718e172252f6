from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtcap.timeframes import Grid, parse_timeframe
from rtcap.timeutil import NS, datetime_to_ns, ns_to_datetime, parse_iso_ns

HOUR = 3600 * NS


@pytest.mark.parametrize(
    ("text", "label", "seconds"),
    [
        ("1sec", "1sec", 1),
        ("5sec", "5sec", 5),
        ("15sec", "15sec", 15),
        ("30sec", "30sec", 30),
        ("1min", "1min", 60),
        ("5min", "5min", 300),
        ("15min", "15min", 900),
        ("30min", "30min", 1800),
        ("1hr", "1hr", 3600),
        ("4hr", "4hr", 14400),
        ("1day", "1day", 86400),
        ("15s", "15sec", 15),
        ("1m", "1min", 60),
        ("1h", "1hr", 3600),
        ("1d", "1day", 86400),
        ("45s", "45sec", 45),
        ("2hr", "2hr", 7200),
        ("3day", "3day", 259200),
        ("10 min", "10min", 600),
    ],
)
def test_parse_timeframe_canonical_labels(text, label, seconds):
    tf = parse_timeframe(text)
    assert (tf.label, tf.seconds) == (label, seconds)


@pytest.mark.parametrize("text", ["", "1week", "min", "0min", "5x", "1month", "-1min", "25hr"])
def test_unknown_timeframe_names_accepted_forms(text):
    with pytest.raises(ValueError, match=r"(accepted forms|longer than a day)"):
        parse_timeframe(text)


def local(iso: str, tz: str = "America/Chicago") -> str:
    return ns_to_datetime(parse_iso_ns(iso), tz).strftime("%Y-%m-%d %H:%M %Z")


def bucket(tf: str, iso: str, tz="America/Chicago", session="00:00") -> tuple[str, str, float]:
    grid = Grid(tf, tz, session)
    start = grid.bucket_start(parse_iso_ns(iso))
    end = grid.bucket_end(start)
    fmt = "%Y-%m-%d %H:%M %Z"
    return (
        ns_to_datetime(start, tz).strftime(fmt),
        ns_to_datetime(end, tz).strftime(fmt),
        (end - start) / HOUR,
    )


def test_four_hour_bars_follow_the_cme_session_grid():
    # 17:00 CT session open: 4hr buckets start 17, 21, 01, 05, 09, 13 (the SDK rolls hourly).
    assert bucket("4hr", "2025-09-02T22:30:00Z", session="17:00") == (
        "2025-09-02 17:00 CDT",
        "2025-09-02 21:00 CDT",
        4.0,
    )
    assert bucket("4hr", "2025-09-03T02:59:00Z", session="17:00")[0] == "2025-09-02 21:00 CDT"
    assert bucket("4hr", "2025-09-03T14:10:00Z", session="17:00")[0] == "2025-09-03 09:00 CDT"


def test_daily_bar_starts_at_session_open_not_midnight():
    # Monday 16:59 CT belongs to Monday's session (opened Sunday 17:00); 17:01 to Tuesday's.
    assert bucket("1day", "2025-09-08T21:59:00Z", session="17:00")[0] == "2025-09-07 17:00 CDT"
    assert bucket("1day", "2025-09-08T22:01:00Z", session="17:00")[0] == "2025-09-08 17:00 CDT"
    assert bucket("1day", "2025-09-08T22:01:00Z", tz="UTC")[:2] == (
        "2025-09-08 00:00 UTC",
        "2025-09-09 00:00 UTC",
    )


def test_autumn_dst_repeated_hour_gets_its_own_one_hour_bucket():
    first = bucket("1hr", "2025-11-02T06:30:00Z")  # 01:30 CDT
    second = bucket("1hr", "2025-11-02T07:30:00Z")  # 01:30 CST, same wall time an hour later
    assert first == ("2025-11-02 01:00 CDT", "2025-11-02 01:00 CST", 1.0)
    assert second == ("2025-11-02 01:00 CST", "2025-11-02 02:00 CST", 1.0)


def test_dst_days_have_23_and_25_hour_daily_bars_and_stretched_4hr():
    assert bucket("1day", "2025-11-02T12:00:00Z")[2] == 25.0
    assert bucket("1day", "2025-03-09T12:00:00Z")[2] == 23.0
    assert bucket("4hr", "2025-11-02T07:30:00Z") == (
        "2025-11-02 00:00 CDT",
        "2025-11-02 04:00 CST",
        5.0,
    )
    assert bucket("4hr", "2025-03-09T07:30:00Z") == (
        "2025-03-09 00:00 CST",
        "2025-03-09 04:00 CDT",
        3.0,
    )


def test_spring_dst_missing_hour_has_no_bucket():
    assert bucket("1hr", "2025-03-09T07:59:00Z") == (
        "2025-03-09 01:00 CST",
        "2025-03-09 03:00 CDT",
        1.0,
    )


def test_sub_hour_buckets_ignore_the_session_anchor_minutes():
    assert bucket("15min", "2025-09-02T14:31:07Z", session="17:00")[:2] == (
        "2025-09-02 09:30 CDT",
        "2025-09-02 09:45 CDT",
    )


ZONES = ["UTC", "America/Chicago", "Europe/London", "Asia/Kolkata", "Australia/Lord_Howe"]
SPAN = (datetime_to_ns(datetime(2024, 1, 1)), datetime_to_ns(datetime(2026, 12, 31)))


@given(
    instant=st.integers(*SPAN),
    tf=st.sampled_from(["1sec", "15sec", "1min", "7min", "15min", "1hr", "4hr", "1day", "2day"]),
    tz=st.sampled_from(ZONES),
    session=st.sampled_from(["00:00", "17:00", "09:30"]),
)
def test_buckets_tile_time_without_gaps_or_overlaps(instant, tf, tz, session):
    grid = Grid(tf, tz, session)
    start = grid.bucket_start(instant)
    end = grid.bucket_end(start)
    assert start <= instant < end
    assert grid.bucket_start(start) == start  # a start is its own bucket's start
    assert grid.bucket_start(end) == end  # the next bucket begins exactly at this end
    assert grid.bucket_start(end - 1) == start
    nominal = parse_timeframe(tf).seconds * NS
    assert end - start <= nominal + 2 * HOUR  # never more than a DST shift longer


def test_a_half_past_grid_keeps_tiling_through_the_repeated_autumn_hour():
    """With a 09:30 session, 1hr buckets start at :30. In the repeated hour 01:29 CST comes
    after 01:30 CDT, so it belongs to the bucket that began then, not to 00:30's."""
    grid = Grid("1hr", "America/Chicago", "09:30")
    at = parse_iso_ns
    first = grid.bucket_start(at("2025-11-02T06:30:00Z"))  # 01:30 CDT
    assert first == at("2025-11-02T06:30:00Z")
    assert grid.bucket_end(first) == at("2025-11-02T07:30:00Z")  # 01:30 CST
    assert grid.bucket_start(at("2025-11-02T07:29:59Z")) == first  # 01:29:59 CST
    assert grid.bucket_start(at("2025-11-02T07:30:00Z")) == at("2025-11-02T07:30:00Z")
    assert grid.bucket_start(at("2025-11-02T05:59:59Z")) == at("2025-11-02T05:30:00Z")


# the instants the clocks changed (first second of the new offset), 2025
TRANSITIONS = [
    ("America/Chicago", parse_iso_ns("2025-03-09T08:00:00Z")),
    ("America/Chicago", parse_iso_ns("2025-11-02T07:00:00Z")),
    ("Europe/London", parse_iso_ns("2025-03-30T01:00:00Z")),
    ("Europe/London", parse_iso_ns("2025-10-26T01:00:00Z")),
    ("Australia/Lord_Howe", parse_iso_ns("2025-04-05T15:00:00Z")),  # a 30-minute shift
    ("Australia/Lord_Howe", parse_iso_ns("2025-10-04T15:30:00Z")),
    ("Antarctica/Troll", parse_iso_ns("2025-03-30T01:00:00Z")),  # a 2-hour shift
]


@given(
    change=st.sampled_from(TRANSITIONS),
    offset=st.integers(-4 * HOUR, 4 * HOUR),
    tf=st.sampled_from(["1sec", "1min", "7min", "15min", "45min", "1hr", "2hr", "4hr", "1day"]),
    session=st.sampled_from(["00:00", "17:00", "09:30", "01:30", "02:45"]),
)
def test_buckets_tile_time_around_every_clock_change(change, offset, tf, session):
    """The grid's instants around DST changes (where wall-clock arithmetic goes wrong)."""
    tz, at = change
    grid = Grid(tf, tz, session)
    instant = at + offset
    start = grid.bucket_start(instant)
    end = grid.bucket_end(start)
    assert start <= instant < end
    assert grid.bucket_start(start) == start
    assert grid.bucket_start(end) == end
    assert grid.bucket_start(end - 1) == start
    assert end - start <= parse_timeframe(tf).seconds * NS + 2 * HOUR
