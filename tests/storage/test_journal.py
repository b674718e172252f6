import errno
import random

import pytest
from helpers import file_size_limit

from rtcap.models import Frame
from rtcap.storage.journal import BLOCK_HEADER, JournalWriter, read_journal
from rtcap.storage.schema import FrameColumns


def sample_frames(count=300):
    rng = random.Random(5)
    kinds = ["text", "binary", "sent", "open", "close", "gap", "error", "clock"]
    frames = []
    for seq in range(count):
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
        frames.append(
            Frame(
                seq,
                1_700_000_000_000_000_000 + seq * 1000,
                seq * 7,
                seq // 50,
                "märket" if seq % 2 else "user",
                kinds[seq % 8],
                payload,
                None if seq % 3 else "GatewayTrade",
                None if seq % 5 else "CON.F.US.MNQ.Z25",
                None if seq % 4 else -seq,
            )
        )
    return frames


def write(path, frames, per_block=37):
    journal = JournalWriter(path, fsync="never")
    for start in range(0, len(frames), per_block):
        journal.write(FrameColumns.of(frames[start : start + per_block]).to_table(), 0.0)
    journal.close()


def test_blocks_round_trip_every_field_including_nulls_and_binary(tmp_path):
    frames = sample_frames()
    write(tmp_path / "j.rtj", frames)
    scan = read_journal(tmp_path / "j.rtj")
    assert scan.problem is None and scan.blocks == 9
    assert scan.frames == frames


@pytest.mark.parametrize("codec", ["zstd", None])
def test_journals_with_other_buffer_codecs_read_the_same(tmp_path, monkeypatch, codec):
    """Arrow names the buffer codec in every batch: a journal written with another codec (zstd,
    as journals were before lz4, or none) reads row for row like an lz4 one."""
    import pyarrow as pa

    from rtcap.storage import journal

    monkeypatch.setattr(journal, "_IPC_OPTIONS", pa.ipc.IpcWriteOptions(compression=codec))
    frames = sample_frames()
    write(tmp_path / "old.rtj", frames)
    monkeypatch.undo()
    write(tmp_path / "new.rtj", frames)
    old, new = read_journal(tmp_path / "old.rtj"), read_journal(tmp_path / "new.rtj")
    assert old.problem is None and new.problem is None
    assert old.frames == new.frames == frames
    assert (tmp_path / "old.rtj").read_bytes() != (tmp_path / "new.rtj").read_bytes()


def test_a_torn_tail_loses_only_the_incomplete_block(tmp_path):
    frames = sample_frames()
    path = tmp_path / "segment-000001.rtj"
    write(path, frames)
    data = path.read_bytes()
    ends, offset = [], 0
    while offset < len(data):  # block boundaries of the intact file
        offset += BLOCK_HEADER.size + BLOCK_HEADER.unpack_from(data, offset)[1]
        ends.append(offset)
    rng = random.Random(1)
    for _ in range(40):
        cut = rng.randrange(len(data))
        path.write_bytes(data[:cut])
        scan = read_journal(path)
        complete_blocks = sum(end <= cut for end in ends)
        assert scan.frames == frames[: min(len(frames), 37 * complete_blocks)]
        assert scan.problem is None if cut in (0, *ends) else "torn" in scan.problem


def block_spans(data):
    spans, offset = [], 0
    while offset < len(data):
        end = offset + BLOCK_HEADER.size + BLOCK_HEADER.unpack_from(data, offset)[1]
        spans.append((offset, end))
        offset = end
    return spans


def test_a_flipped_bit_costs_only_its_own_block(tmp_path):
    frames = sample_frames()
    path = tmp_path / "segment-000001.rtj"
    write(path, frames)
    intact = path.read_bytes()
    spans = block_spans(intact)
    rng = random.Random(3)
    for _ in range(60):
        data = bytearray(intact)
        position = rng.randrange(len(data))
        data[position] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(data))
        scan = read_journal(path)
        hit = next(i for i, (a, b) in enumerate(spans) if a <= position < b)
        expected = frames[: 37 * hit] + frames[37 * (hit + 1) :]
        assert scan.frames == expected, position
        assert scan.blocks == len(spans) - 1
        assert len(scan.damage) == 1 and scan.damage[0].start == spans[hit][0]
        assert scan.damage[0].end == spans[hit][1]


def test_damage_in_several_blocks_and_garbage_between_them_is_skipped(tmp_path):
    frames = sample_frames()
    path = tmp_path / "segment-000001.rtj"
    write(path, frames)
    data = bytearray(path.read_bytes())
    spans = block_spans(bytes(data))
    data[spans[1][0]] ^= 0xFF  # magic of block 1
    data[spans[4][0] + 5] ^= 0x01  # size field of block 4
    data[spans[6][1] - 1] ^= 0x80  # last body byte of block 6
    garbage = b"RTJ2" + bytes(range(200))  # looks like a block start, is not one
    path.write_bytes(bytes(data[: spans[3][0]]) + garbage + bytes(data[spans[3][0] :]))
    scan = read_journal(path)
    lost = {1, 4, 6}
    expected = [f for i, f in enumerate(frames) if i // 37 not in lost]
    assert scan.frames == expected
    assert len(scan.damage) == 4  # three blocks and the garbage


def test_fsync_policy_is_validated(tmp_path):
    with pytest.raises(ValueError, match="fsync policy"):
        JournalWriter(tmp_path / "x.rtj", fsync="sometimes")


def test_a_failed_write_leaves_no_torn_bytes_and_later_blocks_follow_the_last_whole_one(tmp_path):
    frames = sample_frames()
    path = tmp_path / "j.rtj"
    journal = JournalWriter(path, fsync="always")
    journal.write(FrameColumns.of(frames[:100]).to_table(), 0.0)
    whole = path.stat().st_size
    with file_size_limit(whole + 500), pytest.raises(OSError) as failed:
        journal.write(FrameColumns.of(frames[100:200]).to_table(), 0.0)
    assert failed.value.errno == errno.EFBIG
    assert path.stat().st_size == whole  # the part that got in was cut off again
    assert (journal.rows, journal.written_bytes) == (100, whole)
    journal.write(FrameColumns.of(frames[100:]).to_table(), 0.0)  # space again: the retry
    journal.close()
    scan = read_journal(path)
    assert scan.problem is None and scan.blocks == 2
    assert scan.frames == frames
