"""Real processes for the chaos suite: a simulated gateway, recorders pointed at it (one to
hurt, one uninterrupted reference of the same seeded feed), and the comparison between them.

Loss is measured in the feed's own terms: the market records (SignalR invocations) the victim
kept must be exactly a run of the reference's records, with no hole, and what it is missing
at the end is counted in records and in milliseconds of feed before the fault.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from rtcap.codecs.signalr import RS
from rtcap.storage.integrity import read_frames

RTCAP = [sys.executable, "-m", "rtcap"]
CREDENTIALS = {"PROJECTX_USERNAME": "chaos", "PROJECTX_API_KEY": "chaos-key"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Sim:
    """``rtcap sim`` in its own process."""

    process: subprocess.Popen
    port: int
    api: str
    market_hub: str
    sdk_hint: str  # the banner's line telling how to run an SDK strategy against it

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_moto(env=None) -> tuple[subprocess.Popen, str]:
    """moto's standalone S3 server on a free loopback port, once it accepts connections."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return server, f"http://127.0.0.1:{port}"
        time.sleep(0.1)
    server.kill()
    raise AssertionError("moto's S3 server did not start")


STORE_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing-secret"}


def store_env(endpoint: str, cache: Path) -> dict[str, str]:
    """The environment that points rtcap at the moto server ``endpoint``, with its own cache."""
    return {
        **STORE_KEYS,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": "us-east-1",
        "RTCAP_CACHE": str(cache),
    }


def store_fs(endpoint: str):
    """A pyarrow file system on the moto server ``endpoint`` (to make buckets and look)."""
    import pyarrow.fs as pafs

    return pafs.S3FileSystem(
        endpoint_override=endpoint,
        scheme="http",
        region="us-east-1",
        access_key=STORE_KEYS["AWS_ACCESS_KEY_ID"],
        secret_key=STORE_KEYS["AWS_SECRET_ACCESS_KEY"],
        allow_bucket_creation=True,
    )


