"""Import line-oriented captures made by other tools into an rtcap capture.

Formats (plain or gzip/zstd compressed, detected by extension):

* ``hftbacktest``: ``<receive time, integer ns> <raw JSON frame>`` per line;
* ``tardis``: ``<ISO-8601 receive time> <raw JSON frame>`` per line;
* ``jsonl``: one JSON object per line with a receive time (``recv_ns``/``ts``/``timestamp``, a
  number or ISO text) and the frame (``payload``/``data``/``message``, a JSON value or a string),
  optionally ``stream``.

Numeric times are epoch seconds, milliseconds, microseconds or nanoseconds: ``ts_unit="auto"``
tells them apart by magnitude (a 2024 time is about 1.7e9 s, 1.7e12 ms, 1.7e15 µs, 1.7e18 ns),
or the caller names the unit. Every time must fall between 1990 and 2200; a line outside that,
or with a time that is not a number or ISO text (``true``, ``1e300``), is counted and reported
as unreadable, so no input can make the import loop for ever. A failed import removes the
capture directory it created, so it can simply be run again.

Frames keep their exact bytes. Binance frames get pushdown hints (symbol, stream kind and
exchange time); lines that cannot be split into a time and a frame are counted and reported,
never silently dropped.
"""

from __future__ import annotations

import gzip
import math
import shutil
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import zstandard

from rtcap.codecs import frame_hints
from rtcap.events import EventType
from rtcap.models import Frame
from rtcap.pipeline import Pipeline, sequence_gap_row
from rtcap.storage.segments import SEAL_LEVEL, sha256_file
from rtcap.storage.writer import CaptureWriter
from rtcap.timeutil import NS, parse_iso_ns

FORMATS = ("hftbacktest", "tardis", "jsonl")
MS = 1_000_000
TS_UNITS = {"s": NS, "ms": MS, "us": 1_000, "ns": 1}
EARLIEST_NS = 631_152_000 * NS  # 1990-01-01
LATEST_NS = 7_258_118_400 * NS  # 2200-01-01


@dataclass
class ImportReport:
    frames: int = 0
    skipped: list[str] = field(default_factory=list)  # "line N: reason", first few only
    skipped_count: int = 0
    sequence_gaps: int = 0
    first_ns: int | None = None
    last_ns: int | None = None


def _zstd_chunks(path: Path) -> Iterator[bytes]:
    """Decompressed bytes of every zstd frame in ``path``; a truncated last frame raises
    (zstandard's stream reader would end quietly where the file ends)."""
    decompressor = zstandard.ZstdDecompressor()
    frame = None  # the frame being decompressed; None between frames
    with open(path, "rb") as raw:
        for chunk in iter(lambda: raw.read(1 << 20), b""):
            while chunk:
                frame = frame or decompressor.decompressobj()
                yield frame.decompress(chunk)
                chunk, frame = (frame.unused_data, None) if frame.eof else (b"", frame)
    if frame is not None:
        raise EOFError("the file ends in the middle of a zstd frame (truncated)")


def _lines_of(chunks: Iterator[bytes]) -> Iterator[bytes]:
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line + b"\n"
    if pending:
        yield pending


def _open_lines(path: Path) -> Iterator[bytes]:
    kind = "gzip" if path.suffix == ".gz" else "zstd" if path.suffix in (".zst", ".zstd") else ""
    try:
        if kind == "zstd":
            yield from _lines_of(_zstd_chunks(path))
            return
        with gzip.open(path, "rb") if kind == "gzip" else open(path, "rb") as handle:
            yield from handle
    except (OSError, EOFError, zlib.error, zstandard.ZstdError) as exc:
        what = f"not a valid {kind} file" if kind else "unreadable"
        raise ValueError(
            f"{path} is {what} ({exc}): check the file (its extension decides how it is read)"
        ) from None


