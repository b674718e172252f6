"""``rtcap simulate``: run the seeded simulated market through the kernel and print its bars.

Everything happens in simulated time, so the output depends only on the options: the same seed
prints the same bars on any machine (the golden fixture in ``fixtures/golden`` is made this way).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click
import orjson

from rtcap.cli import summary
from rtcap.cli.options import indicators_option, instruments_option, timeframes_option
from rtcap.cli.output import table_text
from rtcap.models import Bar
from rtcap.pipeline import Pipeline
from rtcap.simulator import DEFAULT_START_NS, MarketSimulator
from rtcap.timeutil import NS, parse_iso_ns

if TYPE_CHECKING:
    import polars as pl


def bar_table(pipeline: Pipeline) -> pl.DataFrame:
    """Every bar of every instrument and timeframe (closed ones, then the forming one)."""
    import polars as pl

    from rtcap.dataview import bars_to_frame

    parts = []
    for symbol, state in pipeline.instruments.items():
        for label in state.builder.series:
            bars: list[Bar] = state.builder.bars(label)
            forming = state.builder.forming(label)
            if not bars:
                continue
            frame = bars_to_frame(bars, "UTC").with_columns(
                pl.lit(symbol).alias("instrument"),
                pl.lit(label).alias("timeframe"),
                pl.Series("trades", [b.trades for b in bars], dtype=pl.Int64),
                pl.Series("flat", [b.flat for b in bars]),
                pl.Series("gap", [b.gap for b in bars]),
                pl.Series("complete", [b is not forming for b in bars]),
            )
            parts.append(frame)
    columns = [
        "instrument",
        "timeframe",
        "timestamp",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "trades",
        "flat",
        "gap",
        "complete",
    ]
    if not parts:
        return pl.DataFrame()
    return pl.concat(parts, how="vertical_relaxed").select(columns)


@click.command(short_help=summary("simulate"))
@click.option("--seed", default=7, show_default=True, help="Random seed of the market.")
@click.option(
    "--instruments",
    default="MNQ",
    show_default=True,
    callback=instruments_option,
    help="Comma-separated futures symbols (MNQ, NQ, ES, MES, YM, RTY, CL, GC …).",
)
@click.option(
    "--seconds",
    default=900.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Simulated duration.",
)
@click.option(
    "--rate",
    default=40.0,
    show_default=True,
    type=click.FloatRange(min=0.01),
    help="Mean messages per second (all instruments together).",
)
@click.option(
    "--start",
    default=None,
    metavar="ISO",
    help="Simulated start time, e.g. 2025-09-02T13:30:00Z (default: that instant).",
)
@click.option(
    "--timeframes",
    default="1min,5min",
    show_default=True,
    callback=timeframes_option,
    help="Bar timeframes, e.g. 15sec,1min,4hr,1day.",
)
@click.option(
    "--indicators",
    default="",
    callback=indicators_option,
    metavar="SPECS",
    help="Indicators on the first timeframe, e.g. sma:20,rsi:14,macd (table format).",
)
@click.option("--fill-flat", is_flag=True, help="Emit flat bars for buckets with no trades.")
@click.option(
    "--price-source",
    type=click.Choice(["trades", "trades+quotes"]),
    default="trades",
    show_default=True,
    help="What moves OHLC (volume is trades only).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "jsonl"]),
    default="table",
    show_default=True,
    help="Output format.",
)
@click.option(
    "--tail",
    default=12,
    show_default=True,
    type=click.IntRange(min=1),
    help="Rows per table (table format).",
)
def simulate(
    seed: int,
    instruments: list[str],
    seconds: float,
    rate: float,
    start: str | None,
    timeframes: list[str],
    indicators: list[str],
    fill_flat: bool,
    price_source: str,
    fmt: str,
    tail: int,
) -> None:
    """Run the seeded simulated market through the kernel and print the bars it builds.

    Frames are generated exactly as the gateway's market hub would send them, decoded by the
    ProjectX codec and folded into bars in simulated time; nothing touches the network.
    """
    import polars as pl

    try:
        start_ns = DEFAULT_START_NS if start is None else parse_iso_ns(start)
        market = MarketSimulator(seed, instruments, start_ns=start_ns, rate=rate)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    pipeline = Pipeline(
        instruments, timeframes, codec="projectx", fill_flat=fill_flat, price_source=price_source
    )
    frames = 0
    for frame in market.frames(duration_s=seconds):
        pipeline.feed(frame)
        frames += 1
    end_ns = start_ns + int(seconds * NS)
    pipeline.advance_to(end_ns + pipeline.close_grace_ns)
    table = bar_table(pipeline)
    if fmt == "csv":
        stamps = pl.col("timestamp").dt.to_string("%Y-%m-%dT%H:%M:%SZ")
        sys.stdout.write(table.with_columns(stamps).write_csv())
        return
    if fmt == "jsonl":
        for row in table.iter_rows(named=True):
            row["timestamp"] = row["timestamp"].isoformat()
            sys.stdout.write(orjson.dumps(row).decode() + "\n")
        return
    _print_tables(pipeline, table, timeframes, indicators, tail, frames, seed, seconds)


def _print_tables(pipeline, table, timeframes, indicators, tail, frames, seed, seconds) -> None:
    import polars as pl

    from rtcap.indicators import apply_indicator

    click.echo(
        f"simulated {seconds:g}s of market (seed {seed}): {frames} frames, "
        f"{sum(s.trades for s in pipeline.instruments.values())} trades, "
        f"{pipeline.stats['decode_errors']} decode errors"
    )
    for symbol, state in pipeline.instruments.items():
        for index, label in enumerate(timeframes):
            bars = table.filter((pl.col("instrument") == symbol) & (pl.col("timeframe") == label))
            if bars.is_empty():
                continue
            frame = bars.select(
                "timestamp", "open", "high", "low", "close", "volume", "trades", "complete"
            )
            frame = frame.with_columns(pl.col("timestamp").dt.convert_time_zone(state.tz.key))
            if index == 0:
                for spec in indicators:
                    frame = apply_indicator(frame, spec)
            click.echo(f"\n{symbol} {label} bars ({state.tz.key}), last {tail}:")
            click.echo(table_text(frame.tail(tail), tail))
