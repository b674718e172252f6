"""Multi-timeframe OHLCV bars for one instrument.

Rules (each is a fix of a field failure of the reference SDK):
* bucket by the tick's own time (exchange time when the feed has it), never by processing time;
* volume only from trades; quotes move OHLC only with ``price_source="trades+quotes"``;
* a bar closes when time reaches its end: a later tick, or the clock passing ``end + grace``;
  a closed bar is stamped with its boundary, whenever the closing happened;
* ``NEW_BAR`` when a bar opens and ``BAR_CLOSED`` with the final bar;
* optional flat bars fill *every* skipped bucket, but only once that bucket has ended, so the
  result never depends on when a timer happened to fire;
* ticks older than the forming bar follow ``late_policy``: ``"drop"`` (counted) or
  ``"current"`` (folded into the forming bar);
* memory per timeframe is a plain sliding window of ``max_bars`` closed bars.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection
from typing import Any
from zoneinfo import ZoneInfo

from rtcap.decimals import add, format_amount, places_of
from rtcap.events import EV_BAR_CLOSED, EV_NEW_BAR, Event, EventType
from rtcap.models import Bar
from rtcap.timeframes import Grid
from rtcap.timeutil import ns_to_datetime

# One print of a trade message: (price, volume, side, exchange time ns or None).
Print = tuple[float, int | float, str | None, int | None]

LATE_POLICIES = ("drop", "current")
SOURCE = "BarBuilder"


def bar_payload(bar: Bar, tz: ZoneInfo) -> dict[str, Any]:
    """The SDK-shaped payload: ``{"timeframe", "bar_time", "data": {...}}``."""
    moment = ns_to_datetime(bar.start_ns, tz)
    return {
        "timeframe": bar.timeframe,
        "bar_time": moment,
        "data": {
            "timestamp": moment,
            "open": bar.open,
            "high": bar.high,
            "low": bar.low,
            "close": bar.close,
            "volume": bar.volume,
        },
    }


class BarSeries:
    """Bars of one timeframe: the forming bar plus a window of closed ones."""

    __slots__ = (
        "closed",
        "closed_until",
        "current",
        "grid",
        "label",
        "last_close",
        "late_dropped",
        "volume_zero",
    )

    def __init__(self, grid: Grid, max_bars: int) -> None:
        self.grid = grid
        self.label = grid.timeframe.label
        self.current: Bar | None = None
        self.closed: deque[Bar] = deque(maxlen=max_bars)
        self.closed_until: int | None = None  # end of the last closed bucket
        self.last_close: float | None = None
        self.late_dropped = 0
        self.volume_zero: int | float = 0

    def deadline(self, grace_ns: int, fill_flat: bool) -> int | None:
        """When the clock alone would next close or fill a bar of this series."""
        if self.current is not None:
            return self.current.end_ns + grace_ns
        if fill_flat and self.last_close is not None and self.closed_until is not None:
            return self.grid.bucket_end(self.closed_until) + grace_ns
        return None


def _fold(
    bar: Bar, high: float, low: float, close: float, volume: float, trades: int, places: int
) -> None:
    if high > bar.high:
        bar.high = high
    if low < bar.low:
        bar.low = low
    bar.close = close
    bar.volume = add(bar.volume, volume, places)
    bar.trades += trades


class BarBuilder:
    """Folds one instrument's ticks into bars of several timeframes, emitting bus events.

    While a tick falls inside every timeframe's forming bar (the common case), it only updates
    one shared accumulator; the accumulator is folded into each forming bar before any boundary
    is crossed and before anyone reads the bars (:meth:`flush`). Reads therefore always see
    exactly what per-tick updates would have produced. (The compiled trade handler,
    ``rtcap._speedups.TradeFold``, folds in-window prints into the same fields.)
    """

    __slots__ = (
        "_close",
        "_hi",
        "_high",
        "_lo",
        "_low",
        "_series",
        "_ticks",
        "_trades",
        "_volume",
        "disconnected_since",
        "fill_flat",
        "gap_window",
        "grace_ns",
        "instrument",
        "late_policy",
        "series",
        "tz",
        "volume_places",
    )

    def __init__(
        self,
        instrument: str,
        grids: list[Grid],
        *,
        max_bars: int,
        fill_flat: bool,
        late_policy: str,
        grace_ns: int,
        tz: ZoneInfo,
    ) -> None:
        if late_policy not in LATE_POLICIES:
            raise ValueError(f"late_policy must be one of {LATE_POLICIES}, got {late_policy!r}")
        self.instrument = instrument
        self.series = {grid.timeframe.label: BarSeries(grid, max_bars) for grid in grids}
        self._series = list(self.series.values())
        self.fill_flat = fill_flat
        self.late_policy = late_policy
        self.grace_ns = grace_ns
        self.tz = tz
        self.gap_window: tuple[int, int] | None = None  # last disconnected interval
        self.disconnected_since: int | None = None
        # Window [lo, hi) inside every forming bar, and what was folded in it since the last
        # flush: ticks, high, low, close, traded volume, trades.
        self._lo = 1
        self._hi = 0
        self._ticks = 0
        self._high = self._low = self._close = 0.0
        self._volume: int | float = 0
        self._trades = 0
        self.volume_places = 0  # most decimal places of any traded volume (sums round to them)

    # --- ticks -------------------------------------------------------------------------

    def add(
        self,
        t_ns: int,
        price: float,
        volume: float,
        is_trade: bool,
        wanted: Collection[EventType],
        out: list[Event],
    ) -> bool:
        """Fold one tick at bucket time ``t_ns`` into every timeframe.

        Returns whether any bar opened or closed (so the caller's deadline may have moved).
        """
        if is_trade and type(volume) is not int:
            places = places_of(volume)
            if places > self.volume_places:
                self.volume_places = places
        if self._lo <= t_ns < self._hi:
            if self._ticks:
                if price > self._high:
                    self._high = price
                elif price < self._low:
                    self._low = price
            else:
                self._high = self._low = price
            self._close = price
            self._ticks += 1
            if is_trade:
                self._volume = add(self._volume, volume, self.volume_places)
                self._trades += 1
            return False
        self.flush()
        changed = False
        places = self.volume_places
        for series in self._series:
            bar = series.current
            if bar is not None and bar.start_ns <= t_ns < bar.end_ns:
                _fold(bar, price, price, price, volume if is_trade else 0, int(is_trade), places)
                continue
            floor = bar.end_ns if bar is not None else series.closed_until
            if floor is None or t_ns >= floor:
                changed = True
                if bar is not None:
                    self._close_bar(series, wanted, out)
                start = series.grid.bucket_start(t_ns)
                if self.fill_flat:
                    self._fill_flat(series, start, wanted, out)
                if is_trade and series.volume_zero == 0 and type(volume) is float:
                    series.volume_zero = 0.0
                bar = Bar(
                    series.label,
                    start,
                    series.grid.bucket_end(start),
                    price,
                    price,
                    price,
                    price,
                    volume if is_trade else series.volume_zero,
                    1 if is_trade else 0,
                )
                bar.gap = self._overlaps_gap(bar)
                series.current = bar
                if EV_NEW_BAR in wanted:
                    out.append(self._event(EV_NEW_BAR, bar_payload(bar, self.tz), t_ns))
            elif self.late_policy == "current" and bar is not None:
                _fold(bar, price, price, price, volume if is_trade else 0, int(is_trade), places)
            else:
                series.late_dropped += 1
        self._reset_window()
        return changed

    def add_trades(
        self, prints: list[Print], default_ns: int, wanted: Collection[EventType], out: list[Event]
    ) -> bool:
        """Fold a message's prints ``(price, volume, side, exch_ns)`` in order, each at its
        exchange time (``default_ns`` when it has none): exactly :meth:`add` per print, with the
        common case (inside every forming bar) kept in local variables.

        Returns whether any bar opened or closed.
        """
        changed = False
        lo, hi = self._lo, self._hi
        ticks, high, low, close = self._ticks, self._high, self._low, self._close
        traded, trades = self._volume, self._trades
        places = self.volume_places
        for price, volume, _side, t in prints:
            if t is None:
                t = default_ns
            if type(volume) is not int and places_of(volume) > places:
                places = self.volume_places = places_of(volume)
            if lo <= t < hi:
                if ticks:
                    if price > high:
                        high = price
                    elif price < low:
                        low = price
                else:
                    high = low = price
                close = price
                ticks += 1
                traded = add(traded, volume, places)
                trades += 1
                continue
            self._ticks, self._high, self._low, self._close = ticks, high, low, close
            self._volume, self._trades = traded, trades
            if self.add(t, price, volume, True, wanted, out):
                changed = True
            lo, hi = self._lo, self._hi
            ticks, high, low, close = self._ticks, self._high, self._low, self._close
            traded, trades = self._volume, self._trades
        self._ticks, self._high, self._low, self._close = ticks, high, low, close
        self._volume, self._trades = traded, trades
        return changed

    def flush(self) -> None:
        """Fold the accumulated ticks into every forming bar."""
        if self._ticks:
            for series in self._series:
                current = series.current
                assert current is not None  # a window is open only inside every forming bar
                _fold(
                    current,
                    self._high,
                    self._low,
                    self._close,
                    self._volume,
                    self._trades,
                    self.volume_places,
                )
            self._ticks = 0
            self._volume = 0
            self._trades = 0

    def bars(self, label: str, include_forming: bool = True) -> list[Bar]:
        """Closed bars of ``label`` (oldest first) plus, by default, the forming one."""
        self.flush()
        series = self.series[label]
        bars = list(series.closed)
        if include_forming and series.current is not None:
            bars.append(series.current)
        return bars

    def resume(self, label: str, bar: Bar) -> None:
        """Make ``bar`` (a history service's partial bar) the forming bar of ``label``, for
        later ticks to continue; it must not start before that series' closed bars end."""
        self.flush()
        series = self.series[label]
        if series.current is not None or (
            series.closed_until is not None and bar.start_ns < series.closed_until
        ):
            raise ValueError(f"{label} bar at {bar.start_ns} cannot resume: bars follow it")
        series.current = bar
        self._reset_window()

    def forming(self, label: str) -> Bar | None:
        """The forming bar of ``label``, up to date."""
        self.flush()
        return self.series[label].current

    def _reset_window(self) -> None:
        lo, hi = 0, 1 << 62
        for series in self._series:
            bar = series.current
            if bar is None:
                self._lo, self._hi = 1, 0
                return
            lo = max(lo, bar.start_ns)
            hi = min(hi, bar.end_ns)
        self._lo, self._hi = lo, hi

    # --- time --------------------------------------------------------------------------

    def advance(self, now_ns: int, wanted: Collection[EventType], out: list[Event]) -> None:
        """Close bars (and fill flat ones) whose ``end + grace`` is not after ``now_ns``."""
        self.flush()
        for series in self._series:
            bar = series.current
            if bar is not None and bar.end_ns + self.grace_ns <= now_ns:
                self._close_bar(series, wanted, out)
            if self.fill_flat and series.current is None and series.closed_until is not None:
                # Fill up to the last bucket that has fully ended by now.
                limit = series.grid.bucket_start(now_ns - self.grace_ns)
                self._fill_flat(series, limit, wanted, out)
        self._reset_window()

    def deadline(self) -> int | None:
        """Earliest clock time at which :meth:`advance` would change something."""
        deadlines = [
            d for d in (s.deadline(self.grace_ns, self.fill_flat) for s in self._series) if d
        ]
        return min(deadlines) if deadlines else None

    def mark_disconnected(self, at_ns: int) -> None:
        """A disconnect began: forming bars overlap it."""
        self.flush()
        if self.disconnected_since is None:
            self.disconnected_since = at_ns
        for series in self._series:
            if series.current is not None:
                series.current.gap = True

    def mark_connected(self, at_ns: int) -> None:
        """The feed is back: bars overlapping the outage get the ``gap`` flag when they open."""
        if self.disconnected_since is not None:
            self.gap_window = (self.disconnected_since, at_ns)
            self.disconnected_since = None

    # --- internals ---------------------------------------------------------------------

    def _overlaps_gap(self, bar: Bar) -> bool:
        if self.disconnected_since is not None:
            return True
        window = self.gap_window
        return window is not None and bar.start_ns < window[1] and bar.end_ns > window[0]

    def _close_bar(
        self, series: BarSeries, wanted: Collection[EventType], out: list[Event]
    ) -> None:
        bar = series.current
        assert bar is not None  # only a forming bar closes
        series.current = None
        series.closed.append(bar)
        series.closed_until = bar.end_ns
        series.last_close = bar.close
        if EV_BAR_CLOSED in wanted:
            payload = bar_payload(bar, self.tz)
            payload["data"]["trades"] = bar.trades
            payload["bar"] = bar
            out.append(self._event(EV_BAR_CLOSED, payload, bar.end_ns))

    def _fill_flat(
        self, series: BarSeries, until_ns: int, wanted: Collection[EventType], out: list[Event]
    ) -> None:
        """Flat bars for every bucket from ``closed_until`` up to (not including) ``until_ns``."""
        if series.last_close is None or series.closed_until is None:
            return
        start = series.closed_until
        price = series.last_close
        while start < until_ns:
            bar = Bar(
                series.label,
                start,
                series.grid.bucket_end(start),
                price,
                price,
                price,
                price,
                series.volume_zero,
                0,
                flat=True,
            )
            bar.gap = self._overlaps_gap(bar)
            if EV_NEW_BAR in wanted:
                out.append(self._event(EV_NEW_BAR, bar_payload(bar, self.tz), start))
            series.current = bar
            self._close_bar(series, wanted, out)
            start = bar.end_ns

    def _event(self, kind: EventType, data: dict[str, Any], at_ns: int) -> Event:
        return Event(kind, data, SOURCE, at_ns, self.instrument)


def resample(bars: list[Bar], grid: Grid) -> list[Bar]:
    """Fold finer bars (oldest first) into the buckets of ``grid``; flat bars add no trades.

    The first bar of a bucket gives its open, the last its close; volumes and trade counts add
    up and the ``gap`` flag spreads to the coarser bar.
    """

    def bucket(bar: Bar) -> tuple[int, int]:
        start = grid.bucket_start(bar.start_ns)
        return start, grid.bucket_end(start)

    return _combine(bars, bucket, grid.timeframe.label)


def merge_parts(parts: list[Bar]) -> list[Bar]:
    """Parts of bars of one timeframe, each built from a piece of one feed (sorted by start,
    then by the piece's place in the feed), as whole bars: the rule of :func:`resample` with
    each part's own bucket, so a bar split across segments, recorders or days is the bar one
    pipeline builds from the whole feed."""
    return _combine(parts, lambda bar: (bar.start_ns, bar.end_ns), None)


def _combine(bars: list[Bar], bucket: Any, label: str | None) -> list[Bar]:
    out: list[Bar] = []
    current: Bar | None = None
    for bar in bars:
        if current is None or not (current.start_ns <= bar.start_ns < current.end_ns):
            start, end = bucket(bar)
            current = Bar(
                label or bar.timeframe,
                start,
                end,
                bar.open,
                bar.high,
                bar.low,
                bar.close,
                bar.volume,
                bar.trades,
                bar.gap,
                bar.flat,
            )
            out.append(current)
            continue
        places = max(places_of(current.volume), places_of(bar.volume))
        _fold(current, bar.high, bar.low, bar.close, bar.volume, bar.trades, places)
        current.gap = current.gap or bar.gap
        current.flat = current.flat and bar.flat
    return out


def bar_record(bar: Bar, tz: ZoneInfo, instrument: str | None = None) -> dict[str, Any]:
    """A bar as a flat JSON-ready record (times in ``tz``), for exports and printing."""
    record: dict[str, Any] = {"timestamp": ns_to_datetime(bar.start_ns, tz).isoformat()}
    if instrument is not None:
        record["instrument"] = instrument
    record.update(
        timeframe=bar.timeframe,
        open=bar.open,
        high=bar.high,
        low=bar.low,
        close=bar.close,
        volume=bar.volume,
        trades=bar.trades,
        gap=bar.gap,
    )
    return record


def bar_line(instrument: str, bar: Bar) -> bytes:
    """Canonical text of one bar, the unit of bar-stream hashes (live vs replay): values, not
    their formatting (a whole volume reads ``1`` whether it was kept as ``1`` or ``1.0``)."""
    return (
        f"{instrument},{bar.timeframe},{bar.start_ns},{bar.end_ns},{bar.open!r},{bar.high!r},"
        f"{bar.low!r},{bar.close!r},{format_amount(bar.volume)},{bar.trades},{int(bar.gap)},{int(bar.flat)}\n"
    ).encode()
