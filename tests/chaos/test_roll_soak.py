"""Record for months, compressed: a recorder writing to an S3-compatible store (moto) at
2,000 msg/s rolls its capture every few minutes, with its metrics endpoint scraped over HTTP
the whole time. Its memory and its staging folder stay flat, every day verifies on its own, the
days together equal an uninterrupted reference recording of the same feed, and every scrape of
the frame counter agrees with the rows the store holds.

``make test`` runs 40 s with a roll every 10 s; ``make test-slow`` runs 20 minutes with a roll
every 150 s (bench/roll_soak.py is the long form for other lengths)."""

from __future__ import annotations

import bisect
import os
import re
import statistics
import subprocess
import time
import urllib.request
from pathlib import Path

import harness
import pyarrow.fs as pafs
import pytest
from helpers import samples

from rtcap.codecs.signalr import RS
from rtcap.storage.integrity import read_frames
from rtcap.storage.remote import pull

RATE = 2500  # the simulator's mean rate; the assertion below wants ≥ 2,000 records/s kept


def folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.exists() else 0


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def scrape(port: int) -> dict[str, float]:
    """The recorder's /metrics as {series: value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        return samples(answer.read().decode())


def tenths(values: list[float]) -> tuple[float, float]:
    """Medians of the first and the last tenth."""
    tenth = max(1, len(values) // 10)
    return statistics.median(values[:tenth]), statistics.median(values[-tenth:])


def halves(values: list[float]) -> tuple[float, float]:
    """Peaks of the first and the second half (staging is a saw-tooth: it grows through a day
    and drops when the store confirms the day)."""
    middle = len(values) // 2
    return max(values[:middle]), max(values[middle:])


Channels = dict[tuple[str, str], list[int]]


def market_hashes(capture: Path, into: Channels) -> list[int]:
    """Add the hash of every market record to its channel's list in ``into``; the receive times
    of the data frames. Channel by channel (target and contract), because the recorder sends its
    subscriptions one by one and each channel starts when its own is answered."""
    received = []
    for frame in read_frames(capture):
        if frame.kind != "text":
            continue
        received.append(frame.recv_ns)
        for record in frame.payload.split(RS):
            if record.startswith(b'{"type":1,"target":"Gateway'):
                into.setdefault(harness.channel_of(record), []).append(hash(record))
    return received


@pytest.mark.slow
def test_a_long_recording_to_object_storage_rolls_flat_and_whole(tmp_path, full_length):
    seconds, roll_every, every = (1200, 150, 5.0) if full_length else (40, 10, 1.0)
    moto, endpoint = harness.start_moto()
    env = {**os.environ, **harness.CREDENTIALS, **harness.store_env(endpoint, tmp_path / "cache")}
    fs = harness.store_fs(endpoint)
    fs.create_dir("soak")
    sim = harness.start_sim(rate=RATE)
    metrics_port = harness.free_port()
    samples: list[tuple[float, float, float]] = []  # (s, RSS MB, staging MB)
    scrapes: list[tuple[int, int, float]] = []  # (wall ns before, after, frames counted)
    try:
        reference = harness.start_recorder(tmp_path / "reference", sim, "--roll-at", "none")
        harness.wait_for_journal(tmp_path / "reference", reference)
        command = harness.record_command(
            "s3://soak/mnq", sim, "--roll-every", f"{roll_every}s", "--duration", f"{seconds}s",
            "--metrics-port", str(metrics_port),
        )  # fmt: skip
        roller = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)  # fmt: skip
        staging = tmp_path / "cache" / "staging"
        started = time.monotonic()
        while roller.poll() is None:
            time.sleep(every)
            try:
                before = time.time_ns()
                values = scrape(metrics_port)
                scrapes.append(
                    (before, time.time_ns(), values['rtcap_frames_total{stream="market"}'])
                )
            except (OSError, KeyError):
                continue  # not listening yet, or gone
            if time.monotonic() - started > roll_every:  # warm: after the first roll
                samples.append((time.monotonic() - started, rss_mb(roller.pid),
                                folder_bytes(staging) / 1e6))  # fmt: skip
        out, err = roller.communicate()
        assert roller.returncode == 0, err
        code, _, err = harness.stop(reference)
        assert code == 0, err
    finally:
        sim.stop()
    try:
        days = sorted(
            (i.path.rsplit("/", 1)[0] for i in fs.get_file_info(pafs.FileSelector("soak", recursive=True))
             if i.path.endswith("/manifest.json")),
            key=lambda p: (len(p), p),
        )  # fmt: skip
        expected_days = seconds // roll_every
        assert expected_days <= len(days) <= expected_days + 2, days
        reported = re.search(r"recorded (\d+) rows \((\d+) data frames\)", out)
        assert reported, out
        # Every day verifies on its own (live bars against a replay) ...
        for day in days:
            verified = subprocess.run([*harness.RTCAP, "verify", f"s3://{day}", "--speed", "1000x"],
                                      env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
            assert verified.returncode == 0, (day, verified.stdout, verified.stderr)
        # ... and the days together are one unbroken run of the reference's records.
        ours: Channels = {}
        received: list[int] = []
        for day in days:
            received += market_hashes(pull(f"s3://{day}", endpoint_url=endpoint), ours)
        theirs: Channels = {}
        market_hashes(tmp_path / "reference", theirs)
    finally:
        moto.terminate()
    assert len(received) == int(reported.group(2))  # every data frame the recorder counted
    assert sorted(ours) == sorted(theirs)  # every channel of MNQ and ES, in both
    for channel, records in ours.items():
        start = harness.run_start(theirs[channel], records)
        assert start is not None, (
            f"{channel}: the rolled days' first records are not in the reference"
        )
        assert theirs[channel][start : start + len(records)] == records, channel
    kept = sum(len(records) for records in ours.values())
    span_s = (received[-1] - received[0]) / 1e9
    assert kept / span_s >= 2000, f"{kept / span_s:,.0f} records/s"
    # Every scrape of the frame counter lies between the frames received before the scrape
    # was sent (less a second still being read off the socket) and those received by its answer.
    assert len(scrapes) >= seconds / every * 0.8
    for before, after, counted in scrapes:
        low = bisect.bisect_right(received, before - 1_000_000_000)
        high = bisect.bisect_right(received, after)
        assert low <= counted <= high, (before, after, counted, low, high)
    # Flat: the recorder's memory and its staging folder, first tenth against last tenth.
    rss_first, rss_last = tenths([rss for _, rss, _ in samples])
    staged_first, staged_last = halves([staged for _, _, staged in samples])
    print(f"\nroll soak: {seconds} s at {RATE} msg/s, a roll every {roll_every} s: "
          f"{len(days)} days, {kept:,} records ({kept / span_s:,.0f}/s); RSS {rss_first:.0f} -> {rss_last:.0f} MB; "
          f"staging peak {staged_first:.1f} -> {staged_last:.1f} MB")  # fmt: skip
    assert rss_last <= rss_first * 1.15 + 10
    assert staged_last <= staged_first * 1.5 + 5
