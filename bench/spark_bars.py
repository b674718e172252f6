"""The Spark bar job at dataset scale, in one run: `local-cluster[2,1,2048]` and `local[1]`
against `rtcap export ROOT` of the same dataset, bars compared row for row, and each task's peak
memory against what one task holding a whole capture needs.

The dataset is one simulated feed recorded by several recorders one after the other (so the
job has to merge bars across recorders), in many segments. Per-task memory is measured with
Python workers not reused, so each task's peak RSS is its own: the largest over all tasks, and
the same for a task that only imports rtcap (the floor), are printed beside the peak of one
process decoding a whole capture and building its bars (what a capture per task needed).

    python bench/spark_bars.py [--frames 2000000] [--recorders 4] [--segment-mb 8]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rtcap.cli  # noqa: F401  (before tests/ joins the path: its rtcap/ folder would shadow the package)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

TIMEFRAMES = ["1min", "5min"]
RATE = 2_000  # messages per simulated second


def build(folder: Path, frames: int, recorders: int, segment_mb: float) -> None:
    from helpers import write_capture

    from rtcap.simulator import MarketSimulator

    market = MarketSimulator(11, ("MNQ", "ES"), rate=RATE)
    every = list(market.frames(duration_s=frames / RATE))
    size = len(every) // recorders
    for index in range(recorders):
        part = every[index * size : None if index == recorders - 1 else (index + 1) * size]
        write_capture(folder / f"rec-{index}", part, source={"kind": "sim", "seed": 11,
                      "rate": RATE}, segment_max_bytes=int(segment_mb * 2**20),
                      flush_every=20_000).close()  # fmt: skip


def rows(table) -> list[tuple]:
    return sorted(
        (r["instrument"], r["timeframe"], r["start_ns"], r["open"], r["high"], r["low"],
         r["close"], r["volume"], r["trades"])
        for r in table.to_pylist()
    )  # fmt: skip


def spark_mode(dataset: Path, master: str, out: Path) -> None:
    """Run in a process of its own: the job's time and its bars."""
    import pyarrow.parquet as pq

    from rtcap.analysis import spark as rtcap_spark

    spark = rtcap_spark.session(master=master)
    spark.sparkContext.setLogLevel("ERROR")
    started = time.perf_counter()
    rtcap_spark.bars_job(spark, dataset, TIMEFRAMES, out / "bars")
    seconds = time.perf_counter() - started
    spark.stop()
    (out / "result.json").write_text(
        json.dumps({"seconds": seconds, "bars": rows(pq.read_table(out / "bars"))})
    )


def memory_mode(dataset: Path, master: str, out: Path) -> None:
    """Run in a process of its own: every task's peak RSS, Python workers not reused."""
    import pyarrow as pa

    from rtcap.analysis import spark as rtcap_spark
    from rtcap.analysis import sparkplan, sparktasks

    spark = rtcap_spark.session(master=master, **{"spark.python.worker.reuse": "false"})
    spark.sparkContext.setLogLevel("ERROR")

    def peaks(batches):
        for piece in sparktasks.pieces_of(batches):
            if piece["part"] >= 0:
                table = sparktasks.read_piece(piece)
                parts = sparktasks.bar_parts(piece, table, TIMEFRAMES)
                rows_read = table.num_rows
                del table, parts
            else:  # the floor: a task that only imports rtcap
                rows_read = 0
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            yield pa.RecordBatch.from_pylist([{"rows": rows_read, "peak_mb": peak}])

    plan = sparkplan.plan(dataset, across_venues=True)
    floor = dict(plan.pieces[0], part=-1, order=-1)
    frame = rtcap_spark.tasks_frame(spark, [*plan.pieces, floor], rtcap_spark.PIECES_DDL)
    measured = frame.mapInArrow(peaks, "rows bigint, peak_mb double").collect()
    spark.stop()
    tasks = [r.asDict() for r in measured]
    (out / "memory.json").write_text(json.dumps({
        "pieces": len(plan.pieces),
        "largest_piece_rows": max(t["rows"] for t in tasks),
        "task_peak_mb": max(t["peak_mb"] for t in tasks if t["rows"]),
        "floor_mb": min(t["peak_mb"] for t in tasks if not t["rows"]),
    }))  # fmt: skip


