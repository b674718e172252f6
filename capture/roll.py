"""When a long recording closes one capture and opens the next, and what the next is called.

A recording that runs for weeks is kept as one capture per trading day, as kdb+tick rolls its
log at end of day: at the roll the day's capture is sealed and closed (verifiable on its own),
and the next row goes to the next day's capture, without dropping the connection.
``--roll-at 00:00`` (UTC, the default) or ``--roll-at "17:00 America/Chicago"`` (CME's
trading day, the default for ProjectX) name the moment; ``--roll-every 1h`` rolls on a fixed
period instead; ``--roll-at none`` never rolls.

A day's capture is named by its trading day: the date, in the roll's time zone, on which its
period ends (a CME day that opens Sunday 17:00 CT is Monday's). In a dataset the day has its own
``date=`` folder; a plain CAPTURE keeps the first day and puts each later one beside it as
``CAPTURE.<day>``. A name already taken gets ``.2``, ``.3`` … (rolls within one day).

Pure: it is told the time, it never reads a clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path

from rtcap.instruments import CME_SESSION_START, CME_TIMEZONE
from rtcap.timeutil import NS, zone

_AT = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\s+(\S+))?$")
NEVER = ("none", "never", "off")


@dataclass(frozen=True)
class RollSchedule:
    """Rolls at ``at`` (a time of day in ``tz``) every day, or every ``every_ns``."""

    at: time | None = None
    tz: str = "UTC"
    every_ns: int | None = None

    def next_after(self, now_ns: int) -> int:
        """The first roll strictly after ``now_ns``."""
        if self.every_ns is not None:
            return (now_ns // self.every_ns + 1) * self.every_ns
        assert self.at is not None
        local = zone(self.tz)
        moment = datetime.fromtimestamp(now_ns // NS, local)
        candidate = datetime.combine(moment.date(), self.at, local)
        while int(candidate.timestamp()) * NS <= now_ns:
            candidate = datetime.combine(candidate.date() + timedelta(days=1), self.at, local)
        return int(candidate.timestamp()) * NS

    def day_of(self, now_ns: int) -> str:
        """The trading day a capture opened at ``now_ns`` holds: the date its period ends on."""
        if self.every_ns is not None:
            return datetime.fromtimestamp(now_ns // NS, zone("UTC")).date().isoformat()
        last_second = (self.next_after(now_ns) - 1) // NS  # whole seconds: floats round up
        return datetime.fromtimestamp(last_second, zone(self.tz)).date().isoformat()


CME_TRADING_DAY = f"{CME_SESSION_START} {CME_TIMEZONE}"  # ProjectX's trading day opens then
CME_SESSION_OPENS = RollSchedule(at=time.fromisoformat(CME_SESSION_START), tz=CME_TIMEZONE)


def parse_roll(at: str | None, every_ns: int | None, default_tz_at: str) -> RollSchedule | None:
    """The schedule ``--roll-at``/``--roll-every`` ask for (``None``: never roll). ``at`` is
    ``HH:MM[:SS] [Zone/Name]`` (UTC when no zone) or ``none``; without either, ``default_tz_at``
    applies (the source's own trading day). ``ValueError`` names the accepted forms."""
    if every_ns is not None:
        if at is not None and at.strip().lower() not in NEVER:
            raise ValueError("give --roll-at or --roll-every, not both")
        return RollSchedule(every_ns=every_ns)
    text = (at if at is not None else default_tz_at).strip()
    if text.lower() in NEVER:
        return None
    match = _AT.match(text)
    if not match:
        raise ValueError(
            f"invalid --roll-at {text!r}: use HH:MM (UTC), 'HH:MM Zone/Name' such as "
            "'17:00 America/Chicago', or none"
        )
    hour, minute, second, tz = match.groups()
    try:
        moment = time(int(hour), int(minute), int(second or 0))
        zone(tz or "UTC")
    except (ValueError, KeyError) as exc:
        raise ValueError(f"invalid --roll-at {text!r}: {exc}") from None
    return RollSchedule(at=moment, tz=tz or "UTC")


def next_capture(first: Path, day: str, *, dataset_day_path: Path | None = None) -> Path:
    """Where the capture of ``day`` goes: its dataset folder, or beside the first capture as
    ``<first>.<day>``; with ``.2``, ``.3`` … while the name is taken."""
    base = (
        dataset_day_path if dataset_day_path is not None else first.with_name(f"{first.name}.{day}")
    )
    candidate, number = base, 1
    while candidate.exists():
        number += 1
        candidate = base.with_name(f"{base.name}.{number}")
    return candidate
