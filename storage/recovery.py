"""``rtcap recover``: make a capture whole after a crash, a failed seal or a damaged journal.

What it does, touching only files rtcap owns:

* removes rtcap's own unfinished temporaries (``frames/date=*/.part-N.parquet.tmp``,
  ``bars/.bars-N.parquet.tmp``, ``manifest.json.tmp``) and nothing else;
* adopts a sealed segment file the manifest never heard of (a crash between rename and manifest
  update) only if it is rtcap's own, complete, and overlaps nothing listed; anything else under
  ``frames/`` is reported and left alone (readers never read unlisted files);
* seals every journal's intact blocks, keeping only rows no listed segment already holds (by
  ``seq``), so nothing is sealed twice and nothing journaled is dropped; damaged blocks cost
  only themselves, the damaged journal is moved to ``journal/damaged/`` (never deleted) and the
  missing ``seq`` range is written into the manifest's ``damage`` list;
* seals the live-bar journals and rebuilds connections and gaps from the recovered rows;
* rebuilds a manifest that is unreadable from the sealed files themselves (the broken one is
  kept as ``manifest.json.damaged``).
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rtcap.storage import manifest as manifests
from rtcap.storage.errors import CaptureError, describe_os_error
from rtcap.storage.identity import segment_feeds
from rtcap.storage.integrity import (
    bar_journal_files,
    journal_files,
    journal_number,
    read_table,
    segment_files,
)
from rtcap.storage.journal import JournalReader
from rtcap.storage.lock import lock_capture, unlock_capture
from rtcap.storage.manifest import BARS_NAME, PART_NAME
from rtcap.storage.placement import Placement, placement_from_path, placement_of
from rtcap.storage.schema import (
    BAR_SCHEMA,
    BAR_SCHEMAS,
    FRAME_SCHEMA,
    FRAME_SCHEMAS,
    bars_v2,
    frames_v2,
    payload_bytes,
)
from rtcap.storage.sealer import keep_damaged
from rtcap.storage.segments import (
    BARS_TMP_NAME,
    PART_TMP_NAME,
    SEAL_LEVEL,
    seal_segment,
    sha256_file,
    write_bars_files,
)
from rtcap.storage.writer import add_bar_file, add_segment
from rtcap.timeframes import parse_timeframe


@dataclass
class RecoveryReport:
    """What ``rtcap recover`` found and did."""

    journals: int = 0
    frames_recovered: int = 0
    segments_sealed: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    damaged_kept: list[str] = field(default_factory=list)
    frames_lost: int = 0
    orphans_adopted: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    temporaries_removed: list[str] = field(default_factory=list)
    already_sealed: int = 0
    bars_recovered: int = 0
    bars_dropped: int = 0  # closed by rows a crash kept out of the journal
    manifest_rebuilt: bool = False


class SeqCover:
    """The ``seq`` ranges listed segment files hold."""

    def __init__(self, manifest: dict) -> None:
        self.ranges = sorted(
            (f["first_seq"], f["last_seq"]) for s in manifest["segments"] for f in s["files"]
        )

    def overlaps(self, first: int, last: int) -> bool:
        return any(a <= last and first <= b for a, b in self.ranges)

    def add(self, first: int, last: int) -> None:
        self.ranges.append((first, last))
        self.ranges.sort()

    def uncovered(self, table: pa.Table) -> pa.Table:
        """Rows of ``table`` whose seq no listed file holds."""
        mask = self._inside(table, "seq")
        return table if mask is None else table.filter(pc.invert(mask))

    def covered(self, table: pa.Table, column: str) -> pa.Table:
        """Rows of ``table`` whose ``column`` names a seq some listed file holds."""
        mask = self._inside(table, column)
        return table.slice(0, 0) if mask is None else table.filter(mask)

    def _inside(self, table: pa.Table, column: str) -> pa.ChunkedArray | None:
        """Which rows' ``column`` lies in a listed range (``None``: no row does)."""
        if not table.num_rows or not self.ranges:
            return None
        seqs = table.column(column)
        low, high = (v.as_py() for v in pc.min_max(seqs).values())
        mask = None
        for first, last in self.ranges:
            if first <= high and low <= last:
                inside = pc.and_(pc.greater_equal(seqs, first), pc.less_equal(seqs, last))
                mask = inside if mask is None else pc.or_(mask, inside)
        return mask


