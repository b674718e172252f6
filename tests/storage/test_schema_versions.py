"""The portable ``frames/2`` schema, and captures written before it (``frames/1``): every
command reads both alike, recovery seals an old journal as frames/2 beside old segments, and
``rtcap migrate`` rewrites old files losslessly."""

import re
import shutil

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from click.testing import CliRunner
from helpers import as_v1, downgrade, write_capture

from rtcap.cli import main
from rtcap.simulator import MarketSimulator
from rtcap.storage.integrity import open_capture, read_frames
from rtcap.storage.journal import encode_block
from rtcap.storage.migrate import frames_digest
from rtcap.storage.schema import (
    BAR_SCHEMA,
    FRAME_SCHEMA,
    FrameColumns,
)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def make(tmp_path, name="v2", seconds=120):
    frames = list(MarketSimulator(5, ("MNQ", "ES"), rate=120).frames(duration_s=seconds))
    path = tmp_path / name
    write_capture(path, frames, segment_max_bytes=60_000).close()
    return path


def schema_of(capture):
    manifest = open_capture(capture)
    return {
        str(pq.read_schema(capture / f["path"]).metadata.get(b"rtcap.schema", b"?").decode())
        for s in manifest["segments"]
        for f in s["files"]
    }


def test_new_segments_are_portable_signed_and_carry_micro_timestamps(tmp_path):
    capture = make(tmp_path, seconds=20)
    manifest = open_capture(capture)
    assert manifest["schema"] == "frames/2" and schema_of(capture) == {"frames/2"}
    table = pq.read_table(capture / manifest["segments"][0]["files"][0]["path"])
    assert table.schema.equals(FRAME_SCHEMA, check_metadata=False)
    for field in table.schema:  # nothing unsigned, no nanosecond timestamps
        assert not pa.types.is_unsigned_integer(field.type), field
        if pa.types.is_timestamp(field.type):
            assert field.type.unit == "us" and field.type.tz == "UTC", field
    recv, micros = table["recv_ns"].to_pylist(), table["recv_time"].cast(pa.int64()).to_pylist()
    assert all(m == r // 1000 for r, m in zip(recv, micros, strict=True))
    exch = table["exch_ns"].to_pylist()
    assert [None if e is None else e // 1000 for e in exch] == table["exch_time"].cast(
        pa.int64()
    ).to_pylist()


def test_frames_1_captures_read_alike_by_every_command_and_migrate_losslessly(tmp_path):
    fresh = make(tmp_path)
    old = tmp_path / "v1"
    shutil.copytree(fresh, old)
    downgrade(old)
    assert schema_of(old) == {"frames/1"}
    assert list(read_frames(old)) == list(read_frames(fresh))
    answers = {}
    for capture in (fresh, old):
        verify = run("verify", capture, "--speed", "40x")
        assert verify.exit_code == 0, verify.output
        query = (
            "select count(*), sum(seq), min(recv_ns), max(recv_time), sum(conn), "
            "count(exch_time) from frames"
        )
        sql = run("sql", capture, "-c", query, "--format", "csv")
        trades = run("sql", capture, "-c", "select count(*), sum(price * volume) from trades")
        replay = run("replay", capture, "--timeframes", "1min", "--format", "csv")
        info = run("info", capture)
        assert sql.exit_code == trades.exit_code == replay.exit_code == info.exit_code == 0
        hashes = re.findall(r"(?:bar|event|book) stream sha256 [0-9a-f]+", verify.output)
        answers[capture.name] = (hashes, sql.output, trades.output, replay.stdout)
    assert answers["v1"] == answers["v2"] and len(answers["v2"][0]) == 3

    before = frames_digest(
        [pq.read_table(old / f["path"]) for s in open_capture(old)["segments"] for f in s["files"]]
    )
    migrated = run("migrate", old)
    assert migrated.exit_code == 0, migrated.output
    assert re.search(r"migrated .* to frames/2: \d+ file\(s\) rewritten", migrated.output)
    assert schema_of(old) == {"frames/2"} and open_capture(old)["schema"] == "frames/2"
    assert f"content sha256 {before[:16]}" in migrated.output
    assert list(read_frames(old)) == list(read_frames(fresh))
    again = run("migrate", old)
    assert again.exit_code == 0 and "nothing to do" in again.output
    leftovers = [p.name for p in old.rglob("*.parquet")]
    assert len(leftovers) == sum(len(s["files"]) for s in open_capture(old)["segments"])
    verify = run("verify", old, "--speed", "40x")
    assert (
        re.findall(r"(?:bar|event|book) stream sha256 [0-9a-f]+", verify.output) == answers["v2"][0]
    )


def test_an_old_journal_is_recovered_as_frames_2_beside_old_segments(tmp_path):
    frames = list(MarketSimulator(8, ("MNQ",), rate=100).frames(duration_s=60))
    fresh = tmp_path / "fresh"
    write_capture(fresh, frames).close()
    half = tmp_path / "mixed"
    write_capture(half, frames[: len(frames) // 2]).close()
    downgrade(half)
    rest = FrameColumns.of(frames[len(frames) // 2 :]).to_table()
    rest = rest.set_column(0, "seq", pa.array(range(len(frames) // 2, len(frames)), pa.int64()))
    journal = half / "journal"
    journal.mkdir(exist_ok=True)
    (journal / "segment-000099.rtj").write_bytes(encode_block(as_v1(rest)))
    manifest = orjson.loads((half / "manifest.json").read_bytes())
    manifest["status"] = "recording"
    (half / "manifest.json").write_bytes(orjson.dumps(manifest))
    recovered = run("recover", half)
    assert recovered.exit_code == 0, recovered.output
    assert f"{len(rest)} frames sealed" in recovered.output
    assert schema_of(half) == {"frames/1", "frames/2"}
    mine = [(f.seq, f.recv_ns, f.payload) for f in read_frames(half)]
    assert mine == [(f.seq, f.recv_ns, f.payload) for f in read_frames(fresh)]
    counts = [
        run("sql", c, "-c", "select count(*), count(distinct seq), sum(bytes) from frames").output
        for c in (half, fresh)
    ]
    assert counts[0] == counts[1]
    assert BAR_SCHEMA.field("closed_seq").type == pa.int64()
