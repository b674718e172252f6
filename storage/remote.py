"""Captures on object storage: ``s3://bucket/prefix`` (and any URI ``pyarrow.fs`` opens).

A capture at a URI has the same layout as on disk. rtcap never works on it in place:

* **Reading** mirrors it into a local cache (``$RTCAP_CACHE``, default ``~/.cache/rtcap``): the
  manifest first, then every file the manifest lists that the cache does not already hold with
  the listed sha256. Files the manifest does not list are never fetched. Every command then reads
  the mirror with all its usual checks.
* **Writing** (``record``, ``import``) goes to a local staging capture under ``--journal-dir``
  (default ``$RTCAP_CACHE/staging``), journal included; :func:`push` uploads every sealed file
  not yet uploaded, then the manifest. An object store makes an object visible only once its
  upload completes, and the manifest goes last, so a reader never sees a listed file that is
  incomplete. A crash leaves the journal in the staging folder: ``rtcap recover URI`` seals it
  there and finishes the upload.

Credentials come from the standard AWS chain (environment, profile, instance role); an
S3-compatible store is reached with ``AWS_ENDPOINT_URL`` (or ``--endpoint-url``). Nothing about
them is written anywhere: staging folders are named by bucket and prefix only.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import shutil
import time
import uuid
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, urlsplit

import orjson
import pyarrow as pa
import pyarrow.fs as pafs

from rtcap.storage import manifest as manifests
from rtcap.storage.dataset import MAX_DEPTH, find_captures
from rtcap.storage.errors import CaptureError, first_line
from rtcap.storage.integrity import check_file, journal_files, open_capture
from rtcap.storage.lease import StoreLease
from rtcap.storage.manifest import (
    MAX_MANIFEST_BYTES,
    _shape_problem,
    listed_files,
    tables_elsewhere,
)
from rtcap.storage.placement import UP, placement_from_path
from rtcap.storage.segments import sha256_file

RETRIES = 4
RETRY_BASE_S = 0.5
CHUNK = 8 << 20


def is_uri(text: str | os.PathLike) -> bool:
    """``s3://…``, ``gs://…`` and the like (a local path, even with ``:``, is not)."""
    return bool(re.match(r"^[a-z][a-z0-9+.-]+://", str(text))) and not str(text).startswith(
        "file://"
    )


def cache_root() -> Path:
    return Path(os.environ.get("RTCAP_CACHE") or Path.home() / ".cache" / "rtcap")


def _local_name(uri: str) -> Path:
    """A folder name for ``uri``: scheme, then bucket and prefix (never user info or query),
    one name per URI. Characters other than letters, digits, ``.``, ``=`` and ``-`` are
    percent-encoded (``_`` and ``%`` included) and ``/`` becomes ``_``, so the mapping can be
    undone: ``s3://b/x_y`` and ``s3://b/x/y`` never share a folder, and no URI's folder lies
    inside another's."""
    parts = urlsplit(uri)
    host = parts.netloc.rsplit("@", 1)[-1]
    name = "_".join(
        quote(piece, safe="=").replace("_", "%5F").replace("~", "%7E")
        for piece in [host, *parts.path.strip("/").split("/")]
        if piece
    )
    return Path(parts.scheme) / name


def mirror_path(uri: str) -> Path:
    """Where a remote capture is mirrored for reading."""
    return cache_root() / "mirror" / _local_name(uri)


def staging_path(
    uri: str, journal_dir: str | Path | None = None, dataset: str | None = None
) -> Path:
    """The local capture (journal and sealed files) a write to ``uri`` goes through; for a
    capture of the dataset at URI ``dataset``, its folder in the staging tree of the whole
    dataset (its sealed files go to that tree's tables: :mod:`rtcap.storage.placement`)."""
    root = Path(journal_dir) if journal_dir else cache_root() / "staging"
    if dataset is None:
        return root / _local_name(uri)
    relative = uri.rstrip("/")[len(dataset.rstrip("/")) :].strip("/")
    return root / _local_name(dataset) / relative


