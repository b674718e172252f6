"""The errors storage raises: each message names the cause and what to do about it."""

from __future__ import annotations


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
