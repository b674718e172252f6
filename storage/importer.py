"""Import line-oriented captures made by other tools into an rtcap capture.

Formats (plain or gzip/zstd compressed, detected by extension):

* ``hftbacktest``: ``<receive time, integer ns> <raw JSON frame>`` per line;
* ``tardis``: ``<ISO-8601 receive time> <raw JSON frame>`` per line;
* ``jsonl``: one JSON object per line with a receive time (``recv_ns``/``ts`` as ns or ISO text,
  or ``timestamp``) and the frame (``payload``/``data``/``message``, a JSON value or a string),
  optionally ``stream``.

Frames keep their exact bytes. Binance frames get pushdown hints (symbol, stream kind and
exchange time); lines that cannot be split into a time and a frame are counted and reported,
never silently dropped.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import zstandard
from rtcap.storage.capture import CaptureWriter
from rtcap.storage.segments import SEAL_LEVEL

from rtcap.codecs import frame_hints
from rtcap.events import EventType
from rtcap.models import Frame
from rtcap.pipeline import Pipeline, sequence_gap_row
from rtcap.timeutil import NS, parse_iso_ns

FORMATS = ("hftbacktest", "tardis", "jsonl")
MS = 1_000_000


@dataclass
class ImportReport:
    frames: int = 0
    skipped: list[str] = field(default_factory=list)  # "line N: reason", first few only
    skipped_count: int = 0
    sequence_gaps: int = 0
    first_ns: int | None = None
    last_ns: int | None = None


def _open_lines(path: Path) -> Iterator[bytes]:
    if path.suffix == ".gz":
        handle = gzip.open(path, "rb")  # noqa: SIM115
    elif path.suffix in (".zst", ".zstd"):
        raw = open(path, "rb")  # noqa: SIM115
        handle = io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw))
    else:
        handle = open(path, "rb")  # noqa: SIM115
    with handle:
        yield from handle


def _parse(line: bytes, fmt: str) -> tuple[int, bytes, str]:
    line = line.rstrip(b"\r\n")
    if fmt == "jsonl":
        record = orjson.loads(line)
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
        stamp = record.get("recv_ns", record.get("ts", record.get("timestamp")))
        if isinstance(stamp, str):
            recv = int(stamp) if stamp.isdigit() else parse_iso_ns(stamp)
        elif isinstance(stamp, int):
            recv = stamp if stamp > 10**17 else stamp * MS  # ns, or ms since the epoch
        elif isinstance(stamp, float):
            recv = int(stamp * NS)
        else:
            raise ValueError("no recv_ns/ts/timestamp field")
        body = record.get("payload", record.get("data", record.get("message")))
        if body is None:
            raise ValueError("no payload/data/message field")
        payload = body.encode() if isinstance(body, str) else orjson.dumps(body)
        return recv, payload, str(record.get("stream") or "market")
    stamp, sep, payload = line.partition(b" ")
    if not sep or not payload:
        raise ValueError("no space between time and frame")
    recv = int(stamp) if fmt == "hftbacktest" else parse_iso_ns(stamp.decode())
    return recv, payload, "market"


def import_lines(
    source: str | Path, capture: str | Path, fmt: str, *, seal_level: int = SEAL_LEVEL
) -> ImportReport:
    """Write every frame of ``source`` into a new capture at ``capture``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    path = Path(source)
    if not path.is_file():
        raise ValueError(f"no file at {path}")
    target = Path(capture)
    if (target / "manifest.json").exists():
        raise ValueError(f"{target} already holds a capture: import into a new directory")
    writer = CaptureWriter(
        target,
        source={"kind": "import", "format": fmt, "file": path.name},
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
                recv, payload, stream = _parse(line, fmt)
            except (ValueError, orjson.JSONDecodeError, UnicodeDecodeError) as exc:
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
    return report
