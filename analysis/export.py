"""Export: run a capture through the replay pipeline at max speed and write its bars.

Files written into the output folder (``<stamp>`` is the export time, UTC):

* ``bars_<stamp>.csv`` — ``timestamp,timeframe,open,high,low,close,volume``, one row per
  completed bar (with several instruments: ``bars_<INSTRUMENT>_<stamp>.csv``, one per
  instrument); or ``.parquet`` with ``--format parquet``;
* ``snapshot_<stamp>.json`` — ``export_timestamp``, ``data_summary`` (bar counts) and
  ``recent_data.bars`` (the last 5 bars of each instrument and timeframe);
* with ``--book N --every 1s``: ``book_<stamp>.csv`` (or ``.parquet``) — top-N order-book
  snapshots, one row per time, instrument and level (:data:`rtcap.analysis.booktable.BOOK_SCHEMA`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
import polars as pl
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from rtcap.analysis.booktable import snapshots_table
from rtcap.bars import bar_record
from rtcap.booksnap import BookSampler, BookSnapshot
from rtcap.events import Event, EventType
from rtcap.models import Bar
from rtcap.pipeline import Pipeline
from rtcap.replay.run import run
from rtcap.replay.source import Replay
from rtcap.timeutil import ns_to_datetime

RECENT = 5


@dataclass
class ExportResult:
    files: list[Path]
    bars: dict[str, dict[str, int]]
    book_rows: int | None = None


# The columns of an exported bars file, CSV and Parquet alike: the start as epoch ns and as a
# time (TIMESTAMP(MICROS, UTC) in Parquet, ISO text in the instrument's zone in CSV), then the
# bar. Any engine reads them without rtcap.
BAR_COLUMNS = {
    "timestamp": pl.Datetime("us", "UTC"),
    "ts_ns": pl.Int64,
    "instrument": pl.String,
    "timeframe": pl.String,
    "open": pl.Float64,
    "high": pl.Float64,
    "low": pl.Float64,
    "close": pl.Float64,
    "volume": pl.Float64,
    "trades": pl.Int64,
    "gap": pl.Boolean,
}


def bars_frame(instrument: str, bars: list[Bar]) -> pl.DataFrame:
    """``bars`` of one instrument in :data:`BAR_COLUMNS`."""
    return pl.DataFrame(
        {
            "timestamp": [b.start_ns // 1000 for b in bars],
            "ts_ns": [b.start_ns for b in bars],
            "instrument": [instrument] * len(bars),
            "timeframe": [b.timeframe for b in bars],
            "open": [b.open for b in bars],
            "high": [b.high for b in bars],
            "low": [b.low for b in bars],
            "close": [b.close for b in bars],
            "volume": [float(b.volume) for b in bars],
            "trades": [b.trades for b in bars],
            "gap": [b.gap for b in bars],
        },
        schema={**BAR_COLUMNS, "timestamp": pl.Int64},
    ).with_columns(pl.col("timestamp").cast(BAR_COLUMNS["timestamp"]))


async def export_bars(
    capture: str | Path,
    out: str | Path,
    timeframes: list[str],
    *,
    start=None,
    end=None,
    fmt: str = "csv",
    book: tuple[int, int] | None = None,
    recorders: list[str] | None = None,
) -> ExportResult:
    """``book`` = (levels, interval ns) also writes order-book snapshots."""
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"unknown export format {fmt!r}: use csv or parquet")
    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".rtcap-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ValueError(
            f"cannot write into --out {folder}: {exc.strerror or exc}; choose a writable folder"
        ) from None
    source = Replay(capture, None, start=start, end=end, recorders=recorders)
    pipeline = Pipeline(
        None,
        timeframes,
        wanted={EventType.BAR_CLOSED},
        books=book is not None,
        contracts=source.contract_names,
    )
    sampler = BookSampler(pipeline, *book) if book else None
    snapshots: list[BookSnapshot] = []
    closed: dict[str, list[Bar]] = {}

    def keep(events: list[Event]) -> None:
        for event in events:
            closed.setdefault(event.instrument, []).append(event.data["bar"])

    await run(source, pipeline, keep, sampler=sampler, on_snapshots=snapshots.extend)
    stamp_ns = time.time_ns()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(stamp_ns / 1e9))
    files = []
    instruments = sorted(pipeline.instruments)
    for symbol in instruments:
        tz = pipeline.instrument(symbol).tz
        bars = sorted(closed.get(symbol, []), key=lambda b: (b.timeframe, b.start_ns))
        frame = bars_frame(symbol, bars)
        name = f"bars_{stamp}" if len(instruments) == 1 else f"bars_{symbol}_{stamp}"
        path = folder / f"{name}.{fmt}"
        if fmt == "csv":
            # text times in the instrument's own zone, as people read them
            zoned = pl.col("timestamp").dt.convert_time_zone(tz.key)
            frame.with_columns(zoned.dt.to_string("%Y-%m-%dT%H:%M:%S%:z")).write_csv(path)
        else:
            frame.write_parquet(path, compression="zstd")
        files.append(path)
    summary = {
        symbol: {
            tf.label: sum(b.timeframe == tf.label for b in closed.get(symbol, []))
            for tf in pipeline.timeframes
        }
        for symbol in instruments
    }
    recent = {
        symbol: {
            tf.label: [
                bar_record(b, pipeline.instrument(symbol).tz)
                for b in [b for b in closed.get(symbol, []) if b.timeframe == tf.label][-RECENT:]
            ]
            for tf in pipeline.timeframes
        }
        for symbol in instruments
    }
    snapshot = {
        "export_timestamp": ns_to_datetime(stamp_ns).isoformat(),
        "capture": str(capture),
        "data_summary": {
            "bars": summary,
            "frames": source.frames_out,
            "timeframes": [tf.label for tf in pipeline.timeframes],
        },
        "recent_data": {"bars": recent},
    }
    path = folder / f"snapshot_{stamp}.json"
    path.write_bytes(orjson.dumps(snapshot, option=orjson.OPT_INDENT_2))
    files.append(path)
    book_rows = None
    if sampler is not None:
        table = snapshots_table(snapshots)
        book_rows = table.num_rows
        path = folder / f"book_{stamp}.{fmt}"
        if fmt == "csv":
            pa_csv.write_csv(table, path)
        else:
            pq.write_table(table, path, compression="zstd")
        files.append(path)
    return ExportResult(files, summary, book_rows)
