"""Analysis: 1-minute OHLCV of the real Binance capture (``../shared/data``), imported with
``rtcap import``, through the ``trades`` SQL view and through ``rtcap export``, against a
Polars ``group_by_dynamic`` over the same trades already in memory, in the same run.

    python bench/analysis.py
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path

import polars as pl

from rtcap.analysis.export import export_bars
from rtcap.analysis.views import connect
from rtcap.storage.importer import import_lines

SHARED = Path(__file__).resolve().parents[2] / "shared"
BINANCE = SHARED / "data" / "binance-spot" / "ethusdt_20240808.gz"
QUERY = """
    select time_bucket(interval 1 minute, exch_time) as minute, first(price order by seq) as open,
           max(price) as high, min(price) as low, last(price order by seq) as close,
           sum(volume) as volume, count(*) as trades
    from trades group by 1 order by 1
"""


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def main() -> None:
    if not BINANCE.exists():
        print(f"real Binance capture not found at {BINANCE}: nothing to measure")
        return
    work = Path(tempfile.mkdtemp(prefix="rtcap-analysis-"))
    try:
        import_lines(BINANCE, work / "eth", "hftbacktest")
        con = connect([work / "eth"])
        trades = con.sql("select exch_time, price, volume from trades order by seq").pl()
        base, _ = timed(
            lambda: (
                trades.sort("exch_time")
                .group_by_dynamic("exch_time", every="1m")
                .agg(
                    pl.col("price").first(),
                    pl.col("price").max().alias("high"),
                    pl.col("price").min().alias("low"),
                    pl.col("price").last().alias("close"),
                    pl.col("volume").sum(),
                )
            )
        )
        sql_time, rows = timed(lambda: connect([work / "eth"]).execute(QUERY).fetchall())
        export_time, result = timed(
            lambda: asyncio.run(export_bars(work / "eth", work / "out", ["1min"]))
        )
        print(f"1-minute OHLCV of the real capture ({trades.height:,} trades, {len(rows)} bars):")
        print(f"  baseline polars on in-memory trades : {base * 1e3:8.1f} ms")
        print(f"  rtcap sql, trades view (from disk)  : {sql_time * 1e3:8.1f} ms (target < 1000)")
        print(
            f"  rtcap export (replay pipeline)      : {export_time * 1e3:8.1f} ms (target < 1000)"
        )
        print(f"  bars exported: {result.bars}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
