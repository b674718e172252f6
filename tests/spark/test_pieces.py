"""Spark's work without Spark: the driver's plan (pieces of segment files, from manifests) and
the executors' functions (read a piece checking it, build bar parts with the kernel, merge
them), run here in order. A feed split across recorders in time, segments and row groups gives
exactly ``rtcap export ROOT``'s bars, each recorder's last partial bar included."""

import itertools
import shutil
from pathlib import Path

import orjson
import pyarrow as pa
import pytest
from helpers import bar_rows, exported_bars, write_capture

from rtcap.analysis import sparkplan, sparktasks
from rtcap.pipeline import Pipeline
from rtcap.simulator import MarketSimulator
from rtcap.storage.errors import CaptureError
from rtcap.storage.integrity import read_frames

TIMEFRAMES = ["1min", "5min"]


def split_feed(root, *, pieces=3, seconds=420, seed=31):
    """One simulated feed recorded by ``pieces`` recorders one after the other (the same
    venue), each capture in small segments of small row groups."""
    frames = list(MarketSimulator(seed, ("MNQ", "ES"), rate=120).frames(duration_s=seconds))
    size = len(frames) // pieces
    source = {"kind": "sim", "seed": seed, "rate": 120}
    for index in range(pieces):
        part = frames[index * size : None if index == pieces - 1 else (index + 1) * size]
        write_capture(root / f"rec-{index}", part, source=source, segment_max_bytes=1_000_000,
                      row_group_rows=2_000).close()  # fmt: skip
    return frames


def job(root, **options):
    """What bars_job does on a cluster, done here: every piece's parts, then the merge."""
    plan = sparkplan.plan(root, across_venues=True, **options)
    parts = pa.concat_tables(
        sparktasks.bar_parts(piece, sparktasks.read_piece(piece), TIMEFRAMES)
        for piece in plan.pieces
    )
    grace = Pipeline(None, TIMEFRAMES).close_grace_ns
    keys = sorted(set(zip(parts.column("instrument").to_pylist(),
                          parts.column("timeframe").to_pylist(), strict=True)))  # fmt: skip
    merged = []
    for instrument, timeframe in keys:
        group = parts.filter(
            pa.compute.and_(
                pa.compute.equal(parts.column("instrument"), instrument),
                pa.compute.equal(parts.column("timeframe"), timeframe),
            )
        )
        merged += sparktasks.merge(group, plan.final_ns, grace).to_pylist()
    return plan, merged


def test_a_feed_split_across_recorders_segments_and_row_groups_gives_exports_bars(tmp_path):
    root = tmp_path / "root"
    frames = split_feed(root)
    plan, merged = job(root, piece_rows=2_500)
    files = {p["uri"] for p in plan.pieces}
    assert len(plan.captures) == 3 and len(files) >= 6 and len(plan.pieces) > len(files)
    assert [p["order"] for p in plan.pieces] == list(range(len(plan.pieces)))
    assert plan.final_ns == max(f.recv_ns for f in frames)
    local = exported_bars(root, tmp_path / "export", TIMEFRAMES)
    assert bar_rows(merged) == local and len(local) >= 12
    # Each recorder alone drops its last partial bar; the merge makes the boundary bars whole.
    alone = set(itertools.chain.from_iterable(
        exported_bars(root / f"rec-{i}", tmp_path / f"alone-{i}", TIMEFRAMES) for i in range(3)))  # fmt: skip
    assert set(local) - alone, "no bar crossed a recorder boundary: the test proves nothing"
    # One piece per file (no row-group split) gives the same bars.
    assert bar_rows(job(root)[1]) == local


def test_a_damaged_file_fails_its_task_with_one_line_naming_it(tmp_path):
    root = tmp_path / "root"
    split_feed(root, pieces=1, seconds=60)
    plan = sparkplan.plan(root)
    first = plan.pieces[0]
    path = Path(first["uri"])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(sparktasks.PieceError, match=r"^rtcap: .*part-\d+\.parquet \(capture "
                       r"rec-0\) is damaged: sha256 \w+…, the manifest says"):  # fmt: skip
        sparktasks.read_piece(first)
    assert "is damaged" in sparktasks_explained(first)


def sparktasks_explained(piece):
    from rtcap.analysis import spark as spark_module  # needs pyspark only for sessions

    try:
        sparktasks.read_piece(piece)
    except sparktasks.PieceError as exc:
        # as Spark hands it to the driver: the Python trace inside a JVM message
        wrapped = f"py4j.protocol.Py4JJavaError: …\n  File …\nPieceError: {exc}\n\tat org…"
        return spark_module.explain(RuntimeError(wrapped))
    raise AssertionError("the damaged piece was read")


def test_a_store_root_is_planned_from_manifests_and_read_by_the_tasks(tmp_path):
    root = tmp_path / "root"
    split_feed(root, pieces=2, seconds=120)
    local_plan, local_bars = job(root)
    remote_plan, remote_bars = job(f"file://{root}")
    assert remote_bars == local_bars != []
    assert [p["uri"] for p in remote_plan.pieces] == [p["uri"] for p in local_plan.pieces]
    both = sparkplan.plan(root, recorders=["rec-1"])
    assert [c.label for c in both.captures] == ["rec-1"]
    shutil.copytree(root / "rec-0", root / "rec-0-again")
    with pytest.raises(CaptureError, match="rec-0 and rec-0-again recorded the same feed"):
        sparkplan.plan(root)


def test_old_frames_1_captures_read_in_the_tasks(tmp_path):
    from helpers import downgrade

    frames = list(MarketSimulator(2, ("MNQ",)).frames(duration_s=20))
    write_capture(tmp_path / "old", frames).close()
    downgrade(tmp_path / "old")
    plan = sparkplan.plan(tmp_path / "old")
    table = pa.concat_tables(sparktasks.read_piece(p) for p in plan.pieces)
    assert table.column("payload").to_pylist() == [f.payload for f in read_frames(tmp_path / "old")]
    assert orjson.loads(plan.pieces[0]["entry"])["rows"] == len(frames)
