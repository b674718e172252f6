"""The cold form (``rtcap compact``): size, query speed, replay speed and compaction throughput,
each against a baseline measured in the same run, on the real Binance captures.

1. Size of each real capture (../shared/data, else the fixtures' slices) sealed hot and then
   compacted, against gzip-6 of the original ``<ns> <frame>`` lines, with the size of each
   table of the cold files.
2. ``rtcap sql`` 1-minute OHLCV from the ``trades`` view (open, high, low, close, volume) on the
   USD-M capture repeated ``--times`` times end to end (each copy's receive times shifted past
   the previous one), compacted against the same capture hot (the views then parse JSON):
   connection plus query, as the command runs them.
3. Replay at max speed (``rtcap replay``'s loop: every frame through the pipeline, events on the
   bus) of that capture, compacted against hot.
4. Compaction throughput against ``rtcap import`` of the same file, in frames per second.
5. ProjectX (no real capture is at hand: the seeded simulated market, MNQ and ES): size hot and
   compacted against gzip-6 of its ``<ns> <frame>`` lines, frames kept raw, and replay at max
   speed compacted against hot.

    python bench/cold.py [--times 10] [--runs 3] [--projectx-seconds 600]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gzip
import io
import shutil
import tempfile
import time
from pathlib import Path

from timing import best_of_interleaved

from replay import through_replay_command
from rtcap.analysis.views import connect
from rtcap.simulator import MarketSimulator
from rtcap.storage.compact import compact, table_sizes
from rtcap.storage.importer import import_lines
from rtcap.storage.integrity import open_capture
from rtcap.storage.segments import SEAL_LEVEL
from rtcap.storage.writer import CaptureWriter

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared" / "data"
FIXTURES = HERE.parent / "fixtures"
CAPTURES = {
    "USD-M ETHUSDT": ("binance-usdm/ethusdt_20240808.gz", "binance-usdm/ethusdt_20240808_1min.gz"),
    "spot ETHUSDT": ("binance-spot/ethusdt_20240808.gz", "binance-spot/ethusdt_20240808_3min.gz"),
    "COIN-M ETHUSD_PERP": (
        "binance-coinm/ethusd_perp_20240808.gz",
        "binance-coinm/ethusd_perp_20240808_1min.gz",
    ),
}
OHLCV = """
    select time_bucket(interval 1 minute, recv_time) as minute, symbol,
           first(price order by seq) as open, max(price) as high, min(price) as low,
           last(price order by seq) as close, sum(volume) as volume, count(*) as trades
    from trades group by all order by all
"""


def source_of(name: str) -> Path:
    whole, piece = CAPTURES[name]
    return SHARED / whole if (SHARED / whole).exists() else FIXTURES / piece


def gzip6(raw: bytes) -> int:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=6) as out:
        out.write(raw)
    return len(buffer.getvalue())


def sealed_bytes(capture: Path) -> int:
    return sum(f["bytes"] for s in open_capture(capture)["segments"] for f in s["files"])


def cold_files(capture: Path) -> list[Path]:
    return [capture / f["path"] for s in open_capture(capture)["segments"] for f in s["files"]]


def sizes(work: Path) -> None:
    print("1. size against gzip-6 of the original lines (same run)")
    for name in CAPTURES:
        source = source_of(name)
        raw = gzip.decompress(source.read_bytes())
        gz = gzip6(raw)
        capture = work / f"size-{name.split()[0]}"
        import_lines(source, capture, "hftbacktest")
        hot = sealed_bytes(capture)
        (report,) = compact(capture)
        cold = sealed_bytes(capture)
        frames = raw.count(b"\n")
        print(
            f"   {name:<19} {frames:>7,} frames  gzip-6 {gz / 1e6:6.2f} MB  "
            f"hot zstd-{SEAL_LEVEL} {hot / gz:.3f}  cold {cold / gz:.3f}  "
            f"({report.raw} kept raw)   [{source.relative_to(source.parents[1])}]"
        )
        tables = table_sizes(cold_files(capture))
        print(
            "      "
            + ", ".join(
                f"{table} {size / cold:.0%}"
                for table, size in sorted(tables.items(), key=lambda t: -t[1])
            )
        )


def repeated(source: Path, times: int, out: Path) -> int:
    """``source``'s lines ``times`` times in a row, each copy's receive times shifted past the
    previous copy's end; returns the number of lines."""
    lines = gzip.decompress(source.read_bytes()).splitlines()
    stamps = [int(line.split(b" ", 1)[0]) for line in lines]
    span = max(stamps) - min(stamps) + 1_000_000
    with gzip.open(out, "wb", compresslevel=1) as handle:
        for copy in range(times):
            shift = copy * span
            handle.writelines(
                b"%d %s\n" % (stamp + shift, line.split(b" ", 1)[1])
                for stamp, line in zip(stamps, lines, strict=True)
            )
    return len(lines) * times