def recover(path: str | Path, *, seal_level: int = SEAL_LEVEL) -> RecoveryReport:
    """Seal whatever a crash left in the journal; never touches sealed segments' contents."""
    directory = Path(path)
    if not directory.is_dir():
        raise CaptureError(f"no capture at {directory}: check the path")
    has_manifest = (directory / manifests.MANIFEST).exists()
    if (
        not has_manifest
        and not journal_files(directory)
        and not _part_files(directory, placement_from_path(directory))
    ):
        raise CaptureError(f"{directory} is not a capture (no manifest.json, no journal)")
    report = RecoveryReport()
    lock = lock_capture(directory, purpose="recovering it")
    try:
        manifest = _load_or_rebuild(directory, report)
        where = placement_of(manifest)
        _remove_temporaries(directory, where, report)
        cover = SeqCover(manifest)
        _adopt_orphans(directory, where, manifest, cover, report)
        _adopt_orphan_bars(directory, where, manifest, cover, report)
        for journal in journal_files(directory):
            _seal_journal(directory, where, manifest, cover, journal, seal_level, report)
        for journal in bar_journal_files(directory):
            _seal_bar_journal(directory, where, manifest, cover, journal, report)
        sessions = manifest.get("sessions") or []
        if sessions:
            sessions[-1]["last_seq"] = manifest.get("last_seq")
        manifest["status"] = "closed"
        manifest["recovered_ns"] = time.time_ns()
        manifest["updated_ns"] = manifest["recovered_ns"]
        manifests.save(directory, manifest)
    except OSError as exc:
        raise CaptureError(
            f"cannot recover {directory}: {describe_os_error(exc, 'writing into it')}; nothing "
            "was deleted: fix the cause and run `rtcap recover` again"
        ) from None
    finally:
        unlock_capture(lock)
    return report


def _load_or_rebuild(directory: Path, report: RecoveryReport) -> dict:
    path = directory / manifests.MANIFEST
    if path.is_file():
        try:
            return manifests.load(directory)
        except CaptureError as exc:
            report.problems.append(f"{exc}".split(":")[0] + ": rebuilt from the sealed files")
            damaged = path.with_name(path.name + ".damaged")
            os.replace(path, damaged)
            report.manifest_rebuilt = True
    elif path.exists():
        raise CaptureError(f"{path} is a directory: move it away, then run `rtcap recover`")
    rebuilt = manifests.new_manifest({"kind": "unknown"}, time.time_ns())
    if (where := placement_from_path(directory)).in_tables:  # its files are in the tables
        rebuilt["tables"] = where.describe()
    return rebuilt


def _remove_temporaries(directory: Path, where: Placement, report: RecoveryReport) -> None:
    candidates = [directory / (manifests.MANIFEST + ".tmp")]
    for pattern in where.temporaries_globs():
        candidates += [
            p
            for p in directory.glob(pattern)
            if PART_TMP_NAME.match(p.name) or BARS_TMP_NAME.match(p.name)
        ]
    for tmp in candidates:
        if tmp.is_file():
            tmp.unlink()
            report.temporaries_removed.append(tmp.relative_to(directory).as_posix())


def _part_files(directory: Path, where: Placement) -> list[Path]:
    """Every segment file the capture may have written (in its tables: only its own)."""
    return sorted(directory.glob(where.frames_glob()))


def _adopt_orphans(
    directory: Path, where: Placement, manifest: dict, cover: SeqCover, report: RecoveryReport
):
    listed = {f["path"] for s in manifest["segments"] for f in s["files"]}
    for part in _part_files(directory, where):
        relative = part.relative_to(directory).as_posix()
        if relative in listed:
            continue
        if not PART_NAME.match(part.name) or not part.is_file():
            report.ignored.append(f"{relative}: not a name rtcap gives segments (left alone)")
            continue
        entry, table, why = _inspect_part(directory, part)
        if entry is None:
            report.ignored.append(f"{relative}: {why} (left alone)")
            continue
        if cover.overlaps(entry["first_seq"], entry["last_seq"]):
            report.ignored.append(
                f"{relative}: holds seq {entry['first_seq']}–{entry['last_seq']}, which listed "
                "segments already hold (a copy? left alone, never read)"
            )
            continue
        add_segment(manifest, entry)
        cover.add(entry["first_seq"], entry["last_seq"])
        _note_rows(manifest, table)
        report.orphans_adopted.append(relative)


