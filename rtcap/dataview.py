"""Read-only view of one instrument's bars and health, as the SDK's ``ctx.data`` offers it.

``get_data`` returns a Polars DataFrame (``timestamp`` tz-aware, OHLC Float64, volume Int64 for
contract counts or Float64 for fractional crypto sizes) whose last row is the forming bar.

Health score (0–100), computed only from pipeline time, never the wall clock::

    score = 0.4·connection + 0.3·errors + 0.3·freshness
    connection = 100 connected (or no lifecycle rows seen), 0 disconnected
    errors     = max(0, 100 − 1000·decode_errors / data_frames)   (100 before any frame)
    freshness  = by age of the instrument's last event at pipeline "now":
                 ≤10 s → 100, ≤30 s → 75, ≤60 s → 50, older → 25, nothing yet → 0
"""

from __future__ import annotations

from typing import Any

import polars as pl

from rtcap.models import Bar
from rtcap.pipeline import InstrumentState, Pipeline
from rtcap.timeframes import parse_timeframe
from rtcap.timeutil import NS

BAR_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
FRESHNESS_STEPS = ((10 * NS, 100.0), (30 * NS, 75.0), (60 * NS, 50.0))


def bars_to_frame(bars: list[Bar], tz: str) -> pl.DataFrame:
    """Bars as the SDK-shaped DataFrame (columnar build, no per-row Python objects)."""
    volumes = [bar.volume for bar in bars]
    integral = all(type(v) is int for v in volumes)
    return pl.DataFrame(
        {
            "timestamp": pl.Series([bar.start_ns for bar in bars], dtype=pl.Int64)
            .cast(pl.Datetime("ns", "UTC"))
            .dt.convert_time_zone(tz),
            "open": pl.Series([bar.open for bar in bars], dtype=pl.Float64),
            "high": pl.Series([bar.high for bar in bars], dtype=pl.Float64),
            "low": pl.Series([bar.low for bar in bars], dtype=pl.Float64),
            "close": pl.Series([bar.close for bar in bars], dtype=pl.Float64),
            "volume": pl.Series(volumes, dtype=pl.Int64 if integral else pl.Float64),
        }
    )


class InstrumentData:
    """``suite["MNQ"].data``: bars, prices and statistics of one instrument."""

    def __init__(self, pipeline: Pipeline, symbol: str) -> None:
        self._pipeline = pipeline
        self.symbol = symbol.upper()

    @property
    def _state(self) -> InstrumentState:
        return self._pipeline.instrument(self.symbol)

    @property
    def timeframes(self) -> list[str]:
        return [tf.label for tf in self._pipeline.timeframes]

    def bars(self, timeframe: str = "5min", *, include_forming: bool = True) -> list[Bar]:
        """Closed bars (oldest first) plus, by default, the forming one."""
        label = parse_timeframe(timeframe).label
        builder = self._state.builder
        if label not in builder.series:
            raise ValueError(
                f"timeframe {label!r} is not configured; this suite builds {self.timeframes}"
            )
        return builder.bars(label, include_forming)

    async def get_data(self, timeframe: str = "5min", bars: int | None = None) -> pl.DataFrame:
        """OHLCV of ``timeframe`` (last ``bars`` rows when given); the forming bar is last."""
        rows = self.bars(timeframe)
        if bars is not None:
            rows = rows[-bars:] if bars > 0 else []
        return bars_to_frame(rows, self._state.tz.key)

    async def get_current_price(self) -> float | None:
        """Last trade price, else the last quote's last/mid, else the latest bar close."""
        state = self._state
        if state.last_trade_price is not None:
            return state.last_trade_price
        quote = state.last_quote
        if quote is not None:
            if quote.last is not None:
                return quote.last
            if quote.bid is not None and quote.ask is not None:
                return (quote.bid + quote.ask) / 2
        for label, series in state.builder.series.items():
            forming = state.builder.forming(label)
            if forming is not None:
                return forming.close
            if series.closed:
                return series.closed[-1].close
        return None

    async def get_health_score(self) -> float:
        """0–100; the formula is in this module's docstring."""
        pipeline = self._pipeline
        connected = pipeline.connected
        connection = 0.0 if connected is False else 100.0
        frames = pipeline.stats["data_frames"]
        error_rate = pipeline.stats["decode_errors"] / frames if frames else 0.0
        errors = max(0.0, 100.0 - 1000.0 * error_rate)
        last = self._state.last_event_ns
        if last is None or pipeline.now_ns is None:
            freshness = 0.0
        else:
            age = pipeline.now_ns - last
            freshness = next((score for limit, score in FRESHNESS_STEPS if age <= limit), 25.0)
        return round(0.4 * connection + 0.3 * errors + 0.3 * freshness, 2)

    async def get_stats(self) -> dict[str, Any]:
        """Counters for this instrument and the feed it comes from."""
        state = self._state
        builder = state.builder
        return {
            "symbol": self.symbol,
            "trades": state.trades,
            "quotes": state.quotes,
            "depth_updates": state.depth_updates,
            "volume": state.volume,
            "sequence_gaps": state.sequence_gaps,
            "missing_exchange_time": state.missing_exchange_time,
            "late_ticks_dropped": {label: s.late_dropped for label, s in builder.series.items()},
            "bars": {label: len(builder.bars(label)) for label in builder.series},
            "last_event_ns": state.last_event_ns,
            "health_score": await self.get_health_score(),
            "feed": dict(self._pipeline.stats),
        }
