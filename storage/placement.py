"""Where a capture's sealed files go: inside it, or into the tables of its dataset root.

A capture on its own keeps its files inside its folder::

    CAPTURE/frames/date=<UTC date>/part-<N>.parquet
    CAPTURE/bars/bars-<N>.parquet

A capture of a dataset (``rtcap record --dataset ROOT --recorder R``, at
``ROOT/source=S/date=T/recorder=R/``: its manifest, journal, lock and lease) writes its sealed
files into the root's tables, one hive-partitioned folder each with one value per key, so any
engine reads ``ROOT/frames`` and ``ROOT/bars`` as tables::

    ROOT/frames/date=<UTC date of the rows>/source=S/recorder=R/part-<T>-<N>.parquet
    ROOT/bars/date=<UTC date of the bars' starts>/source=S/recorder=R/bars-<T>-<N>.parquet

``T`` (the capture's trading day, digits only) keeps the files of one recorder's days apart.
The manifest says so (``"tables": {"source", "recorder", "day"}``) and lists those files by
their path from the capture folder (``../../../frames/…``); the manifest's checks accept that
form, with exactly those partition values, and no other path out of the capture.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

UP = "../../../"  # from ROOT/source=S/date=T/recorder=R to ROOT
VALUE = r"[A-Za-z0-9._-]+"
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Placement:
    """The placement of one capture's sealed files (see the module's docstring)."""

    source: str | None = None  # None: a capture on its own
    recorder: str | None = None
    day: str | None = None  # YYYY-MM-DD

    @property
    def in_tables(self) -> bool:
        return self.source is not None

    def frames_folder(self, date: str) -> str:
        """The folder (relative to the capture) of its frames of UTC ``date``."""
        return self._folder("frames", date)

    def bars_folder(self, date: str) -> str:
        """The folder (relative to the capture) of its live bars starting on UTC ``date``."""
        return self._folder("bars", date)

    def _folder(self, table: str, date: str) -> str:
        if not self.in_tables:
            return f"frames/date={date}" if table == "frames" else "bars"
        return f"{UP}{table}/date={date}/{self._partition}"

    def stem(self, kind: str) -> str:
        """``part`` or ``bars``, with the day in tables (``part-20261205``): file names are
        ``<stem>-<segment number>.parquet`` (:func:`rtcap.storage.segments.free_name`)."""
        return f"{kind}-{str(self.day).replace('-', '')}" if self.in_tables else kind

    @property
    def _partition(self) -> str:
        return f"source={self.source}/recorder={self.recorder}"

    def frames_glob(self) -> str:
        """A glob (relative to the capture) of every frames file it may have written."""
        return self._glob("frames", "part")

    def bars_glob(self) -> str:
        """A glob (relative to the capture) of every live-bars file it may have written."""
        return self._glob("bars", "bars")

    def temporaries_globs(self) -> list[str]:
        """Globs (relative to the capture) of the temporary files a seal of it may leave."""
        return [self._glob("bars", "bars", temporary=True), self._glob("frames", "part", True)]

    def _glob(self, table: str, kind: str, temporary: bool = False) -> str:
        """In tables other recorders share, only its own names; in its own folder every
        Parquet file of the frames (so recovery names strangers)."""
        folder = self._folder(table, "*")
        if temporary:
            return f"{folder}/.{self.stem(kind)}-*.tmp"
        own = self.in_tables or table != "frames"
        return f"{folder}/{self.stem(kind)}-*.parquet" if own else f"{folder}/*.parquet"

    def describe(self) -> dict[str, str] | None:
        """The manifest's ``tables`` entry (``None`` for a capture on its own)."""
        if not self.in_tables:
            return None
        return {"source": str(self.source), "recorder": str(self.recorder), "day": str(self.day)}

    def segment_path(self) -> re.Pattern[str]:
        """The paths the manifest may list for its segment files."""
        return self._listed("frames", "part")

    def bars_path(self) -> re.Pattern[str]:
        """The paths the manifest may list for its live-bars files."""
        return self._listed("bars", "bars")

    def _listed(self, table: str, kind: str) -> re.Pattern[str]:
        # the date is the one part of the folder that varies (no partition value holds NUL)
        folder = re.escape(self._folder(table, "\0")).replace("\0", r"\d{4}-\d{2}-\d{2}")
        return re.compile(rf"^{folder}/{re.escape(self.stem(kind))}-\d{{6}}(?:-\d+)?\.parquet$")


HERE = Placement()


def is_segment_path(path: str) -> bool:
    """Whether a listed path is a segment file's (else a live-bars file's), in either place."""
    return path.removeprefix(UP).startswith("frames/")


def placement_of(manifest: dict[str, Any]) -> Placement:
    """The placement a manifest declares (its ``tables``), checked; :data:`HERE` without."""
    tables = manifest.get("tables")
    if tables is None:
        return HERE
    problem = tables_problem(tables)
    if problem:
        raise ValueError(problem)
    return Placement(tables["source"], tables["recorder"], tables["day"])


def placement_from_path(capture: PurePath, *, own_files_allowed: bool = False) -> Placement:
    """The placement of a dataset capture at ``capture`` (``ROOT/source=S/date=T/recorder=R``):
    what a new one gets, and what a lost manifest had when the capture keeps no ``frames/`` of
    its own (``own_files_allowed``: whatever it keeps, where ``migrate`` moves it to)."""
    parts = capture.parts[-3:]
    found = [re.fullmatch(rf"{key}=({pattern})", part) for key, pattern, part in zip(
        ("source", "date", "recorder"), (VALUE, r"\d{4}-\d{2}-\d{2}", VALUE), parts, strict=False
    )]  # fmt: skip
    if len(parts) < 3 or not all(found):
        return HERE
    if not own_files_allowed and (Path(capture) / "frames").exists():
        return HERE
    source, day, recorder = (m.group(1) for m in found if m is not None)
    return Placement(source, recorder, day)


def tables_problem(tables: Any) -> str | None:
    """What is malformed in a manifest's ``tables`` entry."""
    if not isinstance(tables, dict):
        return "'tables' is not an object"
    for key in ("source", "recorder"):
        value = tables.get(key)
        if not isinstance(value, str) or not re.fullmatch(VALUE, value):
            return f"'tables' has no valid {key}"
    if not isinstance(tables.get("day"), str) or not DAY.match(tables["day"]):
        return "'tables' has no valid day"
    return None
