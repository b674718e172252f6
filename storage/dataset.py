"""One dataset, many recorders: captures under a root, read as one.

Layout (``rtcap record --dataset ROOT --recorder ID``)::

    ROOT/source=<sim|projectx|binance|ws>/date=<trading day (rtcap.capture.roll)>/recorder=<ID>/

Each leaf is a capture, written by one recorder without coordinating with any other; its sealed
files go into the root's tables (``ROOT/frames``, ``ROOT/bars``: :mod:`rtcap.storage.placement`),
in folders of that recorder's own. Any folder holding captures at any depth (this
layout, or plain sub-folders) is a dataset. A capture's *label* is its path relative to the
root (``source=sim/date=2026-11-24/recorder=a``), the ``capture`` column of every view.

Reading a dataset merges its captures in receive-time order. Ties (equal receive times) go to the
capture whose label sorts first, then to ``seq``; each capture's own rows keep their ``seq``
order even if its clock stepped back (the merge key is the running maximum of its receive
times). Two captures that recorded the same feed over overlapping time (the same venue, symbol
and channel: :mod:`rtcap.storage.identity`) would count every trade twice: every reader
(replay, export, sql, Spark) refuses such a dataset, naming both, until ``--recorders`` chooses.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from rtcap.codecs import sniff
from rtcap.storage import manifest as manifests
from rtcap.storage.errors import CaptureError
from rtcap.storage.identity import refuse_overlaps
from rtcap.storage.integrity import check_file, journal_files
from rtcap.storage.reader import CaptureReader, FrameFilter

MAX_DEPTH = 6
SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def capture_path(root: str | Path, source: str, date: str, recorder: str) -> str:
    """Where recorder ``recorder`` writes its ``source`` recording started on ``date``."""
    parts = [
        f"source={SAFE.sub('_', source)}",
        f"date={date}",
        f"recorder={SAFE.sub('_', recorder)}",
    ]
    return "/".join([str(root).rstrip("/"), *parts])


def is_capture(path: Path) -> bool:
    return (path / "manifest.json").exists() or bool(journal_files(path))


def find_captures(root: Path) -> list[Path]:
    """Captures at ``root`` or below it (not inside a capture), sorted by label."""
    if is_capture(root):
        return [root]
    found: list[Path] = []

    def walk(folder: Path, depth: int) -> None:
        if depth > MAX_DEPTH:
            return
        for child in sorted(p for p in folder.iterdir() if p.is_dir()):
            if is_capture(child):
                found.append(child)
            elif not child.name.startswith("."):
                walk(child, depth + 1)

    if root.is_dir():
        walk(root, 1)
    return found


def label(root: Path, capture: Path) -> str:
    """The capture's name in a dataset: its path relative to ``root`` (its name if it is root)."""
    try:
        relative = capture.relative_to(root).as_posix()
    except ValueError:
        relative = ""
    return relative if relative and relative != "." else capture.name


def choose(root: Path, recorders: list[str] | None) -> list[Path]:
    """The dataset's captures, narrowed to those whose label mentions one of ``recorders``."""
    captures = find_captures(root)
    if not captures:
        raise CaptureError(f"no capture at or under {root}: check the path")
    if recorders:
        labelled = [(c, label(root, c)) for c in captures]
        captures = [c for c, _ in chosen(labelled, recorders, str(root))]
    return captures


def named(name: str, recorders: list[str]) -> bool:
    """``name`` is one of ``recorders``: a recorder id, a path part, or the whole label."""
    parts = name.split("/")
    return any(r == name or r in parts or f"recorder={r}" in parts for r in recorders)


def refuse_duplicates(labelled: list[tuple[Path, str]], *, across_venues: bool = False) -> None:
    """Refuse (naming both and the fix) two local captures, given with their labels, holding
    one feed over overlapping time (:func:`rtcap.storage.identity.refuse_overlaps`);
    ``across_venues`` for readers that build one instrument per symbol (replay, export)."""
    if len(labelled) < 2:
        return
    refuse_overlaps(
        (
            # the sealed part of a capture still recording counts too (--include-open)
            (name, manifests.load(c), lambda entry, c=c: check_file(c, entry))
            for c, name in labelled
            if (c / manifests.MANIFEST).exists()
        ),
        across_venues=across_venues,
    )


def chosen(labelled: list[tuple[Any, str]], recorders: list[str], where: str) -> list:
    """The (item, label) pairs whose label :func:`named` one of ``recorders``; an error listing
    the labels there are when none is."""
    picked = [(item, name) for item, name in labelled if named(name, recorders)]
    if not picked:
        names = ", ".join(name for _, name in labelled)
        raise CaptureError(f"no capture of {recorders} under {where} (there are: {names})")
    return picked


