"""Bar history for the gateway's ``/History/retrieveBars``.

For the simulated market, history before the live start is generated from the seed: a minute
random walk run *backwards* from the price the live simulator starts at, so the last historical
close meets the first live print. CME hours are respected (no bars on Saturdays, before the
Sunday 17:00 open, after the Friday 16:00 close, or in the daily 16:00–17:00 halt).
"""

from __future__ import annotations

import random
from datetime import datetime

from rtcap.bars import resample
from rtcap.instruments import CME_TIMEZONE, InstrumentSpec
from rtcap.models import Bar
from rtcap.timeframes import Grid
from rtcap.timeutil import NS, zone

MINUTE = 60 * NS


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
        self._rng = random.Random(f"rtcap-history:{seed}:{spec.symbol}")
        self._end_ticks = round(end_price / spec.tick_size)
        self._bars: list[Bar] | None = None

    def minute_bars(self) -> list[Bar]:
        """All generated minute bars, oldest first (built on first use)."""
        if self._bars is None:
            self._bars = self._generate()
        return self._bars

    def _generate(self) -> list[Bar]:
        rng, tick = self._rng, self.spec.tick_size
        chicago = zone(CME_TIMEZONE)
        count = int(self.days * 24 * 60)
        price = self._end_ticks
        bars: list[Bar] = []
        volatility = 2
        for index in range(1, count + 1):
            start = self.end_ns - index * MINUTE
            if not cme_open(datetime.fromtimestamp(start // NS, chicago)):
                continue
            if rng.random() < 0.02:
                volatility = rng.choice((1, 2, 2, 3, 6))
            close = price
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
                    opening * tick,
                    high * tick,
                    low * tick,
                    close * tick,
                    volume,
                    trades,
                )
            )
            price = opening
        bars.reverse()
        return bars


def window(bars: list[Bar], grid: Grid, start_ns: int, end_ns: int) -> list[Bar]:
    """Bars of ``grid`` built from finer ``bars`` whose start lies in ``[start_ns, end_ns)``."""
    inside = [bar for bar in bars if start_ns <= bar.start_ns < end_ns]
    return [bar for bar in resample(inside, grid) if start_ns <= bar.start_ns < end_ns]
