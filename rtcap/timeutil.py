"""Conversions between wire timestamps and the kernel's integer nanoseconds.

Parsing ISO-8601 strings is on the hot path (every ProjectX trade carries one), so whole seconds
are memoised: prints arriving within the same second share the expensive part.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

NS = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_seconds_cache: dict[str, int] = {}
_SECONDS_CACHE_LIMIT = 8192
_MILLIS_NS = {f"{ms:03d}": ms * 1_000_000 for ms in range(1000)}
# zone → (epoch second, its local fields and fold): the last second ns_to_datetime converted
_last_second: dict[object, tuple[int, int, int, int, int, int, int, int]] = {}


def _epoch_seconds_ns(head: str) -> int:
    """``YYYY-MM-DDTHH:MM:SS`` (UTC) to epoch ns, memoised."""
    seconds_ns = _seconds_cache.get(head)
    if seconds_ns is None:
        parsed = datetime.fromisoformat(head).replace(tzinfo=UTC)
        seconds_ns = (parsed - _EPOCH) // timedelta(seconds=1) * NS
        if len(_seconds_cache) >= _SECONDS_CACHE_LIMIT:
            _seconds_cache.clear()
        _seconds_cache[head] = seconds_ns
    return seconds_ns


def parse_iso_ns(text: str) -> int:
    """Parse an ISO-8601 timestamp (``Z``, ``±HH:MM`` or naive meaning UTC) to epoch ns.

    Accepts any number of fractional digits (.NET sends seven). Raises ``ValueError`` on
    anything else. The gateway's own shape, ``2025-09-02T14:31:07.123Z``, takes a fast path:
    whole seconds are memoised and the milliseconds come from a table.
    """
    if len(text) == 24 and text[23] == "Z" and text[19] == ".":
        seconds_ns = _seconds_cache.get(text[:19])
        if seconds_ns is not None:
            millis_ns = _MILLIS_NS.get(text[20:23])
            if millis_ns is not None:
                return seconds_ns + millis_ns
    return _parse_iso_ns(text)


def _parse_iso_ns(text: str) -> int:
    if len(text) < 19 or text[10] not in "T ":
        raise ValueError(f"not an ISO-8601 timestamp: {text!r}")
    head = text[:10] + "T" + text[11:19]
    ns = _epoch_seconds_ns(head)
    rest = text[19:]
    if not rest:
        return ns
    index = 0
    if rest[0] == ".":
        index = 1
        while index < len(rest) and rest[index].isdigit():
            index += 1
        digits = rest[1:index]
        if not digits:
            raise ValueError(f"empty fraction in timestamp: {text!r}")
        ns += int(digits[:9].ljust(9, "0"))
    zone = rest[index:]
    if zone in ("", "Z", "z", "+00:00", "-00:00"):
        return ns
    if len(zone) == 6 and zone[0] in "+-" and zone[3] == ":":
        offset = (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60) * NS
        return ns - offset if zone[0] == "+" else ns + offset
    raise ValueError(f"unrecognised timezone suffix in timestamp: {text!r}")


def format_iso_ns(ns: int) -> str:
    """Epoch ns to ``YYYY-MM-DDTHH:MM:SS.fffZ`` (millisecond precision, as ProjectX sends)."""
    seconds, rem = divmod(ns, NS)
    moment = _EPOCH + timedelta(seconds=seconds)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{rem // 1_000_000:03d}Z"


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """An IANA zone by name, with an error that says what to pass instead."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown timezone {name!r}: use an IANA name such as 'America/Chicago' or 'UTC'"
        ) from exc


def ns_to_datetime(ns: int, tz: ZoneInfo | str = "UTC") -> datetime:
    """Epoch ns to a tz-aware datetime (microsecond precision).

    Every event carries one, so the zone conversion (over 1 us) is done once per second of
    time per zone and remembered; within that second only the microseconds differ. Zone
    offsets and transitions fall on whole seconds, so the fields and ``fold`` of the second
    hold for every instant in it.
    """
    tzinfo = zone(tz) if isinstance(tz, str) else tz
    seconds, rem = divmod(ns, NS)
    last = _last_second.get(tzinfo)
    if last is None or last[0] != seconds:
        moment = (_EPOCH + timedelta(seconds=seconds)).astimezone(tzinfo)
        if len(_last_second) >= 64:
            _last_second.clear()
        last = _last_second[tzinfo] = (
            seconds,
            moment.year,
            moment.month,
            moment.day,
            moment.hour,
            moment.minute,
            moment.second,
            moment.fold,
        )
    _, year, month, day, hour, minute, second, fold = last
    return datetime(year, month, day, hour, minute, second, rem // 1000, tzinfo, fold=fold)


def datetime_to_ns(moment: datetime) -> int:
    """A tz-aware datetime to epoch ns (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * NS + delta.microseconds * 1000
