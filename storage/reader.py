"""Ordered reading of a capture: sealed segments (and, if asked, the open journal) in ``seq``
order, one row group at a time, with filters pushed down.

A time window skips whole row groups by their ``recv_ns`` statistics before reading them; stream,
kind and symbol filters then select rows with Arrow compute. Memory holds one row group at most,
however long the capture.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from rtcap.instruments import contract_prefix
from rtcap.models import Frame
from rtcap.storage import manifest as manifests
from rtcap.storage.errors import CaptureDamaged
from rtcap.storage.integrity import journal_files, open_capture, open_segment, segment_files
from rtcap.storage.journal import read_journal
from rtcap.storage.schema import frame_chunks, frame_columns, frame_pieces
from rtcap.timeutil import NS, parse_iso_ns

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_RELATIVE = re.compile(r"^([+-])\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h|hr)$")
_UNITS = {
    "ms": NS // 1000,
    "s": NS,
    "sec": NS,
    "m": 60 * NS,
    "min": 60 * NS,
    "h": 3600 * NS,
    "hr": 3600 * NS,
}


def resolve_time(text: str | int | None, start_ns: int, end_ns: int) -> int | None:
    """``+5m`` (after the capture's first frame), ``-30s`` (before its last), an ISO time, a
    date (its UTC midnight) or epoch ns; ``None`` stays ``None``. ``ValueError`` names the
    accepted forms."""
    if text is None or isinstance(text, int):
        return text
    value = text.strip()
    match = _RELATIVE.match(value)
    if match:
        sign, number, unit = match.groups()
        offset = int(float(number) * _UNITS[unit])
        return start_ns + offset if sign == "+" else end_ns - offset
    if value.isdigit():
        return int(value)
    if _DATE.match(value):
        value += "T00:00:00Z"
    try:
        return parse_iso_ns(value)
    except ValueError:
        raise ValueError(
            f"invalid time {text!r}: use +5m (after the start), -30s (before the end), an ISO "
            "time such as 2025-09-02T14:30:00Z, a date such as 2025-09-02 (UTC midnight), or "
            "epoch nanoseconds"
        ) from None


@dataclass(frozen=True)
class FrameFilter:
    """Rows to keep: ``start_ns <= recv_ns < end_ns`` and the listed streams/kinds/symbols."""

    start_ns: int | None = None
    end_ns: int | None = None
    streams: frozenset[str] | None = None
    kinds: frozenset[str] | None = None
    symbols: frozenset[str] | None = None
    seqs: tuple[int, int | None] | None = None  # first and last seq kept (a session's range)

    def skips_row_group(self, low: int | None, high: int | None) -> bool:
        if low is None or high is None:
            return False
        return (self.end_ns is not None and low >= self.end_ns) or (
            self.start_ns is not None and high < self.start_ns
        )

    def apply(self, table: pa.Table) -> pa.Table:
        mask = None
        recv = None
        if self.start_ns is not None or self.end_ns is not None:
            recv = table.column("recv_ns").cast(pa.int64())
        for condition in (
            None if self.start_ns is None else pc.greater_equal(recv, self.start_ns),
            None if self.end_ns is None else pc.less(recv, self.end_ns),
            _member(table, "stream", self.streams),
            _member(table, "kind", self.kinds),
            _symbol_member(table, self.symbols),
            None if self.seqs is None else pc.greater_equal(table.column("seq"), self.seqs[0]),
            None
            if self.seqs is None or self.seqs[1] is None
            else pc.less_equal(table.column("seq"), self.seqs[1]),
        ):
            if condition is not None:
                mask = condition if mask is None else pc.and_(mask, condition)
        return table if mask is None else table.filter(mask)

    @property
    def empty(self) -> bool:
        return all(
            v is None
            for v in (
                self.start_ns,
                self.end_ns,
                self.streams,
                self.kinds,
                self.symbols,
                self.seqs,
            )
        )


def _member(table: pa.Table, column: str, allowed: frozenset[str] | None):
    if allowed is None:
        return None
    values = table.column(column).cast(pa.string())
    return pc.fill_null(pc.is_in(values, pa.array(sorted(allowed), pa.string())), False)


def _symbol_member(table: pa.Table, allowed: frozenset[str] | None):
    """Rows hinted with one of ``allowed``, where a futures symbol (``MNQ``) stands for every
    contract of its root, so a symbol's tape continues across its contract rolls. A frame's
    hint names only its first record's contract, so a frame that carries a wanted contract
    id anywhere in its payload is kept too (the pipeline picks the symbol's records)."""
    exact = _member(table, "symbol", allowed)
    if allowed is None:
        return exact
    values = table.column("symbol").cast(pa.string())
    payloads = table.column("payload")
    for symbol in sorted(allowed):
        prefix = contract_prefix(symbol) or (symbol if symbol.startswith("CON.") else None)
        if prefix is not None:
            exact = pc.or_(exact, pc.fill_null(pc.starts_with(values, prefix), False))
            exact = pc.or_(exact, pc.fill_null(pc.match_substring(payloads, prefix), False))
    return exact


def journal_tables(directory: Path, after_seq: int | None) -> Iterator[pa.Table]:
    """The frames an open (or crashed) recording has journaled but not sealed, past
    ``after_seq``: what ``--include-open`` adds to the sealed segments. Read only, never
    recovered: the recorder may still be writing."""
    last = -1 if after_seq is None else after_seq
    for journal in journal_files(directory):
        table = read_journal(journal).table()
        table = table.filter(pc.greater(table.column("seq"), last))
        if table.num_rows:
            yield table


def capture_manifest(path: str | Path, *, include_open: bool = False) -> dict:
    """The manifest of a capture; with ``include_open``, also of one whose recording is still
    running (or crashed) and has an unsealed journal."""
    path = Path(path)
    if include_open and journal_files(path):
        return manifests.load(path)
    return open_capture(path)


class CaptureReader:
    """Row groups of a capture in ``seq`` order."""

    def __init__(self, path: str | Path, *, include_open: bool = False) -> None:
        self.path = Path(path)
        self.include_open = include_open
        self.manifest = capture_manifest(self.path, include_open=include_open)
        self.row_groups_read = 0
        self.row_groups_skipped = 0
        self.last_seq = -1  # the last row read by tables(), filtered out or not

    @property
    def span(self) -> tuple[int, int]:
        """(first, last) receive time of the sealed frames."""
        return manifests.span(self.manifest)

    def tables(self, where: FrameFilter | None = None) -> Iterator[pa.Table]:
        """Row groups (filtered) in seq order; then the open journal when asked."""
        where = where or FrameFilter()
        last_seq = -1
        for entry in segment_files(self.manifest):
            file, parquet = open_segment(self.path, entry)
            recv_index = parquet.schema_arrow.get_field_index("recv_ns")  # frames/1 or /2
            for index in range(parquet.num_row_groups):
                stats = parquet.metadata.row_group(index).column(recv_index).statistics
                low, high = _bounds(stats)
                if where.skips_row_group(low, high):
                    self.row_groups_skipped += 1
                    continue
                self.row_groups_read += 1
                try:
                    table = parquet.read_row_group(
                        index, columns=frame_columns(parquet.schema_arrow)
                    )
                except (OSError, pa.ArrowException) as exc:
                    raise CaptureDamaged(
                        f"{file} is damaged ({str(exc).strip().splitlines()[0]}): restore it "
                        "from a backup"
                    ) from None
                for piece in frame_pieces(table, COLD_PIECE_ROWS):
                    if piece.num_rows:
                        last_seq = max(last_seq, pc.max(piece.column("seq")).as_py())
                    piece = where.apply(piece)
                    if piece.num_rows:
                        yield piece
        self.last_seq = last_seq
        if self.include_open:
            for table in journal_tables(self.path, last_seq):
                self.last_seq = max(self.last_seq, pc.max(table.column("seq")).as_py())
                table = where.apply(table)
                if table.num_rows:
                    yield table

    def frames(self, where: FrameFilter | None = None, chunk: int = 1024) -> Iterator[list[Frame]]:
        """Frames in lists of up to ``chunk``, in seq order."""
        for table in self.tables(where):
            yield from frame_chunks(table, chunk)


# A compacted row group (200,000 frames) is rendered back this many frames at a time, so a
# replay starts on the first of them, not after the whole group (a hot group is read whole).
COLD_PIECE_ROWS = 25_000


def _bounds(stats) -> tuple[int | None, int | None]:
    """Raw int64 min/max of a ``recv_ns`` column chunk (epoch ns)."""
    if stats is None or not stats.has_min_max:
        return None, None
    return int(stats.min_raw), int(stats.max_raw)
