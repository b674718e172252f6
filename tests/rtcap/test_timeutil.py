from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtcap.timeutil import (
    NS,
    datetime_to_ns,
    format_iso_ns,
    ns_to_datetime,
    parse_iso_ns,
    zone,
)

BASE = 1_756_823_467_000_000_000  # 2025-09-02T14:31:07Z
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-09-02T14:31:07Z", BASE),
        ("2025-09-02T14:31:07.123Z", BASE + 123_000_000),
        ("2025-09-02T14:31:07.1234567+00:00", BASE + 123_456_700),
        ("2025-09-02T14:31:07.5", BASE + 500_000_000),
        ("2025-09-02 14:31:07.000001Z", BASE + 1_000),
        ("2025-09-02T09:31:07.123-05:00", BASE + 123_000_000),
        ("2025-09-02T16:31:07+02:00", BASE),
    ],
)
def test_parse_iso_ns_accepts_gateway_and_dotnet_shapes(text, expected):
    assert parse_iso_ns(text) == expected
    assert parse_iso_ns(text) == expected  # memoised second call agrees


@pytest.mark.parametrize(
    "text",
    ["", "2025-09-02", "yesterday at noon", "2025-09-02T14:31:07.Z", "2025-09-02T14:31:07+0500x"],
)
def test_parse_iso_ns_rejects_garbage_with_value_error(text):
    with pytest.raises(ValueError):
        parse_iso_ns(text)


def test_format_iso_ns_is_millisecond_gateway_format_and_round_trips():
    text = format_iso_ns(BASE + 123_456_789)
    assert text == "2025-09-02T14:31:07.123Z"
    assert parse_iso_ns(text) == BASE + 123_000_000


def test_datetime_conversions_round_trip_in_chicago():
    moment = ns_to_datetime(BASE, "America/Chicago")
    assert moment.utcoffset().total_seconds() == -5 * 3600
    assert (moment.hour, moment.minute) == (9, 31)
    assert datetime_to_ns(moment) == BASE
    assert datetime_to_ns(datetime(2025, 9, 2, 14, 31, 7)) == BASE  # naive means UTC
    assert ns_to_datetime(BASE).tzinfo == UTC or ns_to_datetime(BASE).utcoffset().seconds == 0


def test_unknown_zone_names_the_fix():
    with pytest.raises(ValueError, match="IANA name"):
        zone("Mars/Olympus")


ZONES = ["UTC", "America/Chicago", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata"]
# Clock changes of 2024-2025 (US, UK, Lord Howe's half hour): the ambiguous and skipped local
# times around them are where fold matters.
TRANSITIONS_S = [
    1710054000,
    1730613600,
    1741503600,
    1762063200,
    1711846800,
    1729990800,
    1712419200,
    1728144000,
]


def reference_datetime(ns: int, name: str):
    seconds, rem = divmod(ns, NS)
    return (EPOCH + timedelta(seconds=seconds, microseconds=rem // 1000)).astimezone(zone(name))


def same_moment(got, expected) -> bool:
    return (
        repr(got) == repr(expected)
        and got.fold == expected.fold
        and got.utcoffset() == expected.utcoffset()
    )


def test_ns_to_datetime_equals_the_zone_conversion_around_every_clock_change():
    """The per-second memo gives exactly what converting each instant gives (fields, fold,
    offset): every 5 minutes for 3 hours either side of each change, in every zone."""
    checked = folds = 0
    for transition in TRANSITIONS_S:
        for offset_s in range(-3 * 3600, 3 * 3600 + 1, 300):
            for name in ZONES:
                for fraction in (0, 999_999_999, 123_456_789):
                    ns = (transition + offset_s) * NS + fraction
                    expected = reference_datetime(ns, name)
                    assert same_moment(ns_to_datetime(ns, name), expected), (ns, name)
                    checked += 1
                    folds += expected.fold
    assert checked == 8 * 73 * 5 * 3 and folds > 0


@given(st.integers(-(2**62), 2**62), st.sampled_from(ZONES), st.sampled_from(ZONES))
def test_ns_to_datetime_equals_the_zone_conversion_of_any_instant(ns, name, other):
    for zone_name in (name, other, name):
        assert same_moment(ns_to_datetime(ns, zone_name), reference_datetime(ns, zone_name))
        later = ns + 1000  # most often the same second: served from the memo
        assert same_moment(ns_to_datetime(later, zone_name), reference_datetime(later, zone_name))