def _adopt_orphan_bars(
    directory: Path, where: Placement, manifest: dict, cover: SeqCover, report: RecoveryReport
):
    """Live-bars files no manifest lists (it was rebuilt): listed again under the session their
    closing rows belong to, with the timeframes they hold, if the rows are on the tape."""
    listed = {
        f["path"] if isinstance(f, dict) else f
        for block in manifests.bar_blocks(manifest)
        for f in block.get("files") or []
    }
    for path in sorted(directory.glob(where.bars_glob())):
        relative = path.relative_to(directory).as_posix()
        if relative in listed or not path.is_file() or path.is_symlink():
            continue
        try:
            parquet = pq.ParquetFile(path, page_checksum_verification=True)
            if not any(parquet.schema_arrow.equals(v, check_metadata=False) for v in BAR_SCHEMAS):
                report.ignored.append(f"{relative}: not an rtcap bars file (left alone)")
                continue
            table = bars_v2(parquet.read())
        except (OSError, pa.ArrowException) as exc:
            report.ignored.append(f"{relative}: unreadable ({exc}) (left alone)")
            continue
        if not table.num_rows or cover.covered(table, "closed_seq").num_rows != table.num_rows:
            report.ignored.append(f"{relative}: closed by rows not on the tape (left alone)")
            continue
        first, last = (v.as_py() for v in pc.min_max(table.column("closed_seq")).values())
        sessions = manifest.setdefault("sessions", [])
        session = _session_of(sessions, first)
        if session is None:
            session = {"number": len(sessions) + 1, "first_seq": 0, "last_seq": None}
            sessions.append(session)
        if not (session.get("live_bars") or {}).get("timeframes"):
            found = set(table.column("timeframe").to_pylist())
            timeframes = sorted(found, key=lambda label: parse_timeframe(label).seconds)
            session["live_bars"] = {"timeframes": timeframes, "files": []}
        entry = {
            "path": relative,
            "rows": table.num_rows,
            "sha256": sha256_file(path),
            "first_seq": first,
            "last_seq": last,
        }
        add_bar_file(directory, manifest, session, entry)
        report.orphans_adopted.append(relative)


def _inspect_part(directory: Path, part: Path) -> tuple[dict | None, pa.Table | None, str]:
    """A manifest entry for an unlisted segment file, if it is rtcap's own and whole."""
    try:
        parquet = pq.ParquetFile(part, page_checksum_verification=True)
        metadata = parquet.metadata.metadata or {}
        if b"rtcap.segment" not in metadata or not any(
            parquet.schema_arrow.equals(version, check_metadata=False) for version in FRAME_SCHEMAS
        ):
            return None, None, "not an rtcap segment"
        table = frames_v2(parquet.read())
    except (OSError, pa.ArrowException) as exc:
        return None, None, f"unreadable ({str(exc).splitlines()[0] if str(exc) else exc!r})"
    if not table.num_rows:
        return None, None, "empty"
    seqs = table.column("seq")
    recv = table.column("recv_ns").cast(pa.int64())
    first, last = (v.as_py() for v in pc.min_max(seqs).values())
    if str(first).encode() != metadata.get(b"rtcap.first_seq") or str(last).encode() != (
        metadata.get(b"rtcap.last_seq")
    ):
        return None, None, "its seq range does not match its own metadata"
    return (
        {
            "number": int(metadata[b"rtcap.segment"]),
            "rows": table.num_rows,
            "payload_bytes": payload_bytes(table),
            "first_seq": first,
            "last_seq": last,
            "first_ns": pc.min(recv).as_py(),
            "last_ns": pc.max(recv).as_py(),
            "feeds": sorted(segment_feeds(table)),
            "files": [
                {
                    "path": part.relative_to(directory).as_posix(),
                    "rows": table.num_rows,
                    "bytes": part.stat().st_size,
                    "sha256": sha256_file(part),
                    "first_seq": first,
                    "last_seq": last,
                }
            ],
        },
        table,
        "",
    )


