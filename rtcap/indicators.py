"""Technical indicators as Polars expressions, applied with ``df.pipe(SMA, period=20)``.

Every function takes a DataFrame (or LazyFrame) with ``open/high/low/close/volume`` columns and
returns it with new columns named like the ProjectX SDK's (``sma_20``, ``rsi_14``, ``macd`` …).
Conventions follow TA-Lib: EMA and Wilder averages are seeded with the simple mean of their first
``period`` values (rows before that are null); RSI uses Wilder smoothing and is 100 when the
average loss is zero; Bollinger bands use the population standard deviation; OBV starts at the
first bar's volume.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import polars as pl

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)


def _check_period(period: int, name: str = "period") -> None:
    if not isinstance(period, int) or period < 1:
        raise ValueError(f"{name} must be a positive integer, got {period!r}")


def seeded_ewm(expr: pl.Expr, period: int, alpha: float) -> pl.Expr:
    """Recursive EMA with smoothing ``alpha``, seeded by the mean of the first ``period``
    non-null values (null before that). Leading nulls in ``expr`` are skipped."""
    seen = expr.is_not_null().cast(pl.Int64).cum_sum()
    seed = expr.filter(seen <= period).mean()
    seeded = (
        pl.when(seen < period)
        .then(None)
        .when((seen == period) & expr.is_not_null())
        .then(seed)
        .otherwise(expr)
    )
    return seeded.ewm_mean(alpha=alpha, adjust=False)


def ema_expr(expr: pl.Expr, period: int) -> pl.Expr:
    """Exponential moving average, ``alpha = 2 / (period + 1)``."""
    return seeded_ewm(expr, period, 2.0 / (period + 1))


def wilder_expr(expr: pl.Expr, period: int) -> pl.Expr:
    """Wilder's smoothing, ``alpha = 1 / period``."""
    return seeded_ewm(expr, period, 1.0 / period)


def SMA(df: Frame, period: int = 20, column: str = "close") -> Frame:
    """Simple moving average → ``sma_<period>``."""
    _check_period(period)
    return df.with_columns(pl.col(column).rolling_mean(period).alias(f"sma_{period}"))


def EMA(df: Frame, period: int = 20, column: str = "close") -> Frame:
    """Exponential moving average → ``ema_<period>``."""
    _check_period(period)
    return df.with_columns(ema_expr(pl.col(column), period).alias(f"ema_{period}"))


def RSI(df: Frame, period: int = 14, column: str = "close") -> Frame:
    """Relative Strength Index (Wilder) → ``rsi_<period>``."""
    _check_period(period)
    change = pl.col(column).diff()
    gain = wilder_expr(change.clip(lower_bound=0), period)
    loss = wilder_expr((-change).clip(lower_bound=0), period)
    rsi = (
        pl.when(loss.is_null())
        .then(None)
        .when(loss == 0)
        .then(100.0)
        .otherwise(100.0 - 100.0 / (1.0 + gain / loss))
    )
    return df.with_columns(rsi.alias(f"rsi_{period}"))


def MACD(
    df: Frame,
    fast_period: int = 12,
    slow_period: int = 26,
    signal_period: int = 9,
    column: str = "close",
) -> Frame:
    """MACD line (fast EMA − slow EMA), its signal EMA and the histogram →
    ``macd``, ``macd_signal``, ``macd_histogram``."""
    for value, name in (
        (fast_period, "fast_period"),
        (slow_period, "slow_period"),
        (signal_period, "signal_period"),
    ):
        _check_period(value, name)
    if fast_period >= slow_period:
        raise ValueError(f"fast_period ({fast_period}) must be below slow_period ({slow_period})")
    line = ema_expr(pl.col(column), fast_period) - ema_expr(pl.col(column), slow_period)
    df = df.with_columns(line.alias("macd"))
    df = df.with_columns(ema_expr(pl.col("macd"), signal_period).alias("macd_signal"))
    return df.with_columns((pl.col("macd") - pl.col("macd_signal")).alias("macd_histogram"))


def BBANDS(df: Frame, period: int = 20, std_dev: float = 2.0, column: str = "close") -> Frame:
    """Bollinger bands → ``bb_upper_<p>``, ``bb_middle_<p>``, ``bb_lower_<p>``."""
    _check_period(period)
    middle = pl.col(column).rolling_mean(period)
    spread = pl.col(column).rolling_std(period, ddof=0) * std_dev
    return df.with_columns(
        (middle + spread).alias(f"bb_upper_{period}"),
        middle.alias(f"bb_middle_{period}"),
        (middle - spread).alias(f"bb_lower_{period}"),
    )


def true_range() -> pl.Expr:
    """max(high − low, |high − previous close|, |low − previous close|)."""
    previous = pl.col("close").shift(1)
    return pl.max_horizontal(
        pl.col("high") - pl.col("low"),
        (pl.col("high") - previous).abs(),
        (pl.col("low") - previous).abs(),
    )


def ATR(df: Frame, period: int = 14) -> Frame:
    """Average True Range (Wilder) → ``atr_<period>``."""
    _check_period(period)
    return df.with_columns(wilder_expr(true_range(), period).alias(f"atr_{period}"))


def VWAP(df: Frame, anchor: str | None = None) -> Frame:
    """Volume-weighted average of the typical price → ``vwap``.

    Cumulative over the whole frame, or restarted every ``anchor`` period of ``timestamp``
    (a Polars duration such as ``"1d"``).
    """
    typical = (pl.col("high") + pl.col("low") + pl.col("close")) / 3
    weighted = (typical * pl.col("volume")).cum_sum()
    volume = pl.col("volume").cast(pl.Float64).cum_sum()
    vwap = weighted / volume
    if anchor is not None:
        vwap = vwap.over(pl.col("timestamp").dt.truncate(anchor))
    return df.with_columns(vwap.alias("vwap"))


def OBV(df: Frame) -> Frame:
    """On-Balance Volume → ``obv``."""
    direction = pl.col("close").diff().sign().fill_null(1).cast(pl.Int64)
    return df.with_columns((direction * pl.col("volume")).cum_sum().alias("obv"))


INDICATORS: dict[str, Callable[..., Any]] = {
    "sma": SMA,
    "ema": EMA,
    "rsi": RSI,
    "macd": MACD,
    "bbands": BBANDS,
    "atr": ATR,
    "vwap": VWAP,
    "obv": OBV,
}


def parse_indicator_spec(spec: str) -> tuple[str, tuple[int, ...]]:
    """``"sma:20"`` → ``("sma", (20,))``; ``"macd:12:26:9"``; ``"obv"``."""
    name, *params = spec.strip().lower().split(":")
    if name not in INDICATORS:
        raise ValueError(f"unknown indicator {name!r}: choose from {', '.join(INDICATORS)}")
    try:
        return name, tuple(int(p) for p in params)
    except ValueError:
        raise ValueError(f"indicator parameters must be integers: {spec!r}") from None


def apply_indicator(df: Frame, spec: str) -> Frame:
    """Apply one ``name[:param…]`` spec, as the command line writes them."""
    name, params = parse_indicator_spec(spec)
    result: Frame = INDICATORS[name](df, *params)  # what df.pipe(indicator, *params) does
    return result