def start_sim(*, rate: float = 400, seed: int = 11, port: int = 0, extra=()) -> Sim:
    port = port or free_port()
    process = subprocess.Popen(
        [*RTCAP, "sim", "--port", str(port), "--rate", str(rate), "--seed", str(seed), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    urls = {}
    deadline = time.monotonic() + 30
    while len(urls) < 3:
        line = process.stdout.readline()
        if not line:
            raise AssertionError(f"rtcap sim did not start: {process.stderr.read()}")
        if "REST base" in line:
            urls["api"] = line.split()[-1]
        elif "market hub" in line:
            urls["market_hub"] = line.split()[-1]
        elif line.lstrip().startswith("SDK "):
            urls["sdk"] = line.strip()
        assert time.monotonic() < deadline, "rtcap sim took too long to start"
    return Sim(process, port, urls["api"], urls["market_hub"], urls["sdk"])


def record_command(capture: Path, sim: Sim, *options: str) -> list[str]:
    return [
        *RTCAP,
        "record",
        str(capture),
        "--source",
        "projectx",
        "--symbols",
        "MNQ,ES",
        "--api-url",
        sim.api,
        "--market-hub-url",
        sim.market_hub,
        "--quiet",
        *options,
    ]


def start_recorder(capture: Path, sim: Sim, *options: str, wrap=()) -> subprocess.Popen:
    return subprocess.Popen(
        [*wrap, *record_command(capture, sim, *options)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **CREDENTIALS},
    )


def wait_for_journal(capture: Path, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        folder = capture / "journal"
        journals = list(folder.glob("segment-*.rtj")) if folder.exists() else []
        if any(j.stat().st_size > 0 for j in journals):
            return
        assert process.poll() is None, process.stderr.read().decode()
        time.sleep(0.02)
    raise AssertionError("the recorder never wrote its journal")


def stop(process: subprocess.Popen, timeout: float = 60) -> tuple[int, str, str]:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out.decode(), err.decode()


def recover(capture: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*RTCAP, "recover", str(capture)], capture_output=True, text=True, timeout=120
    )


def market_records(capture: Path) -> list[tuple[int, bytes]]:
    """(receive time, record) of every market-data SignalR invocation, in capture order."""
    records = []
    for frame in read_frames(capture):
        if frame.kind != "text":
            continue
        for record in frame.payload.split(RS):
            if record.startswith(b'{"type":1,"target":"Gateway'):
                records.append((frame.recv_ns, record))
    return records


@dataclass
class Loss:
    """What a victim capture misses against the reference."""

    kept: int
    missing_tail: int
    tail_ms: float


def channel_of(record: bytes) -> tuple[str, str]:
    """(target, contract) of a market record: each is its own stream from its subscription."""
    message = orjson.loads(record)
    return message["target"], message["arguments"][0]


def by_channel(timed: list[tuple[int, bytes]]) -> dict[tuple[str, str], list[tuple[int, bytes]]]:
    """``market_records`` split by channel, each in capture order."""
    channels: dict[tuple[str, str], list[tuple[int, bytes]]] = {}
    for item in timed:
        channels.setdefault(channel_of(item[1]), []).append(item)
    return channels


def compare(victim: Path, reference: Path, fault_ns: int) -> Loss:
    """Assert that, channel by channel (target and contract, since each starts when it is
    subscribed), the victim's records are one unbroken run of the reference's; measure the
    tail the victim lacks up to ``fault_ns``."""
    ours, theirs = market_records(victim), market_records(reference)
    assert ours, "the victim kept no market data at all"
    lacking = 0
    offered_by = by_channel(theirs)
    for channel, kept in sorted(by_channel(ours).items()):
        offered = offered_by.get(channel, [])
        start = _run_start([r for _, r in kept], [r for _, r in offered], victim, channel)
        after = offered[start + len(kept) :]
        lacking += sum(1 for t, _ in after if t <= fault_ns)
    tail_ms = (fault_ns - ours[-1][0]) / 1e6 if lacking else 0.0
    return Loss(len(ours), lacking, max(0.0, tail_ms))


def run_start(outer: Sequence[object], inner: Sequence[object], head: int = 64) -> int | None:
    """Where the first ``head`` items of ``inner`` run unbroken in ``outer``; None if nowhere.
    A run, not one item: records can repeat byte for byte (two equal trades in a millisecond)."""
    first = inner[:head]
    for start in (i for i, item in enumerate(outer) if item == first[0]):
        if outer[start : start + len(first)] == first:
            return start
    return None


def _run_start(kept: list[bytes], offered: list[bytes], victim: Path, channel) -> int:
    """Where all of ``kept`` runs unbroken inside ``offered``; else a failure naming the hole."""
    start = run_start(offered, kept, head=len(kept))
    if start is not None:
        return start
    first_at = next((i for i, record in enumerate(offered) if record == kept[0]), None)
    assert first_at is not None, f"{channel}: the victim's first record is not in the reference"
    run = offered[first_at : first_at + len(kept)]
    first = next((i for i, (a, b) in enumerate(zip(kept, run, strict=False)) if a != b), len(run))
    lifecycle = [
        (f.seq, f.kind, f.payload[:120])
        for f in read_frames(victim)
        if f.kind in ("open", "close", "gap", "error")
    ]
    raise AssertionError(
        f"{channel}: the victim's records have a hole at record {first} of {len(kept)} "
        f"(victim {kept[first][:100]!r}, reference {run[first : first + 1]!r}); "
        f"victim lifecycle rows: {lifecycle}"
    )


@contextlib.contextmanager
def read_only(folder: Path):
    """``folder`` mounted read-only over itself (a real EROFS for everything under it)."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True)
        yield
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def can_mount() -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    probe = Path(os.environ.get("TMPDIR", "/tmp")) / f"rtcap-mount-probe-{os.getpid()}"
    probe.mkdir(exist_ok=True)
    try:
        done = subprocess.run(["mount", "--bind", str(probe), str(probe)], capture_output=True)
        if done.returncode == 0:
            subprocess.run(["umount", str(probe)], capture_output=True)
        return done.returncode == 0
    finally:
        probe.rmdir()


def manifest(capture: Path) -> dict:
    return orjson.loads((capture / "manifest.json").read_bytes())
