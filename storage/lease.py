"""One writer per capture prefix on a store: a lease object that a live recorder renews.

A local capture has ``capture.lock`` (an ``flock``); a store has no locks, so two machines
recording into one URI (or one ``--dataset ROOT --recorder ID``) would each upload a manifest
over the other's. Before recording, a recorder writes ``capture.lease`` under the prefix,
naming itself and when the lease lapses, waits a moment, and reads it back: if the lease names
someone else (who wrote last in a race, or holds a lease that has not lapsed) it is refused
with one line naming the holder. While recording, every upload first reads the lease: still
ours, it is renewed every :data:`RENEW_EVERY_S`; anyone else's, nothing is uploaded (the rows
stay in local staging). A clean stop deletes the lease; a crashed recorder's lapses after
:data:`TTL_S`.

Stores that read their own writes (S3 has since 2020) make the read-back decide a race: the
last writer's lease is what both read.
"""

from __future__ import annotations

import functools
import os
import socket
import time
import uuid
from typing import Any

import orjson
import pyarrow.fs as pafs

from rtcap.storage.errors import CaptureError
from rtcap.timeutil import format_iso_ns

LEASE_NAME = "capture.lease"
TTL_S = 60.0  # a lease not renewed for this long has lapsed (its recorder is gone)
RENEW_EVERY_S = 15.0
SETTLE_S = 0.5  # between writing a new lease and reading it back
NS = 1_000_000_000


@functools.cache
def this_process() -> str:
    """This process's name in the leases it holds: host, pid and a random part (pids
    repeat)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class StoreLease:
    """The lease of the capture at ``uri`` (``fs``/``base``, as the uploader opened them)."""

    def __init__(self, uri: str, fs: pafs.FileSystem, base: str, holder: str) -> None:
        self.uri = uri
        self.fs = fs
        self.path = f"{base}/{LEASE_NAME}"
        self.holder = holder
        self._renewed_at: float | None = None

    def read(self) -> dict[str, Any] | None:
        """The lease on the store, or ``None`` (none, or not readable as one)."""
        try:
            with self.fs.open_input_stream(self.path) as stream:
                lease = orjson.loads(stream.read(64 * 1024))
        except FileNotFoundError:
            return None
        except orjson.JSONDecodeError:
            return None  # not a lease rtcap wrote: it holds nothing
        return lease if isinstance(lease, dict) else None

    def _foreign(self, lease: dict[str, Any] | None, now_ns: int) -> dict[str, Any] | None:
        """``lease`` if it is someone else's and has not lapsed."""
        if lease is None or lease.get("holder") == self.holder:
            return None
        expires = lease.get("expires_ns")
        return lease if isinstance(expires, int) and expires > now_ns else None

    def _write(self, now_ns: int) -> None:
        lease = {
            "holder": self.holder,
            "expires_ns": now_ns + int(TTL_S * NS),
            "expires": format_iso_ns(now_ns + int(TTL_S * NS)),
        }
        with self.fs.open_output_stream(self.path) as out:
            out.write(orjson.dumps(lease))
        self._renewed_at = time.monotonic()

    def _refusal(self, lease: dict[str, Any], what: str) -> CaptureError:
        return CaptureError(
            f"{self.uri} is being recorded by {lease.get('holder')} (its lease runs to "
            f"{lease.get('expires')}): {what}; record into another URI (or --recorder), or "
            f"start once it stops (a stopped recorder's lease lapses within {TTL_S:g} s)"
        )

    def claim(self) -> None:
        """Take the lease before recording, or raise :class:`CaptureError` naming its holder."""
        other = self._foreign(self.read(), time.time_ns())
        if other is not None:
            raise self._refusal(other, "refused")
        self._write(time.time_ns())
        time.sleep(SETTLE_S)
        other = self._foreign(self.read(), time.time_ns())
        if other is not None:  # another recorder wrote after us: it goes on, we do not start
            raise self._refusal(other, "it claimed the prefix at the same moment; refused")

    def keep(self) -> None:
        """Before each upload: the lease must still be ours (renewed when due), else
        :class:`CaptureError` and nothing is uploaded."""
        lease = self.read()
        other = self._foreign(lease, time.time_ns())
        if other is not None:
            raise self._refusal(other, "this recorder's uploads stopped (they stay in staging)")
        due = self._renewed_at is None or time.monotonic() - self._renewed_at >= RENEW_EVERY_S
        if due or lease is None or lease.get("holder") != self.holder:
            self._write(time.time_ns())

    def release(self) -> None:
        """Delete the lease if it is still ours (a clean stop)."""
        lease = self.read()
        if lease is not None and lease.get("holder") == self.holder:
            self.fs.delete_file(self.path)
