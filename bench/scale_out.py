"""Captures on object storage and in Spark, each against a baseline measured in this run.

* upload: rtcap's uploader (sealed files, then the manifest, each checked) against a bare
  ``pyarrow.fs.copy_files`` of the same folder, to an S3-compatible server on loopback (moto);
* sql: ``rtcap sql s3://…`` (cold: mirror then query; warm: mirror up to date) against the same
  query on the local capture;
* bars: the Spark bar job (local[2]) against ``rtcap export`` of the same dataset root
  (``bench/spark_bars.py`` measures it at scale, per-task memory included).
  Spark is not expected to win on one machine with 2 cores: the point is that it scales out.

    python bench/scale_out.py [--seconds 120] [--captures 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.fs as pafs
from click.testing import CliRunner

from rtcap.cli import main as cli
from rtcap.simulator import MarketSimulator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from helpers import write_capture  # noqa: E402


def timed(function, *args) -> float:
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


def invoke(*args: str) -> None:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output


def moto_server() -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return server, f"http://127.0.0.1:{port}"
        time.sleep(0.1)
    raise RuntimeError("moto server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--captures", type=int, default=3)
    args = parser.parse_args()
    server, endpoint = moto_server()
    folder = Path(tempfile.mkdtemp(prefix="rtcap-bench-"))
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_ENDPOINT_URL=endpoint,
        AWS_REGION="us-east-1",
        RTCAP_CACHE=str(folder / "cache"),
    )
    try:
        from rtcap.storage.remote import Uploader

        fs = pafs.S3FileSystem(endpoint_override=endpoint, scheme="http", region="us-east-1",
                               allow_bucket_creation=True)  # fmt: skip
        fs.create_dir("bench")
        dataset = folder / "dataset"
        # one feed, recorded by one recorder after another (the same feed twice at once would
        # be refused by every reader)
        market = MarketSimulator(0, ("MNQ", "ES"), rate=400)
        frames = list(market.frames(duration_s=args.seconds * args.captures))
        size = len(frames) // args.captures
        for index in range(args.captures):
            write_capture(dataset / f"rec-{index}", frames[index * size : (index + 1) * size],
                          source={"kind": "sim", "seed": 0, "rate": 400},
                          segment_max_bytes=2 << 20).close()  # fmt: skip
        capture = dataset / "rec-0"
        size = sum(p.stat().st_size for p in capture.rglob("*") if p.is_file())
        print(
            f"{args.captures} captures of {args.seconds:g} s at 400 msg/s; "
            f"one is {size / 1e6:.1f} MB"
        )

        bare = timed(lambda: pafs.copy_files(str(capture), "bench/bare", destination_filesystem=fs))
        ours = timed(lambda: Uploader("s3://bench/rtcap", capture).push())
        print(f"upload  bare pyarrow.fs copy {size / bare / 1e6:8.1f} MB/s")
        print(
            f"upload  rtcap uploader       {size / ours / 1e6:8.1f} MB/s   "
            f"{ours / bare:5.2f}x the bare copy's time"
        )

        query = ["-c", "select kind, count(*), sum(bytes) from frames group by 1"]
        local = min(timed(invoke, "sql", capture, *query) for _ in range(3))
        cold = timed(invoke, "sql", "s3://bench/rtcap", *query)
        warm = min(timed(invoke, "sql", "s3://bench/rtcap", *query) for _ in range(3))
        print(f"sql     local {local:6.2f} s | s3 cold {cold:6.2f} s ({cold / local:5.2f}x) | "
              f"s3 warm {warm:6.2f} s ({warm / local:5.2f}x)")  # fmt: skip

        exports = timed(invoke, "export", dataset, "--out", folder / "exports", "--timeframes",
                        "1min,5min", "--format", "parquet")  # fmt: skip
        from rtcap.analysis import spark as rtcap_spark

        spark = rtcap_spark.session(master="local[2]")
        spark.sparkContext.setLogLevel("ERROR")
        started = time.perf_counter()
        rtcap_spark.bars_job(spark, dataset, ["1min", "5min"], folder / "spark-bars")
        job = time.perf_counter() - started
        print(f"bars    rtcap export ROOT {exports:6.2f} s | Spark job local[2] {job:6.2f} s "
              f"({job / exports:5.2f}x; Spark's start-up not counted)")  # fmt: skip
        spark.stop()
    finally:
        server.terminate()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
