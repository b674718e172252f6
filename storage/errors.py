"""The errors storage raises: each message names the cause and what to do about it."""

from __future__ import annotations

import errno


class CaptureError(Exception):
    """A capture cannot be used as asked; the message says why and what to do."""


class CaptureBusy(CaptureError):
    """Another process is recording into the capture."""


class RecoveryNeeded(CaptureError):
    """A recording left an unsealed journal behind."""


class CaptureDamaged(CaptureError):
    """A file of the capture does not hold what the manifest says it holds."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def describe_os_error(exc: BaseException, doing: str) -> str:
    """One line for an OS error met while ``doing`` something (disk full, no permission…)."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return f"disk full while {doing}"
    if isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"no permission while {doing} ({exc.strerror})"
    if isinstance(exc, OSError):
        return f"I/O error while {doing} ({exc.strerror or exc})"
    return f"{type(exc).__name__} while {doing}: {exc}"
