"""Timeframe strings and tz-aware bucket boundaries.

A timeframe is a grid of wall-clock times in one IANA timezone, anchored at the session start
(``00:00`` by default; CME futures trade from ``17:00`` America/Chicago). Bucket ``[start, end)``
runs from one grid instant to the next *existing* one, so buckets stay correct across DST: on the
autumn day the repeated hour gets its own 1hr bucket, on the spring day the missing hour has none,
and a ``4hr`` or ``1day`` bucket simply spans the real length of its wall-clock interval.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from rtcap.timeutil import NS, datetime_to_ns, zone

_MAX_SHIFT_S = 2 * 3600  # the largest DST jump of any zone (Antarctica/Troll)
_UNIT_SECONDS = {"sec": 1, "min": 60, "hr": 3600, "day": 86_400}
_UNIT_ALIASES = {
    "s": "sec",
    "sec": "sec",
    "secs": "sec",
    "second": "sec",
    "seconds": "sec",
    "m": "min",
    "min": "min",
    "mins": "min",
    "minute": "min",
    "minutes": "min",
    "h": "hr",
    "hr": "hr",
    "hrs": "hr",
    "hour": "hr",
    "hours": "hr",
    "d": "day",
    "day": "day",
    "days": "day",
}
_PATTERN = re.compile(r"^\s*(\d+)\s*([a-zA-Z]+)\s*$")
ACCEPTED_FORMS = (
    "1sec 5sec 15sec 30sec 1min 5min 15min 30min 1hr 4hr 1day, or the general forms "
    "Ns/Nsec, Nm/Nmin, Nh/Nhr, Nd/Nday (e.g. '15s', '1m', '1h', '1d')"
)


@dataclass(frozen=True, slots=True)
class Timeframe:
    """A parsed timeframe: ``count`` units of ``unit`` (``sec``, ``min``, ``hr``, ``day``)."""

    count: int
    unit: str

    @property
    def label(self) -> str:
        """Canonical name used in events and tables (``1min``, ``4hr``, ``1day``)."""
        return f"{self.count}{self.unit}"

    @property
    def seconds(self) -> int:
        """Nominal length; real buckets differ only across DST changes."""
        return self.count * _UNIT_SECONDS[self.unit]

    def __str__(self) -> str:
        return self.label


@lru_cache(maxsize=256)
def parse_timeframe(text: str | Timeframe) -> Timeframe:
    """Parse ``"5min"``, ``"15s"``, ``"4hr"``, ``"1d"``…; ``ValueError`` lists accepted forms."""
    if isinstance(text, Timeframe):
        return text
    match = _PATTERN.match(str(text))
    unit = _UNIT_ALIASES.get(match.group(2).lower()) if match else None
    if not match or unit is None or int(match.group(1)) <= 0:
        raise ValueError(f"unknown timeframe {text!r}: accepted forms are {ACCEPTED_FORMS}")
    count = int(match.group(1))
    if unit != "day" and count * _UNIT_SECONDS[unit] > 86_400:
        raise ValueError(f"timeframe {text!r} is longer than a day: write it in days (e.g. '2day')")
    return Timeframe(count, unit)


def parse_session_start(text: str) -> int:
    """``"17:00"`` → seconds after local midnight at which the trading day (and grid) starts."""
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip())
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise ValueError(f"session start {text!r} must be HH:MM in 24-hour time, e.g. '17:00'")
    return int(match.group(1)) * 3600 + int(match.group(2)) * 60


class Grid:
    """Bucket arithmetic for one timeframe in one timezone with one session anchor."""

    __slots__ = ("anchor_seconds", "timeframe", "tz")

    def __init__(
        self, timeframe: Timeframe | str, tz: ZoneInfo | str = "UTC", session_start: str = "00:00"
    ) -> None:
        self.timeframe = parse_timeframe(timeframe)
        self.tz = zone(tz) if isinstance(tz, str) else tz
        self.anchor_seconds = parse_session_start(session_start)

    def bucket_start(self, ns: int) -> int:
        """Start (epoch ns) of the bucket holding instant ``ns``: the latest grid instant not
        after it. The grid instants are those whose wall time is a grid time (both of them
        for a wall time the autumn repeats), and the end of a spring gap that swallowed one."""
        seconds = ns // NS
        local = datetime.fromtimestamp(seconds, self.tz)
        wall = local.replace(tzinfo=None)
        floor = self._floor_wall(wall)
        start = self._latest_instant(floor, ns)
        if start is None:  # the floored grid time fell in a spring gap, where the bucket starts
            before_gap = seconds - int((wall - floor).total_seconds()) - _MAX_SHIFT_S
            return self._transition(before_gap, seconds) * NS
        if local.utcoffset() == self._offset(start // NS):
            return start
        # the clock jumped between that grid instant and ns
        shift = self._transition(start // NS, seconds)
        before, after = self._wall_at(shift - 1), self._wall_at(shift)
        if after < before:
            # autumn: grid times between `after` and `before` came, the first time, after start
            latest = self._latest_instant(self._floor_wall(before), ns)
            return max(start, latest) if latest is not None else start
        if self._floor_wall(after - timedelta(seconds=1)) > before:
            return shift * NS  # spring: the gap swallowed a grid time
        return start

    def _latest_instant(self, wall: datetime, ns: int) -> int | None:
        """The latest instant not after ``ns`` whose wall time is ``wall`` (``None``: none)."""
        found = None
        for fold in (0, 1):
            instant = datetime_to_ns(wall.replace(fold=fold, tzinfo=self.tz))
            if instant <= ns and self._wall_at(instant // NS) == wall:
                found = instant if found is None else max(found, instant)
        return found

    def _wall_at(self, seconds: int) -> datetime:
        return datetime.fromtimestamp(seconds, self.tz).replace(tzinfo=None)

    def _offset(self, seconds: int) -> timedelta | None:
        return datetime.fromtimestamp(seconds, self.tz).utcoffset()

    def _transition(self, low: int, high: int) -> int:
        """The first second of ``high``'s UTC offset after ``low`` (whose offset differs)."""
        target = self._offset(high)
        while high - low > 1:
            middle = (low + high) // 2
            if self._offset(middle) == target:
                high = middle
            else:
                low = middle
        return high

    def bucket_end(self, start_ns: int) -> int:
        """End of the bucket that starts at ``start_ns``: the next grid instant that exists."""
        step = self.timeframe.seconds * NS
        probe = start_ns + step
        while True:
            candidate = self.bucket_start(probe)
            if candidate > start_ns:
                # a spring gap can put a grid instant between start_ns and that one
                while (earlier := self.bucket_start(candidate - 1)) > start_ns:
                    candidate = earlier
                return candidate
            probe += step // 2 or NS

    def _floor_wall(self, local: datetime) -> datetime:
        tf = self.timeframe
        if tf.unit == "day":
            session_day = (local - timedelta(seconds=self.anchor_seconds)).date()
            if tf.count > 1:
                ordinal = session_day.toordinal()
                session_day = session_day.fromordinal(ordinal - (ordinal - 719_163) % tf.count)
            return datetime(session_day.year, session_day.month, session_day.day) + timedelta(
                seconds=self.anchor_seconds
            )
        of_day = local.hour * 3600 + local.minute * 60 + local.second
        since_anchor = (of_day - self.anchor_seconds) % 86_400
        excess = since_anchor % tf.seconds
        return local.replace(microsecond=0) - timedelta(seconds=excess)