def drop_local_copy(capture: Path) -> None:
    """Remove a local copy of a capture the store holds whole (staging): its folder and, for a
    dataset's capture, the files it listed in the tables."""
    with contextlib.suppress(CaptureError, OSError):
        for entry in listed_files(manifests.load(capture)):
            if entry["path"].startswith(UP):
                (capture / entry["path"]).unlink(missing_ok=True)
    shutil.rmtree(capture, ignore_errors=True)


def store_key(uri: str, base: str, relative: str) -> str:
    """The store path of the file a manifest lists at ``relative`` from the capture at
    ``base``: in a dataset's tables, three levels up (:mod:`rtcap.storage.placement`)."""
    if relative.startswith(UP) and len([p for p in base.split("/") if p]) < 4:
        raise CaptureError(
            f"{uri} lists {relative}, in a dataset's tables, but is not a dataset's capture "
            "(ROOT/source=…/date=…/recorder=…): pull or push the dataset root"
        )
    return posixpath.normpath(f"{base}/{relative}")


def listed_uri(uri: str, relative: str) -> str:
    """The URI of the file the capture at ``uri`` lists at ``relative`` (its tables included)."""
    parts = urlsplit(uri)
    base = f"{parts.netloc}/{parts.path.strip('/')}".rstrip("/")
    return f"{parts.scheme}://{store_key(uri, base, relative)}"


def open_remote(uri: str, endpoint_url: str | None = None) -> tuple[pafs.FileSystem, str]:
    """The file system and base path of ``uri``; one clear error when it cannot be reached."""
    endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
    parts = urlsplit(uri)
    try:
        if parts.scheme == "s3":
            options: dict[str, Any] = {}
            if endpoint:
                options["endpoint_override"] = endpoint
                options["scheme"] = urlsplit(endpoint).scheme or "https"
            region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            options["region"] = region or "us-east-1"
            options["connect_timeout"] = options["request_timeout"] = 10
            fs = pafs.S3FileSystem(**options)
            base = f"{parts.netloc}/{parts.path.strip('/')}".rstrip("/")
        else:
            fs, base = pafs.FileSystem.from_uri(uri)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise CaptureError(f"cannot open {uri}: {first_line(exc)}") from None
    return fs, base


def _call(uri: str, what: str, action):
    """``action()`` with retries on transient errors; a final failure is one line."""
    for attempt in range(RETRIES):
        try:
            return action()
        except FileNotFoundError:
            raise
        except (OSError, pa.ArrowException) as exc:
            message = first_line(exc)
            permanent = _DENIED.search(message) or _NO_BUCKET.search(message)
            if permanent or attempt == RETRIES - 1:
                raise CaptureError(f"{what} {uri} failed: {message}{_advice(message)}") from None
            time.sleep(RETRY_BASE_S * 2**attempt)
    raise AssertionError("unreachable")


_DENIED = re.compile(
    r"access.?denied|forbidden|invalid.?access.?key|signature.?does.?not.?match|\b403\b"
    r"|access key id you provided does not exist",
    re.I,
)
_NO_BUCKET = re.compile(r"no.?such.?bucket|bucket '?[^' ]+'? does not exist", re.I)


def _advice(message: str) -> str:
    if _DENIED.search(message):
        return " (check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the profile, and the policy)"
    if _NO_BUCKET.search(message):
        return " (create the bucket, or check the URI)"
    if any(s in message.lower() for s in ("connect", "resolve", "timed out", "curl")):
        return " (is the endpoint reachable? set AWS_ENDPOINT_URL for an S3-compatible store)"
    return ""


def _read(fs: pafs.FileSystem, path: str, limit: int = MAX_MANIFEST_BYTES) -> bytes:
    """A whole (small) object; ``ValueError`` past ``limit`` bytes, read no further."""
    with fs.open_input_stream(path) as stream:
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path} is larger than any manifest rtcap writes")
    return bytes(data)


def _write(fs: pafs.FileSystem, path: str, source: Path) -> None:
    with open(source, "rb") as handle, fs.open_output_stream(path) as out:
        while chunk := handle.read(CHUNK):
            out.write(chunk)