def _seal_journal(
    directory: Path,
    where: Placement,
    manifest: dict,
    cover: SeqCover,
    journal: Path,
    seal_level: int,
    report: RecoveryReport,
) -> None:
    report.journals += 1
    foreign = _foreign_rows(directory, manifest, cover, journal)
    if foreign:
        report.problems.append(
            f"{journal.relative_to(directory).as_posix()}: {foreign:,} of its rows carry seq "
            "numbers this capture sealed with other content: it is not this capture's own "
            "journal, so it was left untouched (move it away, then run recover again)"
        )
        report.ignored.append(journal.relative_to(directory).as_posix())
        return
    reader = JournalReader(journal, FRAME_SCHEMA)
    sealed_before = [last for _, last in cover.ranges]
    seen = {"rows": 0, "kept": 0, "seqs": []}

    def keep(table: pa.Table) -> pa.Table:
        seen["rows"] += table.num_rows
        seqs = table.column("seq")
        seen["seqs"].append(tuple(v.as_py() for v in pc.min_max(seqs).values()))
        fresh = cover.uncovered(table)
        seen["kept"] += fresh.num_rows
        _note_rows(manifest, fresh)
        return fresh

    entry = seal_segment(
        directory, journal_number(journal), reader, level=seal_level, keep=keep, placement=where
    )
    report.already_sealed += seen["rows"] - seen["kept"]
    if entry is not None:
        add_segment(manifest, entry)
        for file in entry["files"]:
            cover.add(file["first_seq"], file["last_seq"])
        report.frames_recovered += entry["rows"]
        report.segments_sealed.append(entry["number"])
    if reader.damage:
        lost = _lost_seqs(seen["seqs"], sealed_before)
        manifest["damage"].append(
            {
                "journal": journal.name,
                "problem": "; ".join(map(str, reader.damage)),
                "lost_seq_ranges": lost,
                "recovered_ns": time.time_ns(),
            }
        )
        report.frames_lost += sum(b - a + 1 for a, b in lost)
        kept = keep_damaged(directory, journal)
        report.damaged_kept.append(kept.relative_to(directory).as_posix())
        report.problems.append(
            f"{journal.name}: {len(reader.damage)} damaged stretch(es) "
            f"({'; '.join(map(str, reader.damage))}); kept the {reader.rows} frames of "
            f"{reader.blocks} intact blocks, lost seq {_ranges_text(lost) or 'none known'}"
        )
    else:
        journal.unlink()


COMPARED = ("seq", "recv_ns", "kind", "payload")  # what makes a row this capture's row


def _foreign_rows(directory: Path, manifest: dict, cover: SeqCover, journal: Path) -> int:
    """How many journal rows whose seq is already sealed differ from the sealed row: a row is
    proven sealed by its content (receive time, kind and bytes), never by its seq alone."""
    foreign = 0
    for table in JournalReader(journal, FRAME_SCHEMA):
        covered = cover.covered(table, "seq")
        if not covered.num_rows:
            continue
        mine = _compared(covered)
        theirs = _compared(_sealed_rows(directory, manifest, covered.column("seq")))
        if mine.equals(theirs):  # the usual case: a journal sealed before the crash
            continue
        by_seq = {row["seq"]: row for row in theirs.to_pylist()}
        foreign += sum(by_seq.get(row["seq"]) != row for row in mine.to_pylist())
    return foreign


def _compared(table: pa.Table) -> pa.Table:
    table = table.select(COMPARED).sort_by("seq")
    kind = table.schema.get_field_index("kind")
    return table.set_column(kind, "kind", pc.cast(table.column(kind), pa.string())).combine_chunks()


def _sealed_rows(directory: Path, manifest: dict, seqs: pa.ChunkedArray) -> pa.Table:
    """The sealed rows (as ``frames/2``) whose seq is in ``seqs``."""
    low, high = (v.as_py() for v in pc.min_max(seqs).values())
    wanted = seqs.combine_chunks()
    tables = []
    for entry in segment_files(manifest):
        if entry["first_seq"] <= high and low <= entry["last_seq"]:
            table = frames_v2(read_table(directory, entry))
            tables.append(table.filter(pc.is_in(table.column("seq"), value_set=wanted)))
    return pa.concat_tables(tables) if tables else FRAME_SCHEMA.empty_table()


