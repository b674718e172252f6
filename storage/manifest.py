"""``manifest.json``: what a capture holds, written last and atomically (tmp, fsync, rename)."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import orjson

MANIFEST = "manifest.json"
FORMAT = "rtcap-capture/1"


def library_versions() -> dict[str, str]:
    import duckdb
    import polars
    import pyarrow
    import websockets
    import zstandard

    from rtcap import __version__

    return {
        "rtcap": __version__,
        "python": platform.python_version(),
        "pyarrow": pyarrow.__version__,
        "zstandard": zstandard.__version__,
        "websockets": websockets.__version__,
        "duckdb": duckdb.__version__,
        "polars": polars.__version__,
    }


def new_manifest(source: dict[str, Any], created_ns: int) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "versions": library_versions(),
        "status": "recording",
        "created_ns": created_ns,
        "updated_ns": created_ns,
        "source": source,
        "subscriptions": [],
        "segments": [],
        "connections": [],
        "gaps": [],
        "frames": 0,
        "payload_bytes": 0,
        "first_seq": None,
        "last_seq": None,
        "live_bars": None,
    }


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so a reader sees the old or the new file, never half."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def save(directory: Path, manifest: dict[str, Any]) -> None:
    write_atomic(directory / MANIFEST, orjson.dumps(manifest, option=orjson.OPT_INDENT_2))


def load(directory: Path) -> dict[str, Any]:
    return orjson.loads((directory / MANIFEST).read_bytes())
