import asyncio
import time
from pathlib import Path

import helpers
import orjson
import pyarrow.parquet as pq
import pytest
from helpers import file_size_limit

import rtcap.storage.sealer as sealer_module
from rtcap.events import EventType
from rtcap.models import Bar
from rtcap.pipeline import Pipeline
from rtcap.replay.verify import live_bar_lines, replay_digest
from rtcap.simulator import MarketSimulator
from rtcap.storage.errors import CaptureBusy, CaptureError, RecoveryNeeded
from rtcap.storage.integrity import open_capture, read_frames, read_live_bars
from rtcap.storage.recovery import recover
from rtcap.storage.schema import FRAME_SCHEMA, FrameColumns
from rtcap.storage.segments import PART_TMP_NAME, sha256_file
from rtcap.storage.writer import CaptureWriter

DAY_NS = 86_400 * 10**9


def sim_frames(count=4000, start_ns=None):
    options = {} if start_ns is None else {"start_ns": start_ns}
    return list(MarketSimulator(3, ["MNQ", "ES"], **options).frames(max_frames=count))


def write_capture(path, frames, **options):
    return helpers.write_capture(path, frames, flush_every=250, **options)


def test_segments_rotate_seal_and_read_back_in_seq_order(tmp_path):
    frames = sim_frames()
    writer = write_capture(tmp_path / "cap", frames, segment_max_bytes=150_000)
    writer.close()
    manifest = open_capture(tmp_path / "cap")
    assert manifest["status"] == "closed" and manifest["frames"] == len(frames)
    assert len(manifest["segments"]) >= 3
    assert (manifest["first_seq"], manifest["last_seq"]) == (0, len(frames) - 1)
    back = list(read_frames(tmp_path / "cap"))
    assert [f.seq for f in back] == list(range(len(frames)))
    assert [f.payload for f in back] == [f.payload for f in frames]
    assert [(f.recv_ns, f.exch_ns, f.target, f.symbol) for f in back] == [
        (f.recv_ns, f.exch_ns, f.target, f.symbol) for f in frames
    ]
    for segment in manifest["segments"]:
        for file in segment["files"]:
            path = tmp_path / "cap" / file["path"]
            assert file["sha256"] == sha256_file(path) and file["bytes"] == path.stat().st_size
            meta = pq.ParquetFile(path)
            assert meta.metadata.row_group(0).column(0).compression == "ZSTD"
            assert meta.metadata.num_rows == file["rows"]
    assert not list((tmp_path / "cap").rglob("*.rtj"))


def test_segments_are_partitioned_by_utc_date(tmp_path):
    start = 1_756_857_500_000_000_000  # 2025-09-02T23:58:20Z: the capture spans midnight
    frames = list(MarketSimulator(3, ["MNQ"], start_ns=start, rate=20).frames(duration_s=200))
    write_capture(tmp_path / "cap", frames).close()
    dates = sorted(p.parent.name for p in (tmp_path / "cap" / "frames").rglob("*.parquet"))
    assert dates == ["date=2025-09-02", "date=2025-09-03"]
    assert len(list(read_frames(tmp_path / "cap"))) == len(frames)


def test_second_writer_is_refused_while_the_first_records(tmp_path):
    writer = write_capture(tmp_path / "cap", sim_frames(10))
    with pytest.raises(CaptureBusy, match="in use by a recorder"):
        CaptureWriter(tmp_path / "cap", source={}).open()
    writer.close()


def test_unsealed_journal_blocks_reading_and_says_how_to_recover(tmp_path):
    writer = write_capture(tmp_path / "cap", sim_frames(600))
    writer.flush()
    helpers.crash(writer)  # simulate a crashed recorder: journal left behind, lock gone
    with pytest.raises(RecoveryNeeded, match="rtcap recover"):
        open_capture(tmp_path / "cap")
    with pytest.raises(RecoveryNeeded, match="rtcap recover"):
        CaptureWriter(tmp_path / "cap", source={}).open()
    report = recover(tmp_path / "cap")
    assert report.frames_recovered == 600 and report.problems == []
    assert [f.seq for f in read_frames(tmp_path / "cap")] == list(range(600))


