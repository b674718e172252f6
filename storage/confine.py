"""What rtcap writes, deletes, locks or renames in a capture is the capture's own.

A capture may come from anyone (a bucket, a colleague, a backup). A symbolic link among the
names rtcap owns would make a recorder or ``recover`` write, truncate or delete a file
elsewhere: ``capture.lock`` pointing at a file overwrites it, a ``journal/`` pointing at another
capture's journal gets that journal sealed and deleted. So every command that writes a capture
(record, ``--append``, recover, migrate) first checks the owned names and refuses a link, and
the lock file itself is opened with ``O_NOFOLLOW`` (a link planted after the check still fails).
The capture folder itself may be a link: the user named it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from rtcap.storage.errors import CaptureError

OWNED_FILES = (
    "capture.lock",
    "manifest.json",
    "manifest.json.tmp",
    "status.json",
    ".status.json.tmp",
)
OWNED_FOLDERS = ("journal", "frames", "bars")


def owned_names(capture: Path) -> Iterator[Path]:
    """The names rtcap owns in ``capture``: its files, its folders and what they hold (two
    levels: ``frames/date=…/part-….parquet``), without following any link."""
    for name in OWNED_FILES:
        yield capture / name
    for name in OWNED_FOLDERS:
        folder = capture / name
        yield folder
        if folder.is_symlink() or not folder.is_dir():
            continue
        for child in folder.iterdir():
            yield child
            if child.is_dir() and not child.is_symlink():
                yield from child.iterdir()


def refuse_links(capture: Path) -> None:
    """A :class:`CaptureError` naming the first symbolic link among the owned names."""
    for path in owned_names(capture):
        if path.is_symlink():
            raise CaptureError(
                f"{path} is a symbolic link (to {os.readlink(path)}): rtcap never writes, "
                "deletes or locks through a link in a capture; replace it with the real file "
                "or folder"
            )


def open_no_follow(path: Path, flags: int, mode: int = 0o644) -> int:
    """``os.open`` that refuses a symbolic link as the last component (``O_NOFOLLOW``)."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if path.is_symlink():
            raise CaptureError(
                f"{path} is a symbolic link: rtcap never writes, deletes or locks through a "
                "link in a capture; replace it with the real file"
            ) from None
        raise exc