def whole_capture(capture: Path, out: Path) -> None:
    """Run in a process of its own: one capture decoded and built into bars at once."""
    import pyarrow as pa

    from rtcap.analysis import sparkplan, sparktasks

    plan = sparkplan.plan(capture)
    table = pa.concat_tables(sparktasks.read_piece(p) for p in plan.pieces)
    piece = dict(plan.pieces[0], part=0, parts=1)
    sparktasks.bar_parts(piece, table, TIMEFRAMES)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    (out / "whole.json").write_text(json.dumps({"rows": table.num_rows, "peak_mb": peak}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2_000_000)
    parser.add_argument("--recorders", type=int, default=4)
    parser.add_argument("--segment-mb", type=float, default=8, help="payload per segment")
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--dataset", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode == "whole":
        whole_capture(args.dataset, args.out)
        return
    if args.mode and args.mode.startswith("memory:"):
        memory_mode(args.dataset, args.mode.removeprefix("memory:"), args.out)
        return
    if args.mode:
        spark_mode(args.dataset, args.mode, args.out)
        return

    import pyarrow.parquet as pq
    from click.testing import CliRunner

    from rtcap.cli import main as cli
    from rtcap.storage.integrity import open_capture

    work = Path(tempfile.mkdtemp(prefix="rtcap-spark-bars-"))
    try:
        dataset = work / "dataset"
        started = time.perf_counter()
        build(dataset, args.frames, args.recorders, args.segment_mb)
        manifests = [open_capture(c) for c in sorted(dataset.iterdir())]
        segments = sum(len(m["segments"]) for m in manifests)
        total = sum(m["last_seq"] for m in manifests)
        size = sum(p.stat().st_size for p in dataset.rglob("*.parquet"))
        print(f"dataset: {total:,} frames from {args.recorders} recorders in {segments} segments "
              f"({size / 1e6:.0f} MB), built in {time.perf_counter() - started:.0f} s")  # fmt: skip

        started = time.perf_counter()
        result = CliRunner().invoke(cli, ["export", str(dataset), "--out", str(work / "export"),
                                          "--timeframes", ",".join(TIMEFRAMES),
                                          "--format", "parquet"])  # fmt: skip
        assert result.exit_code == 0, result.output
        export_s = time.perf_counter() - started
        exported = sorted(
            (r["instrument"], r["timeframe"], r["ts_ns"], r["open"], r["high"], r["low"],
             r["close"], r["volume"], r["trades"])
            for f in (work / "export").glob("bars_*.parquet")
            for r in pq.read_table(f).to_pylist()
        )  # fmt: skip

        runs = {}
        for master in ("local-cluster[2,1,2048]", "local[1]"):
            out = work / master.replace("[", "_").replace("]", "").replace(",", "_")
            out.mkdir()
            subprocess.run([sys.executable, __file__, "--mode", master, "--dataset",
                            str(dataset), "--out", str(out)], check=True, cwd=ROOT,
                           stderr=subprocess.DEVNULL)  # fmt: skip
            runs[master] = json.loads((out / "result.json").read_text())
        cluster = "local-cluster[2,1,2048]"
        subprocess.run([sys.executable, __file__, "--mode", f"memory:{cluster}", "--dataset",
                        str(dataset), "--out", str(work)], check=True, cwd=ROOT,
                       stderr=subprocess.DEVNULL)  # fmt: skip
        memory = json.loads((work / "memory.json").read_text())
        subprocess.run([sys.executable, __file__, "--mode", "whole", "--dataset",
                        str(dataset / "rec-0"), "--out", str(work)], check=True)  # fmt: skip
        whole = json.loads((work / "whole.json").read_text())

        print(f"rtcap export ROOT            {export_s:7.1f} s   1.00x   "
              f"{len(exported):,} bars")  # fmt: skip
        for master, run in runs.items():
            same = "identical" if [tuple(r) for r in run["bars"]] == exported else "DIFFERENT"
            print(f"Spark {master:23s}{run['seconds']:7.1f} s  {run['seconds'] / export_s:5.2f}x   "
                  f"bars {same}")  # fmt: skip
        print(f"per-task peak RSS  {memory['task_peak_mb']:6.0f} MB  ({memory['pieces']} tasks, "
              f"largest piece {memory['largest_piece_rows']:,} rows; a task that only imports "
              f"rtcap: {memory['floor_mb']:.0f} MB)")  # fmt: skip
        print(f"one capture at once {whole['peak_mb']:5.0f} MB  ({whole['rows']:,} rows: what a "
              f"task per capture needed)")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