def pull(uri: str, endpoint_url: str | None = None, into: Path | None = None) -> Path:
    """Copy what ``uri`` holds locally (fetching only what changed); its local path: the
    cache's mirror, or ``into`` (``rtcap pull``). ``uri`` is a capture, or a dataset root:
    then every capture below it, found by listing the store (:func:`remote_captures`), is
    copied as the same tree. Only the cache's mirror forgets captures gone from the store."""
    fs, base = open_remote(uri, endpoint_url)
    try:
        raw = _read_manifest(uri, fs, base)
    except FileNotFoundError:
        return _pull_root(uri, fs, base, into)
    if _parsed(uri, raw).get("tables"):
        # a dataset's capture: copied into the tree of its root, beside the root's tables
        root, *relative = uri.rstrip("/").rsplit("/", 3)
        local = (into or mirror_path(root)).joinpath(*relative)
        return _mirror(uri, fs, base, raw, local, into is not None)
    return _mirror(uri, fs, base, raw, into or mirror_path(uri), into is not None)


def _read_manifest(uri: str, fs: pafs.FileSystem, base: str) -> bytes:
    try:
        return _call(uri, "reading the manifest of", lambda: _read(fs, f"{base}/manifest.json"))
    except ValueError as exc:
        raise CaptureError(f"the manifest of {uri} is damaged ({exc})") from None


def remote_manifest(uri: str, fs: pafs.FileSystem, base: str) -> dict[str, Any]:
    """The checked manifest of the capture at ``uri`` (``base`` on ``fs``), read from the store;
    ``FileNotFoundError`` when there is none."""
    return _parsed(uri, _read_manifest(uri, fs, base))


def remote_captures(uri: str, fs: pafs.FileSystem, base: str) -> list[str]:
    """The captures below ``base`` on the store, as paths relative to it (``source=sim/
    date=2026-12-05/recorder=a``), sorted: every folder holding a ``manifest.json`` at most
    :data:`MAX_DEPTH` levels down and not inside another capture. The store's counterpart of
    :func:`rtcap.storage.dataset.find_captures`."""
    selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
    listing = _call(uri, "listing", lambda: fs.get_file_info(selector))
    found = []
    for info in listing:
        relative = info.path[len(base) :].strip("/")
        parts = relative.split("/")
        if parts[-1] != "manifest.json" or len(parts) - 1 > MAX_DEPTH or len(parts) < 2:
            continue
        if any(part in ("", ".", "..") for part in parts):
            continue  # not a name rtcap writes, and never a path to follow
        found.append("/".join(parts[:-1]))
    found.sort()
    inside = [c for c in found if any(c.startswith(f"{other}/") for other in found)]
    return [c for c in found if c not in inside]


def _pull_root(uri: str, fs: pafs.FileSystem, base: str, into: Path | None) -> Path:
    captures = remote_captures(uri, fs, base)
    if not captures:
        raise CaptureError(
            f"no capture at {uri} (no manifest.json there or in the folders below it): check "
            "the URI"
        )
    root = into or mirror_path(uri)
    for relative in captures:
        where = f"{uri.rstrip('/')}/{relative}"
        try:
            raw = _read_manifest(where, fs, f"{base}/{relative}")
        except FileNotFoundError:
            continue  # removed since the listing
        _mirror(where, fs, f"{base}/{relative}", raw, root / relative, into is not None)
    # A capture mirrored before and gone from the store since is not the store's any more.
    for old in find_captures(root) if into is None and root.exists() else []:
        if old != root and old.relative_to(root).as_posix() not in captures:
            drop_local_copy(old)
    return root


def _parsed(uri: str, raw: bytes) -> dict[str, Any]:
    try:
        manifest = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise CaptureError(f"the manifest of {uri} is not JSON: it is damaged") from None
    problem = _shape_problem(manifest) or tables_elsewhere(
        manifest, PurePosixPath(urlsplit(uri).path)
    )
    if problem:
        raise CaptureError(f"the manifest of {uri} is damaged ({problem})")
    return manifest


def _created(manifest_path: Path) -> int | None:
    """``created_ns`` of the capture whose manifest is at ``manifest_path`` (its identity)."""
    try:
        return orjson.loads(manifest_path.read_bytes()).get("created_ns")
    except (OSError, orjson.JSONDecodeError, AttributeError):
        return None