def test_recover_cuts_a_torn_tail_keeps_sealed_segments_and_adopts_orphans(tmp_path):
    frames = sim_frames(3100)  # the last 100 after the last rotation: the open journal has rows
    path = tmp_path / "cap"
    writer = write_capture(path, frames, segment_max_bytes=200_000)
    writer.flush()
    helpers.crash(writer)
    sealed_before = {
        f["path"]: f["sha256"] for s in open_capture_raw(path)["segments"] for f in s["files"]
    }
    journal = next((path / "journal").glob("segment-*.rtj"))
    assert journal.stat().st_size > 7
    journal.write_bytes(journal.read_bytes()[:-7])  # torn last block
    (path / "frames" / "date=2025-09-02" / ".part-000099.parquet.tmp").write_bytes(b"PAR1junk")
    report = recover(path)
    assert report.problems and "torn" in report.problems[0]
    # the planted orphan, and the open segment's seal in progress if the sealer had begun it
    assert "frames/date=2025-09-02/.part-000099.parquet.tmp" in report.temporaries_removed
    assert all(PART_TMP_NAME.match(Path(p).name) for p in report.temporaries_removed)
    assert not list(path.rglob("*.tmp"))
    manifest = open_capture(path)
    for file in (f for s in manifest["segments"] for f in s["files"]):
        if file["path"] in sealed_before:
            assert sha256_file(path / file["path"]) == sealed_before[file["path"]]
    back = [f.seq for f in read_frames(path)]
    assert back == list(range(len(back))) and len(frames) - len(back) <= 250


def open_capture_raw(path):
    return orjson.loads((path / "manifest.json").read_bytes())


def test_recover_adopts_a_segment_written_before_the_manifest_update(tmp_path):
    path = tmp_path / "cap"
    write_capture(path, sim_frames(500)).close()
    manifest = open_capture_raw(path)
    lost = manifest["segments"].pop()
    manifest["frames"] = 0
    manifest["last_seq"] = manifest["first_seq"] = None
    (path / "manifest.json").write_bytes(orjson.dumps(manifest))
    report = recover(path)
    assert report.orphans_adopted == [lost["files"][0]["path"]]
    assert open_capture(path)["frames"] == 500


def test_live_bars_are_stored_with_a_stream_hash(tmp_path):
    writer = write_capture(tmp_path / "cap", sim_frames(50))
    writer.set_bar_timeframes(["1min"])
    writer.add_bar("MNQ", Bar("1min", 0, 60 * 10**9, 1.0, 2.0, 0.5, 1.5, 10, 3), 42)
    writer.close()
    bars = read_live_bars(tmp_path / "cap")
    assert bars.num_rows == 1 and bars.column("closed_seq").to_pylist() == [42]
    entry = open_capture(tmp_path / "cap")["live_bars"]
    assert entry["count"] == 1 and len(entry["stream_hash"]) == 64


def test_unwritable_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(CaptureError, match="choose a writable location"):
        CaptureWriter(blocker / "cap", source={}).open()


def test_missing_capture_and_non_capture_are_clear_errors(tmp_path):
    with pytest.raises(CaptureError, match="no capture at"):
        open_capture(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CaptureError, match="not an rtcap capture"):
        open_capture(tmp_path / "empty")
    with pytest.raises(CaptureError, match="not a capture"):
        recover(tmp_path / "empty")


def test_a_block_the_journal_could_not_write_goes_first_once_it_can(tmp_path):
    """A failed journal write (here EFBIG, as a full disk gives ENOSPC) keeps its rows; the
    next write puts them down before anything newer, so the tape has no hole in its middle."""
    frames = sim_frames(3000)
    writer = CaptureWriter(tmp_path / "cap", source={"kind": "test"}, fsync="always")
    writer.open()
    for frame in frames[:1000]:
        writer.append(frame)
    writer.flush()
    journal = writer.journal.path
    whole = journal.stat().st_size
    for frame in frames[1000:2000]:
        writer.append(frame)
    with file_size_limit(whole + 500), pytest.raises(OSError):
        writer.flush()
    assert journal.stat().st_size == whole
    for frame in frames[2000:]:
        writer.append(frame)
    writer.close()
    manifest = open_capture(tmp_path / "cap")
    assert manifest["status"] == "closed" and not manifest["damage"]
    back = list(read_frames(tmp_path / "cap"))
    assert [f.seq for f in back] == list(range(len(frames)))
    assert [f.payload for f in back] == [f.payload for f in frames]


