"""The work of a Spark job over a dataset root, planned on the driver from manifests alone.

The root is a capture or a folder of captures: a local path, a ``file://`` URI or a store URI
(``s3://bucket/tapes``; captures found by listing the store, :func:`rtcap.storage.remote.
remote_captures`). The driver reads only manifests: it chooses captures (``--recorders``),
refuses two of one feed over the same time (:mod:`rtcap.storage.identity`), and cuts every
listed segment file into pieces of at most ``piece_rows`` rows (row-group ranges), each one
task. Executors open the files where they lie and check them
(:mod:`rtcap.analysis.sparktasks`): nothing is copied to, or hashed on, the driver.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from rtcap.analysis.views import discover
from rtcap.storage.dataset import chosen
from rtcap.storage.errors import CaptureError
from rtcap.storage.identity import refuse_overlaps
from rtcap.storage.integrity import check_file, open_capture, segment_files
from rtcap.storage.manifest import contract_names, span
from rtcap.storage.remote import (
    is_uri,
    listed_uri,
    open_remote,
    remote_captures,
    remote_manifest,
    store_key,
)

PIECE_ROWS = 200_000  # a task's frames: bounded, whatever the size of a capture or file


@dataclass
class Capture:
    """One chosen capture: its label, manifest, where its files lie, and how to open one."""

    label: str
    manifest: dict[str, Any]
    base: str  # a local folder or a store URI, without the trailing slash
    open_file: Callable[[dict[str, Any]], Any]

    def uri(self, relative: str) -> str:
        """Where a task opens the file the manifest lists at ``relative``."""
        return listed_uri(self.base, relative) if is_uri(self.base) else f"{self.base}/{relative}"


@dataclass
class Plan:
    captures: list[Capture]
    pieces: list[dict[str, Any]] = field(default_factory=list)  # sparktasks.PIECE_FIELDS
    live_bars: list[dict[str, Any]] = field(default_factory=list)  # capture, uri, entry
    final_ns: int = 0  # the last receive time of the dataset: where a replay's clock ends


def plan(
    root: str | Path,
    *,
    recorders: list[str] | None = None,
    across_venues: bool = False,
    piece_rows: int = PIECE_ROWS,
) -> Plan:
    """The captures under ``root`` and their pieces (see the module's docstring);
    ``across_venues`` for jobs that build one instrument per symbol (bars)."""
    text = str(root)
    captures = _remote(text, recorders) if is_uri(text) else _local(text, recorders)
    refuse_overlaps(
        ((c.label, c.manifest, c.open_file) for c in captures), across_venues=across_venues
    )
    spans = {c.label: span(c.manifest) for c in captures}
    captures.sort(key=lambda c: (spans[c.label][0], c.label))
    result = Plan(captures)
    for capture in captures:
        contracts = orjson.dumps(contract_names(capture.manifest)).decode()
        for entry in segment_files(capture.manifest):
            parts = max(1, math.ceil(entry["rows"] / piece_rows))
            for part in range(parts):
                result.pieces.append(
                    {
                        "order": len(result.pieces),
                        "capture": capture.label,
                        "uri": capture.uri(entry["path"]),
                        "entry": orjson.dumps(entry).decode(),
                        "part": part,
                        "parts": parts,
                        "contracts": contracts,
                    }
                )
        # the capture's block lists every session's files (each session's own block repeats them)
        for entry in (capture.manifest.get("live_bars") or {}).get("files") or []:
            entry = entry if isinstance(entry, dict) else {"path": entry}
            result.live_bars.append(
                {
                    "capture": capture.label,
                    "uri": capture.uri(entry["path"]),
                    "entry": orjson.dumps(entry).decode(),
                }
            )
    result.final_ns = max((spans[c.label][1] for c in captures), default=0)
    return result


def _local(text: str, recorders: list[str] | None) -> list[Capture]:
    path = Path(text.removeprefix("file://"))
    found, _ = discover([path], recorders)
    if not found:
        raise CaptureError(f"no capture under {text}: give a capture or a folder of captures")
    return [
        Capture(
            name,
            open_capture(capture),
            str(capture.resolve()),
            lambda entry, c=capture: check_file(c, entry),
        )
        for capture, name in found
    ]


def _remote(uri: str, recorders: list[str] | None) -> list[Capture]:
    fs, base = open_remote(uri)
    uri = uri.rstrip("/")
    try:
        relatives = [""] if remote_manifest(uri, fs, base) else []
    except FileNotFoundError:
        relatives = remote_captures(uri, fs, base)
    captures = []
    for relative in relatives:
        where = f"{uri}/{relative}".rstrip("/")
        path = f"{base}/{relative}".rstrip("/")
        try:
            manifest = remote_manifest(where, fs, path)
        except FileNotFoundError:
            continue  # removed since the listing
        label = relative or uri.rsplit("/", 1)[-1]
        captures.append(
            Capture(
                label,
                manifest,
                where,
                lambda entry, w=where, p=path: fs.open_input_file(store_key(w, p, entry["path"])),
            )
        )
    if recorders:
        captures = [c for c, _ in chosen([(c, c.label) for c in captures], recorders, uri)]
    if not captures:
        raise CaptureError(
            f"no capture at {uri} (no manifest.json there or in the folders below it): "
            "check the URI"
        )
    return captures
