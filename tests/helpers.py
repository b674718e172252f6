"""Builders for hand-written test frames (ProjectX records and lifecycle rows)."""

from __future__ import annotations

import contextlib
import resource
import signal
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from rtcap.codecs import projectx, signalr
from rtcap.models import Frame
from rtcap.storage.schema import BAR_SCHEMA_V1, FRAME_SCHEMA_V1
from rtcap.storage.segments import sha256_file
from rtcap.timeutil import format_iso_ns, parse_iso_ns

MNQ = "CON.F.US.MNQ.Z25"
ES = "CON.F.US.EP.Z25"
LATENCY_NS = 1_000_000


def event_signature(event) -> str:
    """One event as comparable text: type, source, instrument, time and data (by ``repr``)."""
    return f"{event.type.value}|{event.source}|{event.instrument}|{event.timestamp}|{event.data!r}"


def event_signatures(events) -> list[str]:
    return [event_signature(event) for event in events]


def ns(text: str) -> int:
    """ISO time (UTC when no suffix) → epoch ns."""
    return parse_iso_ns(text)


class Tape:
    """Builds frames with increasing ``seq``; receive time defaults to exchange time + 1 ms."""

    def __init__(self) -> None:
        self.seq = 0
        self.frames: list[Frame] = []

    def _add(self, recv_ns: int, payload: bytes, kind: str = "text", **extra: Any) -> Frame:
        frame = Frame(
            self.seq,
            recv_ns,
            0,
            extra.pop("conn", 0),
            extra.pop("stream", "market"),
            kind,
            payload,
            **extra,
        )
        self.seq += 1
        self.frames.append(frame)
        return frame

    def trade(
        self,
        at: str,
        price: float,
        volume: int = 1,
        side: int = 0,
        *,
        contract: str = MNQ,
        recv: str | None = None,
    ) -> Frame:
        return self.trades(at, [(price, volume, side)], contract=contract, recv=recv)

    def trades(
        self,
        at: str,
        prints: list[tuple[float, int, int]],
        *,
        contract: str = MNQ,
        recv: str | None = None,
    ) -> Frame:
        exch = ns(at)
        record = projectx.encode_trades(
            contract, "F.US." + contract.split(".")[3], [(exch, p, v, s) for p, v, s in prints]
        )
        return self._add(ns(recv) if recv else exch + LATENCY_NS, record, exch_ns=exch)

    def quote(self, at: str, *, contract: str = MNQ, recv: str | None = None, **fields) -> Frame:
        exch = ns(at)
        payload = {"symbol": "F.US." + contract.split(".")[3], "timestamp": format_iso_ns(exch)}
        payload.update(fields)
        record = projectx.encode_quote(contract, payload)
        return self._add(ns(recv) if recv else exch + LATENCY_NS, record, exch_ns=exch)

    def raw(self, at: str, payload: bytes) -> Frame:
        return self._add(ns(at), payload)

    def lifecycle(self, at: str, kind: str, stream: str = "market", **detail: Any) -> Frame:
        return self._add(ns(at), orjson.dumps(detail) if detail else b"", kind, stream=stream)

    def clock(self, at: str) -> Frame:
        return self._add(ns(at), b"", "clock")


def record(message: dict) -> bytes:
    """One SignalR record."""
    return signalr.encode(message)


def crash(writer) -> None:
    """Leave ``writer``'s capture as a recorder killed now would: its sealer thread ends where it
    stands (a seal in progress stays on disk, half written), its journals keep what was flushed,
    and its lock is released. Only stopping the thread makes this deterministic: left running, it
    could begin a seal after the test has recovered the capture."""
    sealer = writer.sealer
    if sealer._thread is not None:
        sealer._seal_queue.put(None)  # after what is queued: the tail blocks already handed
        sealer._thread.join()
        sealer._thread = None
    writer._unlock()


def write_capture(path, frames, *, flush_every=333, source=None, **options):
    """Copy ``frames`` (their seq renumbered) into a new, closed capture at ``path``."""
    from rtcap.storage.writer import CaptureWriter

    source = source or {"kind": "test"}
    writer = CaptureWriter(path, source=source, fsync="never", **options)
    writer.open()
    for frame in frames:
        writer.append(
            Frame(
                0,
                frame.recv_ns,
                frame.mono_ns,
                frame.conn,
                frame.stream,
                frame.kind,
                frame.payload,
                frame.target,
                frame.symbol,
                frame.exch_ns,
            )
        )
        if writer.pending >= flush_every:
            writer.flush()
        if writer.should_rotate():
            writer.seal_now(writer.rotate())
    return writer


# --- captures as rtcap wrote them before the portable frames/2 schema -------------------------


def as_v1(table: pa.Table) -> pa.Table:
    """A frames/2 table as the writer before frames/2 produced it."""
    return pa.table(
        {
            "seq": table["seq"].cast(pa.uint64()),
            "recv_ns": table["recv_ns"].cast(pa.timestamp("ns", tz="UTC")),
            "mono_ns": table["mono_ns"],
            "conn": table["conn"].cast(pa.uint32()),
            "stream": table["stream"],
            "kind": table["kind"],
            "payload": table["payload"],
            "target": table["target"],
            "symbol": table["symbol"],
            "exch_ns": table["exch_ns"],
        }
    ).cast(FRAME_SCHEMA_V1)