def _mirror(
    uri: str, fs: pafs.FileSystem, base: str, raw: bytes, local: Path, own_folder: bool = False
) -> Path:
    """Fetch the files the manifest ``raw`` of the capture at ``uri`` lists into ``local``
    (those already there with the listed sha256 are kept), then the manifest. In a folder of
    the user's (``own_folder``), a different capture already there is refused, not mixed."""
    manifest = _parsed(uri, raw)
    if manifest.get("tables") and not placement_from_path(local, own_files_allowed=True).in_tables:
        # its files sit three levels up, in the root's tables: only the root's tree holds them
        raise CaptureError(
            f"{uri} is a capture of a dataset whose files are in the root's tables: read or "
            "pull the dataset root (the folder holding source=…/) or the capture's own URI"
        )
    if own_folder and _created(local / "manifest.json") not in (None, manifest.get("created_ns")):
        raise CaptureError(f"{local} holds another capture than {uri}: pull into a new folder")
    local.mkdir(parents=True, exist_ok=True)
    for entry in listed_files(manifest):
        target = local / entry["path"]
        if target.exists() and entry.get("sha256") and sha256_file(target) == entry["sha256"]:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.download")
        try:
            _call(
                uri,
                f"fetching {entry['path']} of",
                lambda e=entry, p=partial: _fetch(uri, fs, base, e, p),
            )
        except FileNotFoundError:
            raise CaptureError(
                f"{uri} lists {entry['path']} but the store has no such object: the upload was "
                "interrupted; run `rtcap recover` where it was recorded"
            ) from None
        partial.replace(target)
    (local / "manifest.json").write_bytes(raw)
    return local


def _fetch(uri: str, fs: pafs.FileSystem, base: str, entry: dict[str, Any], partial: Path) -> None:
    source = store_key(uri, base, entry["path"])
    with fs.open_input_stream(source) as stream, open(partial, "wb") as out:
        while chunk := stream.read(CHUNK):
            out.write(chunk)


