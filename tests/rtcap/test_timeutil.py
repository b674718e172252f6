from datetime import UTC, datetime

import pytest

from rtcap.timeutil import datetime_to_ns, format_iso_ns, ns_to_datetime, parse_iso_ns, zone

BASE = 1_756_823_467_000_000_000  # 2025-09-02T14:31:07Z


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