def _lost_seqs(blocks: list[tuple[int, int]], sealed_lasts: list[int]) -> list[list[int]]:
    """Seq ranges that damage swallowed: between intact blocks (a journal is gap-free in seq),
    and before the first one when a sealed segment ends short of it."""
    lost = []
    if blocks:
        before = [last for last in sealed_lasts if last < blocks[0][0]]
        if before and blocks[0][0] > max(before) + 1:
            lost.append([max(before) + 1, blocks[0][0] - 1])
    for (_, previous_last), (next_first, _) in itertools.pairwise(blocks):
        if next_first > previous_last + 1:
            lost.append([previous_last + 1, next_first - 1])
    return lost


def _ranges_text(ranges: list[list[int]]) -> str:
    return ", ".join(f"{a}–{b}" if a != b else str(a) for a, b in ranges)


def _note_rows(manifest: dict, table: pa.Table) -> None:
    """Fold recovered lifecycle rows into connections and gaps (idempotently)."""
    kinds = table.column("kind").cast(pa.string())
    rows = table.filter(pc.is_in(kinds, pa.array(sorted(manifests.NOTED_KINDS))))
    if not rows.num_rows:
        return
    rows = rows.select(["seq", "recv_ns", "conn", "stream", "kind", "payload"])
    rows = rows.cast(
        pa.schema(
            [
                ("seq", pa.int64()),
                ("recv_ns", pa.int64()),
                ("conn", pa.int32()),
                ("stream", pa.string()),
                ("kind", pa.string()),
                ("payload", pa.binary()),
            ]
        )
    )
    for row in rows.to_pylist():
        manifests.note_lifecycle(
            manifest,
            row["kind"],
            row["stream"],
            row["conn"],
            row["seq"],
            row["recv_ns"],
            row["payload"],
        )


def _seal_bar_journal(
    directory: Path,
    where: Placement,
    manifest: dict,
    cover: SeqCover,
    journal: Path,
    report: RecoveryReport,
):
    """Seal the live bars whose closing rows are on the tape. A recorder journals a block's
    bars just before its frames, so a crash between the two writes leaves bars closed by rows
    that were never journaled: those are dropped (and counted), and the live bars stay
    exactly the ones a replay of the recovered tape closes."""
    reader = JournalReader(journal, BAR_SCHEMA)
    listed = {
        f["path"] if isinstance(f, dict) else f
        for f in (manifest.get("live_bars") or {}).get("files", [])
    }
    number = journal_number(journal)
    if any(_bars_number(path) == number for path in listed):
        journal.unlink()  # sealed before the crash; the journal was all that was left
        return
    for bars in write_bars_files(directory, number, _on_tape(reader, cover, report), where):
        sessions = manifest.get("sessions") or []
        session = _session_of(sessions, bars["first_seq"])
        if session is None:
            session = {"number": 1, "first_seq": 0, "last_seq": None, "live_bars": None}
            sessions.append(session)
            manifest["sessions"] = sessions
        add_bar_file(directory, manifest, session, bars)
        report.bars_recovered += bars["rows"]
    if reader.damage:
        report.problems.append(f"{journal.name}: {'; '.join(map(str, reader.damage))}")
        kept = keep_damaged(directory, journal)
        report.damaged_kept.append(kept.relative_to(directory).as_posix())
    else:
        journal.unlink()


def _bars_number(path: str) -> int | None:
    """The segment number in a live-bars file's name."""
    match = BARS_NAME.match(Path(path).name)
    return int(match.group(1)) if match else None


def _session_of(sessions: list[dict], seq: int) -> dict | None:
    candidates = [s for s in sessions if (s.get("first_seq") or 0) <= seq]
    return candidates[-1] if candidates else None


def _on_tape(
    tables: Iterable[pa.Table], cover: SeqCover, report: RecoveryReport
) -> Iterator[pa.Table]:
    """The rows of bar tables whose ``closed_seq`` a sealed frames file holds."""
    for table in tables:
        kept = cover.covered(table, "closed_seq")
        report.bars_dropped += table.num_rows - kept.num_rows
        yield kept