class Uploader:
    """Pushes a staging capture's sealed files, then its manifest, to ``uri``."""

    def __init__(self, uri: str, staging: Path, endpoint_url: str | None = None) -> None:
        self.uri = uri
        self.staging = staging
        self.fs, self.base = open_remote(uri, endpoint_url)
        self.uploaded: dict[str, str] = {}  # path -> sha256 already in the store
        self._manifest_sent: bytes | None = None
        self.bytes_sent = 0
        self.lease: StoreLease | None = None  # one writer per prefix (storage/lease.py)

    def claim(self, holder: str) -> None:
        """Take the prefix's lease before recording (refused while another recorder holds
        it); every :meth:`push` then keeps it."""
        self.lease = StoreLease(self.uri, self.fs, self.base, holder)
        _call(self.uri, "claiming", self.lease.claim)

    def hold(self, holder: str) -> None:
        """The lease of a capture opened mid-recording (a day roll): taken by the first
        :meth:`push`, which is refused if another recorder holds it."""
        self.lease = StoreLease(self.uri, self.fs, self.base, holder)

    def release(self) -> None:
        """Give the lease up (best effort: a lease left behind lapses by itself)."""
        if self.lease is not None:
            with contextlib.suppress(OSError, pa.ArrowException, CaptureError):
                self.lease.release()

    def check_reachable(self) -> None:
        """Fail now, with one line, if the bucket cannot be written (before recording)."""
        # A name of this process's own: two recorders starting at once on one prefix must not
        # delete each other's probe.
        name = f".rtcap-write-probe-{uuid.uuid4().hex[:12]}"
        probe = f"{self.base}/{name}"
        staging_probe = self.staging.parent / name
        staging_probe.parent.mkdir(parents=True, exist_ok=True)
        staging_probe.write_bytes(b"rtcap")
        try:
            _call(self.uri, "writing to", lambda: _write(self.fs, probe, staging_probe))
            _call(self.uri, "writing to", lambda: self.fs.delete_file(probe))
        finally:
            staging_probe.unlink(missing_ok=True)

    def exists(self) -> bool:
        """Whether a capture is at the URI already (its manifest is in the store)."""
        info = _call(
            self.uri, "listing", lambda: self.fs.get_file_info(f"{self.base}/manifest.json")
        )
        return info.type == pafs.FileType.File

    def confirmed(self) -> bool:
        """Whether the store holds this staging capture whole: the manifest there is the one
        staged, and every file it lists went up with its sha256. Only then may the local copy
        go."""
        try:
            raw = (self.staging / "manifest.json").read_bytes()
        except OSError:
            return False
        return raw == self._manifest_sent and self.backlog() == 0

    def backlog(self) -> int:
        """Files the staging manifest lists that are not in the store yet."""
        path = self.staging / "manifest.json"
        try:
            manifest = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return 0
        return sum(
            1
            for entry in listed_files(manifest)
            if not entry.get("sha256") or self.uploaded.get(entry["path"]) != entry["sha256"]
        )

    def push(self) -> int:
        """Upload what is new; returns how many files went up. The manifest goes last."""
        path = self.staging / "manifest.json"
        if not path.exists():
            return 0
        if self.lease is not None:
            _call(self.uri, "renewing the lease of", self.lease.keep)
        raw = path.read_bytes()
        manifest = orjson.loads(raw)
        sent = 0
        for entry in listed_files(manifest):
            sha = entry.get("sha256") or ""
            if self.uploaded.get(entry["path"]) == sha and sha:
                continue
            source = self.staging / entry["path"]
            remote = store_key(self.uri, self.base, entry["path"])
            if entry["path"] not in self.uploaded:  # a new process: what is up already?
                info = _call(self.uri, "listing", lambda r=remote: self.fs.get_file_info(r))
                if info.type == pafs.FileType.File and info.size == source.stat().st_size:
                    self.uploaded[entry["path"]] = sha
                    continue
            _call(
                self.uri,
                f"uploading {entry['path']} to",
                lambda s=source, r=remote: _write(self.fs, r, s),
            )
            self.uploaded[entry["path"]] = sha
            self.bytes_sent += source.stat().st_size
            sent += 1
        if raw != self._manifest_sent:
            _call(self.uri, "uploading the manifest to", lambda: _write(
                self.fs, f"{self.base}/manifest.json", path))  # fmt: skip
            self._manifest_sent = raw
        return sent


def push_capture(capture: Path, uri: str, holder: str) -> Uploader:
    """``rtcap push``: upload the closed local capture ``capture`` to ``uri``, every listed
    file checked first and the manifest last. Resumable: files already on the store at their
    size are not sent again. A store holding another capture at ``uri`` is refused, and the
    prefix is leased (:mod:`rtcap.storage.lease`) while it goes up."""
    manifest = open_capture(capture)
    if journal_files(capture):
        raise CaptureError(
            f"{capture} has an unsealed journal (a recording still running, or one that "
            f"crashed): stop it or run `rtcap recover {capture}`, then push"
        )
    for entry in listed_files(manifest):
        check_file(capture, entry)
    tables = manifest.get("tables")
    if tables:  # its files go to the tables of the dataset root the URI is in
        tail = f"source={tables['source']}/date={tables['day']}/recorder={tables['recorder']}"
        if not uri.rstrip("/").endswith(f"/{tail}"):
            raise CaptureError(
                f"{capture} is a dataset's capture, its files in the root's tables: push it to "
                f"<dataset root URI>/{tail}"
            )
    uploader = Uploader(uri, capture)
    try:
        there = orjson.loads(_read_manifest(uri, uploader.fs, uploader.base))
    except FileNotFoundError:
        there = None
    except orjson.JSONDecodeError:
        there = {}
    if there is not None and there.get("created_ns") != manifest.get("created_ns"):
        raise CaptureError(f"{uri} already holds another capture: push to a new URI")
    uploader.claim(holder)
    try:
        uploader.push()
    finally:
        uploader.release()
    return uploader


def push_all(uri: str, staging: Path, endpoint_url: str | None = None) -> Uploader:
    uploader = Uploader(uri, staging, endpoint_url)
    uploader.push()
    return uploader
