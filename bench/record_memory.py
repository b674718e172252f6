"""Memory of ``rtcap record`` over a long, fast recording: the RSS curve must stay flat.

Runs ``rtcap sim`` in its own process at ``--rate`` messages/s and records it with
``rtcap record --source projectx`` (so the curve is the recorder's alone), sampling the
recorder's RSS every second from /proc. The sealer folds journal blocks into row groups as
they are written, so memory must not grow with the open segment; the seal of a full segment
must not stop the journal either. Also reports how long the final seal takes after SIGTERM.

Figures are ratios within the run: peak RSS over the RSS after warm-up (flat is about 1.0x),
and the RSS at the end over the RSS after warm-up.

    python bench/record_memory.py [--seconds 100] [--rate 10000] [--segment-mb 256]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "chaos"))

import harness
from rss import rss_mb, trend

from rtcap.storage.integrity import read_frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=100)
    parser.add_argument("--rate", type=float, default=10_000)
    parser.add_argument("--segment-mb", type=int, default=256)
    parser.add_argument("--warmup", type=float, default=10)
    args = parser.parse_args()
    sim = harness.start_sim(rate=args.rate, extra=("--history-days", "0"))
    with tempfile.TemporaryDirectory() as tmp:
        capture = Path(tmp) / "cap"
        recorder = harness.start_recorder(capture, sim, "--segment-mb", str(args.segment_mb))
        started = time.monotonic()
        samples: list[tuple[float, float, int]] = []
        while time.monotonic() - started < args.seconds:
            time.sleep(1.0)
            journal = sum(p.stat().st_size for p in (capture / "journal").glob("*.rtj"))
            samples.append((time.monotonic() - started, rss_mb(recorder.pid), journal))
        stopping = time.monotonic()
        recorder.send_signal(signal.SIGTERM)
        _out, err = recorder.communicate(timeout=300)
        close_s = time.monotonic() - stopping
        sim.stop()
        manifest = harness.manifest(capture)
        sealed_mb = sum(f["bytes"] for s in manifest["segments"] for f in s["files"]) / 1e6
        # The gateway packs several SignalR records into one websocket frame when it is busy,
        # so the rate asked for is checked in records, not rows.
        records = sum(
            frame.payload.count(b"\x1e") for frame in read_frames(capture) if frame.kind == "text"
        )
    print(
        f"recorder RSS over {args.seconds:.0f} s at {args.rate:,.0f} msg/s "
        f"(segments of {args.segment_mb} MB payload):"
    )
    for at, rss, journal in samples[:: max(1, len(samples) // 12)]:
        print(f"  t={at:6.1f} s  RSS {rss:7.1f} MB  open journal {journal / 1e6:8.1f} MB")
    warm = [rss for at, rss, _ in samples if at >= args.warmup] or [samples[-1][1]]
    print(f"  RSS after warm-up {warm[0]:.1f} MB, peak {max(warm):.1f} MB, end {warm[-1]:.1f} MB")
    print(
        f"  peak / after warm-up: {max(warm) / warm[0]:.2f}x   end / after warm-up: "
        f"{warm[-1] / warm[0]:.2f}x"
    )
    print(trend([(at, rss) for at, rss, _ in samples if at >= args.warmup]))
    print(
        f"  {manifest['frames']:,} rows, {len(manifest['segments'])} segments, "
        f"{sealed_mb:.1f} MB sealed; SIGTERM to exit (final seal) {close_s:.1f} s; "
        f"exit {recorder.returncode}"
    )
    print(
        f"  {records:,} market records received: {records / args.seconds:,.0f} records/s "
        f"(asked for {args.rate:,.0f})"
    )
    if recorder.returncode:
        print(err.decode(), file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
