"""The capture's lock file: one recorder (or one recovery) writes a capture at a time.

``capture.lock`` is held with ``flock`` while a recorder writes and names its owner, so a second
``rtcap record`` or a ``recover`` says who holds it instead of writing beside it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from rtcap.storage.confine import open_no_follow, refuse_links
from rtcap.storage.errors import CaptureBusy, CaptureError

LOCK = "capture.lock"


def lock_capture(directory: Path, *, purpose: str):
    """The capture's lock file, held exclusively (``CaptureBusy`` if someone holds it)."""
    lock_path = directory / LOCK
    if lock_path.is_dir() and not lock_path.is_symlink():
        raise CaptureError(
            f"{lock_path} is a directory: rtcap keeps a lock file there; move it away"
        )
    refuse_links(directory)  # every writer takes this lock first
    try:
        descriptor = open_no_follow(lock_path, os.O_RDWR | os.O_CREAT | os.O_APPEND)
        lock = os.fdopen(descriptor, "a+")
    except OSError as exc:
        raise CaptureError(
            f"cannot write capture directory {directory}: {exc.strerror or exc}; "
            "choose a writable location"
        ) from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        owner = lock.read().strip() or "another process"
        lock.close()
        raise CaptureBusy(
            f"capture directory {directory} is in use by a recorder ({owner}); stop it "
            f"before {purpose}"
        ) from None
    return lock


def unlock_capture(lock) -> None:
    with contextlib.suppress(OSError, ValueError):
        fcntl.flock(lock, fcntl.LOCK_UN)
    lock.close()