def query(capture: Path) -> list:
    return connect([capture]).execute(OHLCV).fetchall()


def at_scale(work: Path, times: int, runs: int) -> None:
    source = source_of("USD-M ETHUSDT")
    big = work / "repeated.gz"
    frames = repeated(source, times, big)
    hot, cold = work / "hot", work / "cold"
    started = time.perf_counter()
    import_lines(big, hot, "hftbacktest")
    import_seconds = time.perf_counter() - started
    import_lines(big, cold, "hftbacktest")
    (report,) = compact(cold)
    # the same bars; a sum of volumes may differ in its last bit with the order of addition
    same = [(*row[:6], round(row[6], 6), row[7]) for row in query(hot)]
    assert same == [(*row[:6], round(row[6], 6), row[7]) for row in query(cold)], "OHLCV differs"
    hot_query, cold_query = best_of_interleaved(runs, lambda: query(hot), lambda: query(cold))
    print(f"2. rtcap sql 1-minute OHLCV from trades, {frames:,} frames ({times}x USD-M)")
    print(f"   hot (JSON views)     {hot_query:7.3f} s  1.00x")
    print(f"   compacted (typed)    {cold_query:7.3f} s  {hot_query / cold_query:.1f}x faster")
    hot_replay, cold_replay = best_of_interleaved(
        runs,
        lambda: asyncio.run(through_replay_command(hot)),
        lambda: asyncio.run(through_replay_command(cold)),
    )
    print("3. replay at max speed through the pipeline and bus")
    print(f"   hot                  {hot_replay:7.3f} s  {frames / hot_replay:10,.0f} frames/s")
    print(
        f"   compacted            {cold_replay:7.3f} s  {frames / cold_replay:10,.0f} frames/s "
        f"({cold_replay / hot_replay:.2f}x the hot time)"
    )
    print("4. compaction against import of the same file")
    rate = frames / import_seconds
    print(f"   rtcap import         {import_seconds:7.3f} s  {rate:10,.0f} frames/s")
    print(
        f"   rtcap compact        {report.seconds:7.3f} s  {frames / report.seconds:10,.0f} "
        f"frames/s ({report.seconds / import_seconds:.2f}x the import time; "
        f"{report.hot_bytes / 1e6:.1f} MB -> {report.cold_bytes / 1e6:.1f} MB)"
    )


def simulated(capture: Path, seconds: int) -> bytes:
    """A closed capture of the simulated ProjectX market; returns its ``<ns> <frame>`` lines."""
    writer = CaptureWriter(capture, source={"kind": "simulated"}, fsync="never")
    writer.open()
    lines = []
    for frame in MarketSimulator(7, ["MNQ", "ES"], rate=200).frames(duration_s=seconds):
        writer.append(dataclasses.replace(frame, seq=0))  # the writer numbers its frames
        lines.append(b"%d %s\n" % (frame.recv_ns, frame.payload))
        if writer.pending >= 5000:
            writer.flush()
    writer.close()
    return b"".join(lines)


def projectx(work: Path, seconds: int, runs: int) -> None:
    hot, cold = work / "px-hot", work / "px-cold"
    raw = simulated(hot, seconds)
    simulated(cold, seconds)
    gz = gzip6(raw)
    (report,) = compact(cold)
    print(f"5. ProjectX, the simulated market: {report.frames:,} frames ({seconds} s)")
    print(
        f"   gzip-6 {gz / 1e6:6.2f} MB  hot zstd-{SEAL_LEVEL} {sealed_bytes(hot) / gz:.3f}  "
        f"cold {sealed_bytes(cold) / gz:.3f}  ({report.typed:,} typed, {report.raw:,} kept raw)"
    )
    hot_replay, cold_replay = best_of_interleaved(
        runs,
        lambda: asyncio.run(through_replay_command(hot)),
        lambda: asyncio.run(through_replay_command(cold)),
    )
    print(
        f"   replay at max speed: hot {hot_replay:.3f} s, compacted {cold_replay:.3f} s "
        f"({cold_replay / hot_replay:.2f}x the hot time)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--times", type=int, default=10, help="copies of the USD-M capture")
    parser.add_argument("--runs", type=int, default=3, help="best of this many runs")
    parser.add_argument(
        "--projectx-seconds", type=int, default=600, help="of the simulated market (0: none)"
    )
    parser.add_argument("--only-projectx", action="store_true", help="section 5 alone")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rtcap-cold-"))
    try:
        if not args.only_projectx:
            sizes(work)
            at_scale(work, args.times, args.runs)
        if args.projectx_seconds:
            projectx(work, args.projectx_seconds, args.runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