class DatasetReader:
    """Row groups of several captures, merged in receive-time order (the CaptureReader API)."""

    def __init__(self, root: Path, captures: list[Path], *, include_open: bool = False) -> None:
        self.path = root
        self.labels = [label(root, c) for c in captures]
        self.readers = [CaptureReader(c, include_open=include_open) for c in captures]
        # Captures of different protocols may name their streams alike (an imported Binance
        # capture and a ProjectX one both say "market"): such streams are told apart as
        # "<stream>@<protocol>", so each is decoded by its own codec.
        self.renamed = _streams_to_qualify(self.readers)
        refuse_duplicates(list(zip(captures, self.labels, strict=True)), across_venues=True)

    @property
    def manifest(self) -> dict[str, Any]:
        """The first capture's manifest (what a gateway serving the merge describes)."""
        return self.readers[0].manifest

    @property
    def span(self) -> tuple[int, int]:
        spans = [r.span for r in self.readers if r.manifest["segments"]]
        if not spans:
            return 0, 0
        return min(s[0] for s in spans), max(s[1] for s in spans)

    def tables(self, where: FrameFilter | None = None) -> Iterator[pa.Table]:
        """Merged tables: everything received before the earliest pending row-group end of
        any capture, sorted by (receive time, capture, seq)."""
        streams = [
            _keyed(_qualified(r.tables(where), self.renamed[rank]), rank)
            for rank, r in enumerate(self.readers)
        ]
        pending: list[pa.Table | None] = [next(s, None) for s in streams]
        while any(t is not None for t in pending):
            horizon = min(t.column("_key")[-1].as_py() for t in pending if t is not None)
            ready = []
            for index, table in enumerate(pending):
                while table is not None:
                    take = pc.less_equal(table.column("_key"), horizon)
                    ready.append(table.filter(take))
                    rest = table.filter(pc.invert(take))
                    if rest.num_rows:
                        table = rest
                        break
                    table = next(streams[index], None)
                    if table is not None and table.column("_key")[0].as_py() > horizon:
                        break
                pending[index] = table
            order = [("_key", "ascending"), ("_rank", "ascending"), ("seq", "ascending")]
            merged = pa.concat_tables(ready).sort_by(order)
            if merged.num_rows:
                yield merged.drop(["_key", "_rank"])


def protocol_of(reader: CaptureReader) -> str | None:
    """The protocol of a capture's data (``projectx``, ``binance``), sniffed from its first
    data frame as the pipeline's automatic codec does; ``None`` if nothing is recognised."""
    for table in reader.tables(FrameFilter(kinds=frozenset({"text", "binary"}))):
        for payload in table.column("payload").to_pylist()[:16]:
            found = sniff(payload)
            if found != "raw":
                return found
        return None
    return None


def _streams_to_qualify(readers: list[CaptureReader]) -> list[dict[str, str]]:
    """Per capture, stream → ``stream@protocol`` for the stream names that captures of
    different protocols share (none, for a dataset of one protocol)."""
    protocols = [protocol_of(r) for r in readers]
    by_stream: dict[str, set[str]] = {}
    for reader, protocol in zip(readers, protocols, strict=True):
        for stream in _stream_names(reader.manifest):
            if protocol is not None:
                by_stream.setdefault(stream, set()).add(protocol)
    shared = {stream for stream, found in by_stream.items() if len(found) > 1}
    return [
        {s: f"{s}@{protocol}" for s in _stream_names(r.manifest) & shared} if protocol else {}
        for r, protocol in zip(readers, protocols, strict=True)
    ]


def _stream_names(manifest: dict[str, Any]) -> set[str]:
    """The streams a capture's manifest names (subscriptions, connections, or "market")."""
    names = {s.get("stream") for s in manifest.get("subscriptions") or [] if isinstance(s, dict)}
    names |= {c.get("stream") for c in manifest.get("connections") or [] if isinstance(c, dict)}
    found = {n for n in names if isinstance(n, str)}
    return found or {"market"}


def _qualified(tables: Iterator[pa.Table], renamed: dict[str, str]) -> Iterator[pa.Table]:
    if not renamed:
        yield from tables
        return
    for table in tables:
        streams = table.column("stream").cast(pa.string())
        for old, new in renamed.items():
            streams = pc.if_else(pc.equal(streams, old), new, streams)
        index = table.schema.get_field_index("stream")
        field = table.schema.field(index)  # its own type kept: the merge concatenates tables
        yield table.set_column(index, field, streams.cast(field.type))


def _keyed(tables: Iterator[pa.Table], rank: int) -> Iterator[pa.Table]:
    """Tables with a merge key: the running maximum of ``recv_ns``, so a capture's rows never
    reorder among themselves."""
    high = None
    for table in tables:
        keys = pc.cumulative_max(table.column("recv_ns"))
        if high is not None:
            keys = pc.max_element_wise(keys, pa.scalar(high, pa.int64()))
        high = pc.max(keys).as_py()
        yield table.append_column("_key", keys).append_column(
            "_rank", pa.array([rank] * table.num_rows, pa.int32())
        )


def open_reader(
    path: str | Path, *, include_open: bool = False, recorders: list[str] | None = None
) -> CaptureReader | DatasetReader:
    """A reader of one capture, or of every (chosen) capture of a dataset root, merged."""
    root = Path(path)
    if is_capture(root) and not recorders:
        return CaptureReader(root, include_open=include_open)
    if not root.exists():
        return CaptureReader(root)  # says "no capture at …" as every command does
    captures = choose(root, recorders)
    if len(captures) == 1:
        return CaptureReader(captures[0], include_open=include_open)
    return DatasetReader(root, captures, include_open=include_open)
