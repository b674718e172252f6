"""Following a capture that is still being recorded: the rows that reached its disk since the
last look, in ``seq`` order, whether they are still in the journal or already sealed.

A recorder writes one journal block per flush, rotates to the next segment's journal when one is
full, seals the full one and deletes its journal only once the manifest lists the sealed file.
So every row is always in a journal or a listed file (or both for a moment), and rows arrive
with consecutive ``seq``. Each :meth:`CaptureTail.poll` reads only what is new: journal blocks
past the offset it reached in each journal (a block still being written is read next time),
and listed files holding rows it has not delivered. It hands on the consecutive run after the
last ``seq`` delivered, so nothing is delivered twice or out of order.

Read only: it never takes the lock, recovers or writes anything.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from rtcap.lifecycle import payload_detail
from rtcap.storage import manifest as manifests
from rtcap.storage.errors import CaptureError
from rtcap.storage.integrity import journal_files, open_segment, read_table, segment_files
from rtcap.storage.journal import JournalReader
from rtcap.storage.schema import FRAME_SCHEMA, frame_columns, frames_v2


class CaptureTail:
    """New rows of the capture at ``path`` past ``after_seq``, as they reach its disk."""

    def __init__(self, path: str | Path, after_seq: int = -1) -> None:
        self.path = Path(path)
        self.delivered = after_seq
        self.finished = False  # the recording ended and everything it wrote was delivered
        self._offsets: dict[str, int] = {}

    def poll(self) -> pa.Table | None:
        """The rows after the last delivered, consecutive and in ``seq`` order (``None``: none
        yet; then :attr:`finished` says whether more can come)."""
        manifest = self._manifest()
        recording = manifest is None or manifest.get("status") == "recording"
        tables = self._journal_rows() + self._sealed_rows(manifest)
        table = pa.concat_tables(tables) if tables else None
        run = None if table is None else self._next_run(table, settle=not recording)
        if run is None and not recording and not journal_files(self.path):
            self.finished = True
        return run

    def _manifest(self) -> dict | None:
        try:
            return manifests.load(self.path)
        except CaptureError:
            return None  # not written yet, or being replaced: next time

    def _journal_rows(self) -> list[pa.Table]:
        found = []
        present = set()
        for journal in journal_files(self.path):
            present.add(journal.name)
            start = self._offsets.get(journal.name, 0)
            try:
                size = os.path.getsize(journal)
                reader = JournalReader(journal, FRAME_SCHEMA, start=start)
                found += [t.filter(pc.greater(t.column("seq"), self.delivered)) for t in reader]
            except FileNotFoundError:  # sealed and deleted meanwhile: its file is listed now
                continue
            offset = reader.offset
            if (
                reader.damage
                and reader.damage[-1].end >= size
                and "torn" in reader.damage[-1].reason
            ):
                offset = reader.damage[-1].start  # a block still being written: read it later
            self._offsets[journal.name] = offset
        for name in set(self._offsets) - present:
            del self._offsets[name]
        return [t for t in found if t.num_rows]

    def _sealed_rows(self, manifest: dict | None) -> list[pa.Table]:
        if manifest is None:
            return []
        found = []
        for entry in segment_files(manifest):
            if entry["last_seq"] > self.delivered:
                table = frames_v2(read_table(self.path, entry))
                found.append(table.filter(pc.greater(table.column("seq"), self.delivered)))
        return [t for t in found if t.num_rows]

    def _next_run(self, table: pa.Table, *, settle: bool) -> pa.Table | None:
        """The rows from ``delivered + 1`` on while ``seq`` runs on without a hole (a row seen
        both in a journal and in its sealed file counts once). Once the recording has ended
        (``settle``), a hole can no longer fill, so everything left is handed on."""
        table = table.sort_by("seq")
        seqs = table.column("seq").to_numpy()
        keep = [0] if len(seqs) else []
        keep += [i for i in range(1, len(seqs)) if seqs[i] != seqs[i - 1]]
        table = table.take(pa.array(keep, pa.int64()))
        seqs = table.column("seq").to_numpy()
        expected = self.delivered + 1
        end = 0
        while end < len(seqs) and (settle or seqs[end] == expected + end):
            end += 1
        if not end:
            return None
        self.delivered = int(seqs[end - 1])
        return table.slice(0, end)


def rolled_to(path: str | Path) -> Path | None:
    """The capture a closed capture's recording went on in (its last row is ``rolled``, naming
    it: rtcap.capture.roll), or ``None``. Reads only the last row group of the last file."""
    try:
        manifest = manifests.load(Path(path))
    except CaptureError:
        return None
    files = segment_files(manifest)
    if not files:
        return None
    _, parquet = open_segment(Path(path), files[-1])
    last = parquet.num_row_groups - 1
    table = frames_v2(parquet.read_row_group(last, columns=frame_columns(parquet.schema_arrow)))
    if not table.num_rows:
        return None
    last = table.sort_by("seq").slice(table.num_rows - 1).to_pylist()[0]
    if last["kind"] != "error":
        return None
    detail = payload_detail(last["payload"])
    target = detail.get("continues_in")
    if detail.get("event") != "rolled" or not isinstance(target, str):
        return None
    return Path(target)
