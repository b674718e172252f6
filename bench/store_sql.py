"""`rtcap sql ROOT` on a dataset root kept on an S3-compatible store (moto on loopback): the
first query (cold: the root is listed and every capture mirrored), the next (warm: listed again,
nothing fetched), and the same root on local disk, each against `rtcap --version` (the process
start-up, reported on its own) in the same run.

    python bench/store_sql.py [--recorders 4] [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "chaos"))

import harness
import pyarrow.fs as pafs

QUERY = "select capture, count(*), sum(bytes) from frames group by 1 order by 1"


def timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recorders", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20, help="recorded by each")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rtcap-store-sql-"))
    moto, endpoint = harness.start_moto()
    env = {**os.environ, **harness.store_env(endpoint, work / "cache")}
    try:
        fs = harness.store_fs(endpoint)
        fs.create_dir("tapes")
        root = "s3://tapes/ds"
        for index in range(args.recorders):  # one after another: never the same feed twice
            subprocess.run(
                [*harness.RTCAP, "record", "--dataset", root, "--recorder", f"r{index}",
                 "--duration", f"{args.seconds}s", "--rate", "400", "--quiet"],
                env=env, check=True, capture_output=True,
            )  # fmt: skip
        local = work / "local"
        for info in fs.get_file_info(pafs.FileSelector("tapes/ds", recursive=True)):
            if info.type == pafs.FileType.File and not info.path.endswith(".lease"):
                target = local / info.path.split("/ds/", 1)[1]
                target.parent.mkdir(parents=True, exist_ok=True)
                with fs.open_input_stream(info.path) as stream:
                    target.write_bytes(stream.readall())
        sql = [*harness.RTCAP, "sql", "-c", QUERY]
        startup = statistics.median(
            timed([*harness.RTCAP, "--version"], env)[0] for _ in range(args.repeat)
        )
        cold, answer = timed([*sql, root], env)
        warm = statistics.median(timed([*sql, root], env)[0] for _ in range(args.repeat))
        on_disk, local_answer = timed([*sql, str(local)], env)
        on_disk = min(on_disk, *(timed([*sql, str(local)], env)[0] for _ in range(args.repeat)))
        assert answer == local_answer, "the store and the local copy disagree"
        size = sum(f.stat().st_size for f in local.rglob("*") if f.is_file())
        print(f"store sql: {args.recorders} captures, {size / 1e6:,.2f} MB on the store")
        print(f"  process start-up (rtcap --version): {startup:.2f} s")
        for name, seconds in (("cold (list + mirror)", cold), ("warm (list, nothing fetched)",
                              warm), ("local disk", on_disk)):  # fmt: skip
            print(f"  {name:<30} {seconds:6.2f} s  (less start-up {seconds - startup:5.2f} s, "
                  f"{(seconds - startup) / max(on_disk - startup, 1e-3):4.1f}x local)")  # fmt: skip
    finally:
        moto.terminate()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