def epoch_ns(value: int | float, unit: str = "auto") -> int:
    """Epoch ``value`` in ``unit`` (or guessed by magnitude) as ns, checked to be 1990–2200."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"time {value!r} is not a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"time {value!r} is not finite")
    if unit == "auto":
        size = abs(value)
        unit = "ns" if size >= 1e17 else "us" if size >= 1e14 else "ms" if size >= 1e11 else "s"
    if not EARLIEST_NS <= value * TS_UNITS[unit] < LATEST_NS:
        raise ValueError(f"time {value!r} ({unit}) is not between 1990 and 2200")
    return int(value) * TS_UNITS[unit] if isinstance(value, int) else round(value * TS_UNITS[unit])


def _checked(ns: int) -> int:
    if not EARLIEST_NS <= ns < LATEST_NS:
        raise ValueError(f"time {ns} ns is not between 1990 and 2200")
    return ns


def _parse(line: bytes, fmt: str, ts_unit: str = "auto") -> tuple[int, bytes, str]:
    line = line.rstrip(b"\r\n")
    if fmt == "jsonl":
        record = orjson.loads(line)
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
        stamp = record.get("recv_ns", record.get("ts", record.get("timestamp")))
        if stamp is None:
            raise ValueError("no recv_ns/ts/timestamp field")
        if "recv_ns" in record and ts_unit == "auto":
            ts_unit = "ns"
        if isinstance(stamp, str):
            text = stamp.strip()
            recv = epoch_ns(int(text), ts_unit) if text.isdigit() else _checked(parse_iso_ns(text))
        else:
            recv = epoch_ns(stamp, ts_unit)
        body = record.get("payload", record.get("data", record.get("message")))
        if body is None:
            raise ValueError("no payload/data/message field")
        payload = body.encode() if isinstance(body, str) else orjson.dumps(body)
        return recv, payload, str(record.get("stream") or "market")
    stamp, sep, payload = line.partition(b" ")
    if not sep or not payload:
        raise ValueError("no space between time and frame")
    if fmt == "hftbacktest":
        recv = epoch_ns(int(stamp), ts_unit)  # nanoseconds as written, or guessed by size
    else:
        recv = _checked(parse_iso_ns(stamp.decode()))
    return recv, payload, "market"


def import_lines(
    source: str | Path,
    capture: str | Path,
    fmt: str,
    *,
    seal_level: int = SEAL_LEVEL,
    ts_unit: str = "auto",
) -> ImportReport:
    """Write every frame of ``source`` into a new capture at ``capture``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if ts_unit != "auto" and ts_unit not in TS_UNITS:
        raise ValueError(f"unknown time unit {ts_unit!r}: choose auto, {', '.join(TS_UNITS)}")
    path = Path(source)
    if not path.is_file():
        raise ValueError(f"no file at {path}")
    target = Path(capture)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ValueError(f"{target} already exists and is not empty: import into a new directory")
    created = not target.exists()
    try:
        return _import(path, target, fmt, seal_level, ts_unit)
    except BaseException:
        # Remove only what this import made, so that running it again simply works.
        if created:
            shutil.rmtree(target, ignore_errors=True)
        else:  # it was an empty directory: empty it again
            for child in target.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        raise


def _import(path: Path, target: Path, fmt: str, seal_level: int, ts_unit: str) -> ImportReport:
    writer = CaptureWriter(
        target,
        # the file's digest is the import's venue (rtcap.storage.identity): importing one file
        # twice gives the same feed, two files never do
        source={"kind": "import", "format": fmt, "file": path.name, "sha256": sha256_file(path)},
        fsync="never",
        seal_level=seal_level,
    )
    writer.open()
    report = ImportReport()
    checker = Pipeline(None, ["1day"], codec="auto", wanted={EventType.GAP})
    try:
        for number, line in enumerate(_open_lines(path), start=1):
            if not line.strip():
                continue
            try:
                recv, payload, stream = _parse(line, fmt, ts_unit)
            except (ValueError, OverflowError, orjson.JSONDecodeError, UnicodeDecodeError) as exc:
                report.skipped_count += 1
                if len(report.skipped) < 10:
                    report.skipped.append(f"line {number}: {exc}")
                continue
            target_hint, symbol, exch = frame_hints(payload)
            frame = Frame(0, recv, 0, 0, stream, "text", payload, target_hint, symbol, exch)
            writer.append(frame)
            for event in checker.feed(frame):
                if (row := sequence_gap_row(event, frame)) is not None:
                    writer.append(row)
                    report.sequence_gaps += 1
            report.frames += 1
            report.first_ns = recv if report.first_ns is None else report.first_ns
            report.last_ns = recv
            if writer.pending >= 20_000:
                writer.flush()
    finally:
        writer.close()
    if not report.frames and report.skipped_count:
        raise ValueError(
            f"every line of {path} was refused ({report.skipped_count:,} lines; "
            f"{report.skipped[0]}): nothing was imported; check --format and --ts-unit"
        )
    return report
