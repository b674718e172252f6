"""What a running recorder says about itself, and the one rule for whether it is healthy.

:func:`snapshot` reads a recorder (per stream: connection state, data frames and bytes, seconds
since the last frame, reconnects; gap rows per kind; the journal's last flush and any pause; the
seal and upload backlogs; free disk) without touching its hot path: it runs when someone asks
(a scrape, the status file's timer). :func:`health` turns a snapshot into ``ok`` or
``degraded`` with its reasons; the metrics endpoint's ``/healthz`` and ``rtcap status`` both
ask it, so they never disagree.

The recorder keeps ``status.json`` in its capture current (every second, written atomically),
so ``rtcap status`` can tell a recorder's state from another process or another user's shell,
without a lock and without a network port.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from rtcap.capture.recorder import Recorder
    from rtcap.storage.remote import Uploader

STATUS_FILE = "status.json"
STATUS_EVERY_S = 1.0
STALE_STATUS_S = 10.0  # a status file not refreshed for this long: the recorder is gone
LOW_DISK_BYTES = 1 << 30  # less free than this on the capture's disk is degraded
SEAL_BACKLOG = 2  # segments waiting to be sealed beyond which the sealer is behind
UPLOAD_BACKLOG = 20  # files waiting to go up beyond which uploads are behind


def snapshot(recorder: Recorder) -> dict[str, Any]:
    """The recorder's state now, as plain JSON-ready values."""
    now = time.time_ns()
    uploader: Uploader | None = recorder.uploader
    streams = {}
    for session in recorder.sessions:
        stream = session.feed.stream
        frames, size = recorder.stream_counts.get(stream, (0, 0))
        last = session.last_message_ns
        rhythm = session.rhythm
        streams[stream] = {
            "state": session.state,
            "connected": session.state == "connected",
            "frames": frames,
            "bytes": size,
            "last_frame_age_s": round((now - last) / 1e9, 3) if last else None,
            "silence_after_s": rhythm.threshold_ns() / 1e9 if rhythm is not None else None,
            "reconnects": session.reconnects,
        }
    writer = recorder.writer
    path = writer.path if writer is not None else None
    pause = recorder.pause
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "capture": str(path) if path is not None else None,
        "uri": uploader.uri if uploader is not None else None,
        "updated_ns": now,
        "elapsed_s": round(time.monotonic() - recorder.started, 3),
        "running": not recorder.stop.is_set(),
        "rows": recorder.rows,
        "data_frames": recorder.data_frames,
        "payload_bytes": recorder.payload_bytes,
        "streams": streams,
        "gaps": dict(recorder.gap_counts),
        "journal": {
            "paused": pause is not None,
            "held_bytes": pause.held_bytes if pause is not None else 0,
            "last_flush_s": recorder.last_flush_s,
        },
        "seal_backlog": writer.sealer.backlog if writer is not None else 0,
        "seal_failures": len(writer.stats.seal_failures) if writer is not None else 0,
        "upload_backlog": uploader.backlog() if uploader is not None else 0,
        "disk_free_bytes": shutil.disk_usage(path).free if path is not None else None,
    }


def health(state: dict[str, Any]) -> tuple[str, list[str]]:
    """``("ok", [])`` or ``("degraded", reasons)`` for a :func:`snapshot`."""
    reasons = []
    for stream, info in state["streams"].items():
        if not info["connected"]:
            reasons.append(f"{stream}: {info['state']}")
        elif (
            info["last_frame_age_s"] is not None
            and info["silence_after_s"] is not None
            and info["last_frame_age_s"] > info["silence_after_s"]
        ):
            reasons.append(f"{stream}: no frame for {info['last_frame_age_s']:.1f} s")
    if state["journal"]["paused"]:
        reasons.append(
            f"journal paused (disk full), {state['journal']['held_bytes']:,} bytes held in memory"
        )
    if state["seal_backlog"] > SEAL_BACKLOG:
        reasons.append(f"{state['seal_backlog']} segments waiting to be sealed")
    if state["upload_backlog"] > UPLOAD_BACKLOG:
        reasons.append(f"{state['upload_backlog']} files waiting to be uploaded")
    free = state.get("disk_free_bytes")
    if free is not None and free < LOW_DISK_BYTES:
        reasons.append(f"disk: {free / 1e6:,.0f} MB free")
    return ("degraded" if reasons else "ok"), reasons


def write_status(directory: Path, state: dict[str, Any]) -> None:
    """``status.json`` in ``directory``, replaced atomically (a reader never sees half)."""
    verdict, reasons = health(state)
    body = orjson.dumps({**state, "health": verdict, "reasons": reasons})
    tmp = directory / f".{STATUS_FILE}.tmp"
    tmp.write_bytes(body)
    os.replace(tmp, directory / STATUS_FILE)


def read_status(directory: Path) -> dict[str, Any] | None:
    """The status a recorder keeps in ``directory`` (``None`` if it keeps none there), with
    ``alive`` added: refreshed lately by a process that still runs (on this host)."""
    try:
        state = orjson.loads((directory / STATUS_FILE).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(state, dict):
        return None
    age = (time.time_ns() - int(state.get("updated_ns") or 0)) / 1e9
    alive = bool(state.get("running")) and age < STALE_STATUS_S
    if alive and state.get("host") == socket.gethostname():
        alive = _process_exists(int(state.get("pid") or 0))
    state["alive"] = alive
    state["status_age_s"] = round(age, 1)
    return state


def _process_exists(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's recorder
    return True
