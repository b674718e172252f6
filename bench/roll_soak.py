"""A long recording to object storage that rolls: local staging and the recorder's memory must
stay flat, and the store must hold every day whole.

Starts moto's S3 server and ``rtcap sim`` on loopback, records the sim with
``rtcap record --source projectx s3://soak/mnq --roll-every …`` (keeping one day locally), and
samples the staging folder's bytes and the recorder's RSS every few seconds. Then it checks
that the store holds one capture per roll, each with its manifest, and that their rows add up
to what the recorder reported.

Figures are ratios within the run: staging bytes and RSS, median of the last tenth of the
samples over the first tenth (flat is about 1.0x).

    python bench/roll_soak.py [--seconds 1200] [--rate 2000] [--roll-every 180]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "chaos"))

import harness
import orjson
import pyarrow.fs as pafs
from rss import rss_mb, trend


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.exists() else 0


def tenth_ratio(values: list[float]) -> str:
    tenth = max(1, len(values) // 10)
    first, last = statistics.median(values[:tenth]), statistics.median(values[-tenth:])
    return f"{first:,.2f} -> {last:,.2f} ({last / first if first else float('nan'):.2f}x)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1200)
    parser.add_argument("--rate", type=float, default=2000)
    parser.add_argument("--roll-every", type=float, default=180)
    parser.add_argument("--every", type=float, default=5, help="sampling interval (s)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rtcap-roll-soak-"))
    moto, endpoint = harness.start_moto()
    env = {**os.environ, **harness.CREDENTIALS, **harness.store_env(endpoint, work / "cache")}
    sim = harness.start_sim(rate=args.rate)
    try:
        fs = harness.store_fs(endpoint)
        fs.create_dir("soak")
        command = harness.record_command(
            "s3://soak/mnq", sim, "--roll-every", f"{args.roll_every}s",
            "--duration", f"{args.seconds}s",
        )  # fmt: skip
        recorder = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
        staging, samples = work / "cache" / "staging", []
        started = time.monotonic()
        while recorder.poll() is None:
            time.sleep(args.every)
            if time.monotonic() - started > args.roll_every:  # after the first roll: warm
                samples.append((time.monotonic() - started, rss_mb(recorder.pid),
                                folder_bytes(staging) / 1e6))  # fmt: skip
        out, _ = recorder.communicate()
        days = sorted(
            i.path for i in fs.get_file_info(pafs.FileSelector("soak", recursive=True))
            if i.path.endswith("/manifest.json")
        )  # fmt: skip
        rows = 0
        for path in days:
            with fs.open_input_stream(path) as stream:
                rows += orjson.loads(stream.readall())["frames"]
        reported = int(re.search(r"recorded (\d+) rows", out).group(1))
        print(f"roll soak: {args.seconds:.0f} s at --rate {args.rate:g}, a roll every "
              f"{args.roll_every:g} s; exit {recorder.returncode}")  # fmt: skip
        print(f"  captures in the store: {len(days)}; rows there {rows:,} (recorder: {reported:,})")
        print(f"  staging MB, first tenth -> last tenth: {tenth_ratio([s[2] for s in samples])}")
        print(trend([(at, rss) for at, rss, _ in samples]))
    finally:
        sim.stop()
        moto.terminate()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