def bars_as_v1(table: pa.Table) -> pa.Table:
    table = table.drop(["start_time", "end_time"])
    return table.cast(
        pa.schema(
            [
                f
                if f.name not in ("start_ns", "end_ns", "closed_seq")
                else BAR_SCHEMA_V1.field(f.name)
                for f in table.schema
            ]
        )
    ).select(BAR_SCHEMA_V1.names)


def downgrade(capture):
    """Rewrite a capture's files in frames/1 and bars/1, as an older rtcap left them."""
    manifest = orjson.loads((capture / "manifest.json").read_bytes())
    entries = [f for s in manifest["segments"] for f in s["files"]]
    bars = (manifest.get("live_bars") or {}).get("files") or []
    for entry, convert in [(e, as_v1) for e in entries] + [(e, bars_as_v1) for e in bars]:
        path = capture / entry["path"]
        parquet = pq.ParquetFile(path)
        metadata = {
            k: v
            for k, v in (parquet.metadata.metadata or {}).items()
            if k.startswith(b"rtcap.") and k != b"rtcap.schema"
        }
        table = convert(parquet.read())
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
        pq.write_table(table, path, compression="zstd", write_page_checksum=True)
        entry["sha256"] = sha256_file(path)
        if "bytes" in entry:
            entry["bytes"] = path.stat().st_size
    manifest.pop("schema", None)
    (capture / "manifest.json").write_bytes(orjson.dumps(manifest))


@contextlib.contextmanager
def file_size_limit(limit):
    """Writes that would grow a file past ``limit`` bytes fail with EFBIG (a real failed
    write, as a full disk gives, without needing a small filesystem)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def one_line_error(result, *needles):
    """A CliRunner result that failed with exactly one ``Error: …`` line holding ``needles``."""
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.output
    for needle in needles:
        assert needle in errors[0], (needle, result.output)
    return errors[0]


async def replayed(source) -> tuple[list, list]:
    """(frames, events) of a replay source run through a pipeline: (seq, recv_ns, kind,
    payload) of every row but clock ticks, and (type, instrument, time, data) of every event."""
    from rtcap.pipeline import Pipeline

    pipeline = Pipeline(None, ["1sec", "5sec"], codec="auto", contracts=source.contract_names)
    frames, events = [], []
    async for batch in source.batches():
        for frame in batch:
            if frame.kind != "clock":
                frames.append((frame.seq, frame.recv_ns, frame.kind, frame.payload))
            events += [
                (e.type, e.instrument, e.timestamp, repr(e.data)) for e in pipeline.feed(frame)
            ]
    return frames, events


def samples(text: str) -> dict[str, float]:
    """``name{labels}`` → value of every sample in Prometheus text."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def exported_bars(root, out, timeframes=("1min", "5min")) -> list[tuple]:
    """``rtcap export ROOT --format parquet``'s bars as sorted (instrument, timeframe, start ns,
    open, high, low, close, volume, trades) rows: what Spark's bar job must equal."""
    from click.testing import CliRunner

    from rtcap.cli import main

    result = CliRunner().invoke(main, ["export", str(root), "--out", str(out), "--timeframes",
                                       ",".join(timeframes), "--format", "parquet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    return sorted(
        (r["instrument"], r["timeframe"], r["ts_ns"], r["open"], r["high"], r["low"], r["close"],
         r["volume"], r["trades"])
        for f in out.glob("bars_*.parquet")
        for r in pq.read_table(f).to_pylist()
    )  # fmt: skip


def bar_rows(rows) -> list[tuple]:
    """Bars of Spark's bar job (dicts with ``start_ns``) in :func:`exported_bars`' shape."""
    return sorted(
        (r["instrument"], r["timeframe"], r["start_ns"], r["open"], r["high"], r["low"],
         r["close"], r["volume"], r["trades"])
        for r in rows
    )  # fmt: skip


def across_midnight(root, recorder="m", seconds=240):
    """A dataset capture (its files in the root's tables) whose rows cross UTC midnight
    2026-03-03; its trading day is the earlier date."""
    from pathlib import Path

    from rtcap.simulator import MarketSimulator
    from rtcap.storage.dataset import capture_path
    from rtcap.storage.writer import CaptureWriter

    frames = MarketSimulator(
        5, ("MNQ",), start_ns=parse_iso_ns("2026-03-03T00:00:00Z") - seconds // 2 * 10**9, rate=60
    )
    path = Path(capture_path(root, "sim", "2026-03-02", recorder))
    writer = CaptureWriter(path, source={"kind": "sim", "seed": 5, "rate": 60}, fsync="never",
                           tables=True, segment_max_bytes=40_000)  # fmt: skip
    writer.open()
    for frame in frames.frames(duration_s=seconds):
        writer.append(frame)
        if writer.pending >= 500:
            writer.flush()
        if writer.should_rotate():
            writer.seal_now(writer.rotate())
    writer.close()
    return path
