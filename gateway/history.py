"""Bar history for the gateway's ``/History/retrieveBars``, at every unit the API has.

For the simulated market, history before the live start is generated from the seed: a minute
random walk run *backwards* from the price the live simulator starts at, so the last historical
close meets the first live print. History follows the live walk, which trades whenever it
runs: the minutes from the latest CME close up to the live start have bars too, so history ends
exactly where the live walk begins on every day of the week. Before that, CME hours are
respected (no bars on Saturdays, before the Sunday 17:00 open, after the Friday 16:00 close, or
in the daily 16:00–17:00 halt).

Every other resolution is derived so that all of them agree:

* seconds: each minute bar is split, deterministically from the seed and the minute, into one
  bar per second that traded (at most 60), whose fold is exactly that minute bar (open, high,
  low, close and volume); seconds without trades have no bar, as on the real gateway;
* hours and days: folds of the minute bars on the instrument's session grid;
* weeks and months: folds of the daily bars by the trading day's ISO week or calendar month.
"""

from __future__ import annotations

import bisect
import itertools
import random
from datetime import datetime, timedelta

from rtcap.instruments import CME_TIMEZONE, InstrumentSpec
from rtcap.models import Bar
from rtcap.timeutil import NS, zone

MINUTE = 60 * NS
SECOND = NS


def cme_open(moment: datetime) -> bool:
    """Is the CME Globex equity session open at this Chicago-time moment?"""
    weekday, hour = moment.weekday(), moment.hour
    if weekday == 5 or (weekday == 6 and hour < 17) or (weekday == 4 and hour >= 16):
        return False
    return hour != 16


class SyntheticHistory:
    """Deterministic minute bars for one instrument, ending at ``end_ns`` at ``end_price``."""

    def __init__(
        self, seed: int, spec: InstrumentSpec, end_ns: int, end_price: float, days: float
    ) -> None:
        self.spec = spec
        self.end_ns = end_ns - end_ns % MINUTE
        self.days = days
        self._seed_text = f"rtcap-history:{seed}:{spec.symbol}"
        self._rng = random.Random(self._seed_text)
        self._end_ticks = round(end_price / spec.tick_size)
        self._bars: list[Bar] | None = None
        self._starts: list[int] | None = None

    def minute_bars(self) -> list[Bar]:
        """All generated minute bars, oldest first (built on first use)."""
        if self._bars is None:
            self._bars = self._generate()
        return self._bars

    def second_bars(self, start_ns: int, end_ns: int, newest: int | None = None) -> list[Bar]:
        """The 1-second bars in ``[start_ns, end_ns)``, oldest first; with ``newest``, only the
        newest that many, splitting no more minutes than they need (a request for years of
        seconds costs what its limit costs)."""
        minutes = self.minute_bars()
        if self._starts is None:
            self._starts = [bar.start_ns for bar in minutes]
        index = bisect.bisect_left(self._starts, end_ns)
        pieces: list[list[Bar]] = []
        found = 0
        while index > 0 and (newest is None or found < newest):
            index -= 1
            minute = minutes[index]
            if minute.end_ns <= start_ns:
                break
            seconds = [b for b in self._split_minute(minute) if start_ns <= b.start_ns < end_ns]
            pieces.append(seconds)
            found += len(seconds)
        out = [bar for piece in reversed(pieces) for bar in piece]
        return out if newest is None else out[max(0, len(out) - newest) :]

    def _split_minute(self, minute: Bar) -> list[Bar]:
        """Second bars whose fold is exactly ``minute`` (its own seed: any window agrees)."""
        tick, price = self.spec.tick_size, self.spec.price
        rng = random.Random(f"{self._seed_text}:{minute.start_ns}")
        volume = int(minute.volume)
        active = min(60, max(1, volume))
        if active == 1:
            return [
                Bar(
                    "1sec",
                    minute.start_ns,
                    minute.start_ns + SECOND,
                    minute.open,
                    minute.high,
                    minute.low,
                    minute.close,
                    minute.volume,
                    minute.trades,
                )
            ]
        seconds = sorted(rng.sample(range(60), active))
        o, h = round(minute.open / tick), round(minute.high / tick)
        low, c = round(minute.low / tick), round(minute.close / tick)
        closes = [rng.randint(low, h) for _ in range(active - 1)] + [c]
        at_high, at_low = rng.randrange(active), rng.randrange(active)
        volumes = _split(volume, active, rng)
        trades = _split(max(minute.trades, active), active, rng)
        bars, previous = [], o
        for index, second in enumerate(seconds):
            close = closes[index]
            top = h if index == at_high else max(previous, close)
            bottom = low if index == at_low else min(previous, close)
            start = minute.start_ns + second * SECOND
            bars.append(
                Bar(
                    "1sec",
                    start,
                    start + SECOND,
                    price(previous),
                    price(top),
                    price(bottom),
                    price(close),
                    volumes[index],
                    trades[index],
                )
            )
            previous = close
        return bars

    def _generate(self) -> list[Bar]:
        rng, price = self._rng, self.spec.price
        chicago = zone(CME_TIMEZONE)
        count = int(self.days * 24 * 60)
        ticks = self._end_ticks
        bars: list[Bar] = []
        volatility = 2
        reached_a_session = False  # walking back: still in the live walk's own stretch
        for index in range(1, count + 1):
            start = self.end_ns - index * MINUTE
            if cme_open(datetime.fromtimestamp(start // NS, chicago)):
                reached_a_session = True
            elif reached_a_session:
                continue
            if rng.random() < 0.02:
                volatility = rng.choice((1, 2, 2, 3, 6))
            close = ticks
            opening = close - rng.randint(-volatility * 3, volatility * 3)
            high = max(opening, close) + rng.randint(0, volatility * 2)
            low = min(opening, close) - rng.randint(0, volatility * 2)
            volume = int(rng.expovariate(1 / (300 * volatility))) + 1
            trades = max(1, volume // 3)
            bars.append(
                Bar(
                    "1min",
                    start,
                    start + MINUTE,
                    price(opening),
                    price(high),
                    price(low),
                    price(close),
                    volume,
                    trades,
                )
            )
            ticks = self.spec.keep_in_range(opening)
        bars.reverse()
        return bars


def _split(total: int, parts: int, rng: random.Random) -> list[int]:
    """``total`` as ``parts`` positive integers (``total >= parts``), seeded."""
    cuts = sorted(rng.sample(range(1, total), parts - 1)) if parts > 1 else []
    edges = [0, *cuts, total]
    return [b - a for a, b in itertools.pairwise(edges)]


def calendar_bars(daily: list[Bar], unit: str, tz: str) -> list[Bar]:
    """Fold daily bars into weeks (ISO, by trading day) or calendar months (``"week"`` or
    ``"month"``); a bar starts where its first day starts and ends where its last day ends."""
    local = zone(tz)
    out: list[Bar] = []
    key = None
    for day in daily:
        # The trading day is the date its session ends on (a CME day opens the evening before).
        date = (datetime.fromtimestamp(day.end_ns // NS, local) - timedelta(seconds=1)).date()
        this = date.isocalendar()[:2] if unit == "week" else (date.year, date.month)
        if this != key:
            key = this
            out.append(
                Bar(
                    unit,
                    day.start_ns,
                    day.end_ns,
                    day.open,
                    day.high,
                    day.low,
                    day.close,
                    day.volume,
                    day.trades,
                )
            )
            continue
        bar = out[-1]
        bar.end_ns, bar.close = day.end_ns, day.close
        bar.high, bar.low = max(bar.high, day.high), min(bar.low, day.low)
        bar.volume += day.volume
        bar.trades += day.trades
    return out
