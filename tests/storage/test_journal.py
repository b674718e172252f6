import random

import pytest
from rtcap.storage.journal import BLOCK_HEADER, JournalWriter, read_journal
from rtcap.storage.schema import FrameColumns

from rtcap.models import Frame


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


def test_a_flipped_bit_is_caught_by_the_checksum_and_earlier_blocks_survive(tmp_path):
    frames = sample_frames()
    path = tmp_path / "segment-000001.rtj"
    write(path, frames)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    scan = read_journal(path)
    assert "checksum mismatch" in scan.problem
    assert 0 < len(scan.frames) < len(frames)
    assert scan.frames == frames[: len(scan.frames)]


def test_fsync_policy_is_validated(tmp_path):
    with pytest.raises(ValueError, match="fsync policy"):
        JournalWriter(tmp_path / "x.rtj", fsync="sometimes")