def test_bars_whose_closing_rows_never_reached_the_journal_are_dropped_by_recovery(tmp_path):
    """A block's live bars are journaled just before its frames. When the frames write fails
    and the recorder dies there, recovery keeps exactly the live bars the recovered tape
    closes, so verify still agrees (the other order lost bars a replay then closed)."""
    path = tmp_path / "cap"
    frames = sim_frames(4000)
    writer = CaptureWriter(path, source={"kind": "test"}, fsync="always")
    writer.open()
    writer.set_bar_timeframes(["1sec"])
    pipeline = Pipeline(None, ["1sec"], codec="auto")

    def record(chunk):  # as the recorder's sink does
        for frame in chunk:
            writer.append(frame)
            for event in pipeline.feed(frame):
                if event.type is EventType.BAR_CLOSED:
                    writer.add_bar(event.instrument, event.data["bar"], frame.seq)

    record(frames[:2000])
    writer.flush()
    bars_journal = writer.segment.bars_path
    bars_before = bars_journal.stat().st_size
    whole = writer.journal.path.stat().st_size
    record(frames[2000:])
    unjournaled = len(writer._bars)
    assert unjournaled > 0  # the failing block closes bars
    with file_size_limit(whole + 500), pytest.raises(OSError):
        writer.flush()
    assert writer.journal.path.stat().st_size == whole
    assert bars_journal.stat().st_size > bars_before  # its bars went down first
    helpers.crash(writer)  # the recorder dies here
    report = recover(path)
    assert report.frames_recovered == 2000
    assert report.bars_dropped == unjournaled
    live = live_bar_lines(path)
    replayed = asyncio.run(replay_digest(path, None, ["1sec"])).bars
    assert len(live) == report.bars_recovered > 0
    assert live == replayed


# --- the sealer's hand-off: blocks from memory, the rest read back from the journal ---------


@pytest.fixture
def read_back(monkeypatch):
    """The seqs of frame rows the writer's sealer reads back from a journal on disk."""
    seqs: list[int] = []

    class CountingReader(sealer_module.JournalReader):
        def __iter__(self):
            for table in super().__iter__():
                if self.schema is FRAME_SCHEMA:
                    seqs.extend(table.column("seq").to_pylist())
                yield table

    monkeypatch.setattr(sealer_module, "JournalReader", CountingReader)
    return seqs


def sealed_digests(path):
    return [f["sha256"] for s in open_capture(path)["segments"] for f in s["files"]]


def test_handed_blocks_seal_to_the_bytes_read_back_blocks_do(tmp_path, monkeypatch, read_back):
    frames = sim_frames(3000)
    write_capture(tmp_path / "handed", frames).close()
    assert read_back == []  # every block came from memory
    monkeypatch.setattr(sealer_module, "HANDOFF_MAX_BYTES", 0)
    write_capture(tmp_path / "read", frames).close()
    assert read_back == list(range(len(frames)))  # every block came from the journal
    assert sealed_digests(tmp_path / "handed") == sealed_digests(tmp_path / "read")
    back = list(read_frames(tmp_path / "handed"))
    assert [(f.seq, f.payload) for f in back] == [(i, f.payload) for i, f in enumerate(frames)]


def wait_until_sealer_is_level(writer):
    for _ in range(1000):
        tail = writer.sealer._tail
        if tail is not None and tail.offset == writer.journal.end and not writer.sealer._handed:
            return
        time.sleep(0.01)
    raise AssertionError("the sealer did not catch up with the journal in 10 s")


def test_blocks_the_sealer_was_not_handed_are_read_back_in_their_place(
    tmp_path, monkeypatch, read_back
):
    """While the sealer is busy, blocks wait for it in memory up to a bound; the ones past it
    are read back from the journal, between the handed ones, each row once and in seq order."""
    frames = sim_frames(1750)
    blocks = [frames[i : i + 250] for i in range(0, len(frames), 250)]
    sizes = [FrameColumns.of(block).to_table().nbytes for block in blocks]
    assert max(sizes) < sizes[0] + sizes[1]
    monkeypatch.setattr(sealer_module, "HANDOFF_MAX_BYTES", sizes[0] + sizes[1])
    writer = CaptureWriter(tmp_path / "cap", source={"kind": "test"}, fsync="never")
    writer.open()

    def journal(chunk):
        with writer.sealer._seal_lock:  # the sealer is busy meanwhile
            for block in chunk:
                for frame in block:
                    writer.append(frame)
                writer.flush()
        wait_until_sealer_is_level(writer)

    journal(blocks[:5])  # the first two wait in memory, the next three do not fit
    assert read_back == list(range(500, 1250))
    journal(blocks[5:])  # memory again: the sealer caught up
    writer.close()
    assert read_back == list(range(500, 1250))
    back = list(read_frames(tmp_path / "cap"))
    assert [(f.seq, f.payload) for f in back] == [(i, f.payload) for i, f in enumerate(frames)]
    assert not list((tmp_path / "cap" / "journal").glob("*.rtj"))


