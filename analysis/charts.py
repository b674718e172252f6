"""Candlestick charts of a capture's (or an export's) bars, with volume, indicator panels and
the capture's outages shaded; written as one self-contained HTML file (plotly.js embedded, so
it opens offline). With ``book``, the resting size of the order book rebuilt from the capture's
depth is drawn as a heat map under the candles (price × time, one column per snapshot)."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from rtcap.booksnap import BookSampler, BookSnapshot
from rtcap.dataview import bars_to_frame
from rtcap.events import Event, EventType
from rtcap.indicators import apply_indicator, parse_indicator_spec
from rtcap.pipeline import Pipeline
from rtcap.replay.run import run
from rtcap.replay.source import Replay
from rtcap.storage.errors import CaptureError
from rtcap.timeframes import parse_timeframe
from rtcap.timeutil import ns_to_datetime

OVERLAYS = frozenset({"sma", "ema", "bbands", "vwap"})  # drawn over the candles
HEATMAP_COLUMNS = 600  # snapshots across the chart: enough to see, small enough to open


@dataclass
class ChartData:
    instrument: str
    timeframe: str
    bars: pl.DataFrame
    gaps: list[tuple[datetime, datetime]] = field(default_factory=list)
    book: list[BookSnapshot] | None = None


async def bars_from_capture(
    capture: Path, timeframe: str, instrument: str | None, book_levels: int | None = None
) -> ChartData:
    label = parse_timeframe(timeframe).label
    source = Replay(capture)
    pipeline = Pipeline(
        None,
        [label],
        wanted={EventType.GAP},
        books=book_levels is not None,
        contracts=source.contract_names,
    )
    gaps: list[tuple[int, int]] = []
    sampler = None
    snapshots: list[BookSnapshot] = []
    if book_levels is not None:
        first, last = source.reader.span
        every = max(1_000_000_000, (last - first) // HEATMAP_COLUMNS)
        sampler = BookSampler(pipeline, book_levels, every)

    def note_gaps(events: list[Event]) -> None:
        for event in events:
            if event.data.get("kind") == "connection" and "from_ns" in event.data:
                gaps.append((event.data["from_ns"], event.data["to_ns"]))

    await run(source, pipeline, note_gaps, sampler=sampler, on_snapshots=snapshots.extend)
    if not pipeline.instruments:
        raise CaptureError(f"{capture} holds no market data to chart")
    symbol = (instrument or sorted(pipeline.instruments)[0]).upper()
    if symbol not in pipeline.instruments:
        raise CaptureError(
            f"{capture} holds no instrument {symbol!r}: choose one of "
            f"{', '.join(sorted(pipeline.instruments))}"
        )
    state = pipeline.instrument(symbol)
    frame = bars_to_frame(state.builder.bars(label), state.tz.key)
    shaded = [(ns_to_datetime(a, state.tz), ns_to_datetime(b, state.tz)) for a, b in gaps]
    book = None
    if sampler is not None:
        if state.book is None:
            raise CaptureError(
                f"{capture} holds no order-book depth for {symbol}: drop --book, or record "
                "with a depth stream"
            )
        book = [s for s in snapshots if s.instrument == symbol]
    return ChartData(symbol, label, frame, shaded, book)


def book_heatmap(snapshots: list[BookSnapshot], tz) -> go.Heatmap:
    """Resting size by price (rows) and snapshot time (columns); empty cells are blank."""
    prices = sorted({p for s in snapshots for p, _ in (*s.bids, *s.asks)})
    row_of = {price: index for index, price in enumerate(prices)}
    z: list[list[float | None]] = [[None] * len(snapshots) for _ in prices]
    for column, snapshot in enumerate(snapshots):
        for price, size in (*snapshot.bids, *snapshot.asks):
            z[row_of[price]][column] = size
    return go.Heatmap(
        x=[ns_to_datetime(s.ns, tz) for s in snapshots],
        y=prices,
        z=z,
        colorscale="Blues",
        opacity=0.6,
        showscale=False,
        name="book size",
        hovertemplate="%{x}<br>%{y}: %{z}<extra>book</extra>",
    )


def bars_from_csv(path: Path, timeframe: str) -> ChartData:
    label = parse_timeframe(timeframe).label
    table = pl.read_csv(path, schema_overrides={"timestamp": pl.String})
    missing = {"timestamp", "timeframe", "open", "high", "low", "close", "volume"} - set(
        table.columns
    )
    if missing:
        raise ValueError(
            f"{path} lacks columns {sorted(missing)}: give a bars CSV from rtcap export"
        )
    table = table.filter(pl.col("timeframe") == label)
    if table.is_empty():
        raise ValueError(f"{path} has no {label} bars")
    bars = table.select(
        pl.col("timestamp").str.to_datetime(time_zone="UTC"),
        "open",
        "high",
        "low",
        "close",
        "volume",
    ).sort("timestamp")
    match = re.match(r"bars_([A-Za-z0-9.]+)_\d{8}T", path.name)
    return ChartData(match.group(1) if match else path.stem, label, bars)


def chart(data: ChartData, indicators: list[str]) -> go.Figure:
    bars = data.bars
    for spec in indicators:
        bars = apply_indicator(bars, spec)
    panels = [parse_indicator_spec(s)[0] for s in indicators]
    lower = [name for name in dict.fromkeys(panels) if name not in OVERLAYS]
    rows = 2 + len(lower)
    figure = make_subplots(
        rows=rows,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.03,
        row_heights=[0.55, 0.15] + [0.3 / max(1, len(lower))] * len(lower),
        subplot_titles=[f"{data.instrument} {data.timeframe}", "volume", *lower],
    )
    x = bars["timestamp"].to_list()
    column = {name: bars[name].to_list() for name in bars.columns}
    if data.book:
        tz = x[0].tzinfo if x else None
        figure.add_trace(book_heatmap(data.book, tz), row=1, col=1)  # first: under the candles
    candles = go.Candlestick(
        x=x,
        open=column["open"],
        high=column["high"],
        low=column["low"],
        close=column["close"],
        name=data.instrument,
    )
    figure.add_trace(candles, row=1, col=1)
    volume = go.Bar(x=x, y=column["volume"], name="volume", marker_color="#7f8c8d")
    figure.add_trace(volume, row=2, col=1)
    base = set(data.bars.columns)
    for name in [c for c in bars.columns if c not in base]:
        family = {"bb": "bbands"}.get(name.split("_")[0], name.split("_")[0])
        row = 1 if family in OVERLAYS else 3 + lower.index(family)
        line = go.Scatter(x=x, y=column[name], name=name, mode="lines", line={"width": 1.2})
        figure.add_trace(line, row=row, col=1)
    for start, end in data.gaps:  # shade every panel, label once
        figure.add_vrect(
            x0=start, x1=end, fillcolor="#e74c3c", opacity=0.18, line_width=0, row="all", col=1
        )
        figure.add_annotation(
            x=start,
            y=1,
            xref="x",
            yref="y domain",
            text="gap",
            showarrow=False,
            xanchor="left",
            font={"color": "#c0392b"},
        )
    figure.update_layout(
        template="plotly_white",
        xaxis_rangeslider_visible=False,
        height=420 + 180 * rows,
        margin={"l": 50, "r": 20, "t": 50, "b": 30},
        legend={"orientation": "h"},
    )
    return figure


def write_chart(
    source: Path,
    out: Path,
    timeframe: str,
    indicators: list[str],
    instrument: str | None = None,
    book_levels: int | None = None,
) -> ChartData:
    if source.is_file():
        if book_levels is not None:
            raise ValueError("--book needs a capture (the book is rebuilt from its depth)")
        data = bars_from_csv(source, timeframe)
    else:
        data = asyncio.run(bars_from_capture(source, timeframe, instrument, book_levels))
    if data.bars.is_empty():
        raise ValueError(f"no {data.timeframe} bars for {data.instrument} in {source}")
    chart(data, indicators).write_html(str(out), include_plotlyjs=True, full_html=True)
    return data