def test_rotated_segments_seal_from_memory_in_the_recorders_order(tmp_path, read_back):
    """As the recorder rotates: appends switch to the next segment, the closed one's journal
    is finished and its seal queued, while the next one's blocks keep coming. The closed
    segment's seal finishes what its tail began, and no block is read back from disk."""
    frames = sim_frames(3000)
    path = tmp_path / "cap"
    writer = CaptureWriter(path, source={"kind": "test"}, fsync="never", segment_max_bytes=200_000)
    writer.open()
    for frame in frames:
        writer.append(frame)
        if writer.pending >= 250:
            writer.flush()
        if writer.should_rotate():
            closed = writer.rotate()
            writer.finish_segment(closed)
            writer.seal_later(closed)
    writer.close()
    segments = open_capture(path)["segments"]
    assert len(segments) >= 3 and not writer.stats.seal_failures
    assert read_back == []
    back = list(read_frames(path))
    assert [(f.seq, f.payload) for f in back] == [(i, f.payload) for i, f in enumerate(frames)]


def test_the_first_journal_block_loads_nothing_new(tmp_path):
    """Everything the first journal write needs is loaded when the writer opens (pyarrow's
    first conversion loads pandas when it is installed, 0.2-0.3 s, which used to delay the first
    block past the flush interval: a kill then lost the first half second of a recording)."""
    import subprocess
    import sys

    script = f"""
import sys, time
from pathlib import Path
from rtcap.models import Frame
from rtcap.storage.writer import CaptureWriter
writer = CaptureWriter(Path({str(tmp_path / "cap")!r}), source={{}})
writer.open()
before = set(sys.modules)
writer.append(Frame(0, time.time_ns(), 0, 1, "market", "text", b'{{"a":1}}'))
writer.write_block(*writer.take_block())
print(sorted(set(sys.modules) - before))
writer.close()
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_rebuilt_manifest_lists_the_live_bars_again(tmp_path):
    """After ``recover`` rebuilds a damaged manifest, the live bars are listed under their
    session with their timeframes, so ``verify`` compares replay with them again."""
    from click.testing import CliRunner

    from rtcap.cli import main

    capture = tmp_path / "cap"
    runner = CliRunner()
    recorded = runner.invoke(
        main, ["record", str(capture), "--duration", "3s", "--bars", "1sec,2sec", "--quiet"]
    )
    assert recorded.exit_code == 0, recorded.output
    before = open_capture(capture)["live_bars"]
    (capture / "manifest.json").write_text("{ damaged")
    assert runner.invoke(main, ["recover", str(capture)]).exit_code == 0
    after = open_capture(capture)
    assert after["live_bars"]["count"] == before["count"] > 0
    assert after["live_bars"]["stream_hash"] == before["stream_hash"]
    assert after["sessions"][0]["live_bars"]["timeframes"] == ["1sec", "2sec"]
    verified = runner.invoke(main, ["verify", str(capture)])
    assert verified.exit_code == 0, verified.output
    assert f"the {before['count']} live bars" in verified.output


def test_a_failed_final_manifest_write_says_so_and_not_that_the_journal_failed(
    tmp_path, monkeypatch
):
    import errno

    import rtcap.storage.writer as writer_module

    writer = CaptureWriter(tmp_path / "cap", source={})
    writer.open()
    writer.append(helpers.Tape().trade("2025-09-02T10:00:00Z", 100.0, 1))
    writer.write_block(*writer.take_block())
    real_save = writer_module.manifests.save

    def failing_save(directory, manifest):
        if manifest.get("status") == "closed":
            raise OSError(errno.EIO, "Input/output error")
        real_save(directory, manifest)

    monkeypatch.setattr(writer_module.manifests, "save", failing_save)
    with pytest.raises(CaptureError) as failed:
        writer.close()
    message = str(failed.value)
    assert "could not write the manifest" in message and "journal" not in message
    assert "every row is sealed" in message and "rtcap recover" in message
    monkeypatch.setattr(writer_module.manifests, "save", real_save)
    recover(tmp_path / "cap")
    assert [f.seq for f in read_frames(tmp_path / "cap")] == [0]
