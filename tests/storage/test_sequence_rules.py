"""Sequence rules on real captures of every Binance venue: a clean stream has no sequence gap,
a dropped diff is exactly one, a snapshot starts a book and never makes a gap, and the
manifest notes each gap row in constant time (counts, not an ever-growing list)."""

import gzip
from pathlib import Path

import orjson
import pytest

from rtcap.models import DepthUpdate
from rtcap.sequence import SequenceChecker
from rtcap.storage.importer import import_lines
from rtcap.storage.integrity import open_capture, read_frames
from rtcap.storage.manifest import (
    LISTED_SEQUENCE_GAPS,
    gap_count,
    gap_summary,
    new_manifest,
    note_lifecycle,
)

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"
# the whole real recording beside the repository, else its slice in fixtures/
VENUES = {
    "spot": ("binance-spot/ethusdt_20240808.gz", "binance-spot/ethusdt_20240808_3min.gz"),
    "usdm": ("binance-usdm/ethusdt_20240808.gz", "binance-usdm/ethusdt_20240808_1min.gz"),
    "coinm": (
        "binance-coinm/ethusd_perp_20240808.gz",
        "binance-coinm/ethusd_perp_20240808_1min.gz",
    ),
}


def real(venue):
    whole, slice_ = VENUES[venue]
    path = SHARED_DATA / whole
    return path if path.exists() else ROOT / "fixtures" / slice_


def depth_gaps(capture):
    rows = [orjson.loads(f.payload) for f in read_frames(capture) if f.kind == "gap"]
    return [row for row in rows if row.get("kind") == "depth_update_id"]


@pytest.mark.parametrize("venue", sorted(VENUES))
def test_a_clean_real_stream_has_no_sequence_gap(venue, tmp_path):
    report = import_lines(real(venue), tmp_path / "c", "hftbacktest")
    manifest = open_capture(tmp_path / "c")
    assert report.frames > 7_000
    assert report.sequence_gaps == 0
    assert gap_count(manifest) == 0 and gap_summary(manifest) == ""
    assert depth_gaps(tmp_path / "c") == []


@pytest.mark.parametrize("venue", sorted(VENUES))
def test_one_dropped_diff_is_exactly_one_gap(venue, tmp_path):
    with gzip.open(real(venue), "rb") as file:
        lines = file.read().splitlines(keepends=True)
    diffs = [i for i, line in enumerate(lines) if b'"depthUpdate"' in line]
    dropped = diffs[len(diffs) // 2]
    source = tmp_path / "dropped.txt"
    source.write_bytes(b"".join(lines[:dropped] + lines[dropped + 1 :]))
    report = import_lines(source, tmp_path / "c", "hftbacktest")
    assert report.sequence_gaps == 1
    (gap,) = depth_gaps(tmp_path / "c")
    diff = orjson.loads(lines[dropped].split(b" ", 1)[1])["data"]
    if venue == "spot":  # ids are contiguous: exactly the dropped diff's ids are missing
        assert (gap["expected"], gap["received"]) == (diff["U"], diff["u"] + 1)
    else:  # futures: the next diff names the dropped one's u as the one it follows
        assert (gap["expected"], gap["received"]) == (diff["pu"], diff["u"])
    manifest = open_capture(tmp_path / "c")
    assert manifest["sequence_gaps"] == {"depth_update_id": {"count": 1, "missing": gap["missing"]}}
    assert gap_summary(manifest) == "1 depth_update_id gap"


def update(first, last, prev=None, snapshot=False):
    return DepthUpdate("ETHUSDT", [], None, 0, 0, first, last, snapshot, prev)


def test_a_snapshot_starts_a_book_not_a_chain():
    spot = SequenceChecker()
    assert spot.check_depth(update(95, 105)) is None
    assert spot.check_depth(update(None, 100, snapshot=True)) is None  # 105 already covered it
    assert spot.check_depth(update(106, 110)) is None  # was a false gap under the old rule
    futures = SequenceChecker()
    assert futures.check_depth(update(90, 100, prev=80)) is None
    assert futures.check_depth(update(None, 95, snapshot=True)) is None
    assert futures.check_depth(update(120, 130, prev=100)) is None  # pu chain: ids jump
    gap = futures.check_depth(update(150, 160, prev=140))
    assert (gap.expected, gap.received) == (130, 140)
    assert futures.check_depth(update(120, 130, prev=100)) is None  # a repeat: stale


def test_gap_rows_are_noted_in_constant_time_and_once():
    manifest = new_manifest({"kind": "test"}, 0)
    for seq in range(5000):
        detail = {"kind": "depth_update_id", "symbol": "X", "missing": 2}
        note_lifecycle(manifest, "gap", "market", 1, seq, seq, orjson.dumps(detail))
    note_lifecycle(manifest, "gap", "market", 1, 10, 10, b'{"kind": "depth_update_id"}')  # again
    note_lifecycle(manifest, "gap", "market", 1, 6000, 6000, b'{"reason": "reconnect"}')
    assert manifest["sequence_gaps"] == {"depth_update_id": {"count": 5000, "missing": 10_000}}
    assert len(manifest["gaps"]) == LISTED_SEQUENCE_GAPS + 1  # the connection gap is listed
    assert gap_count(manifest) == 5001
    assert gap_summary(manifest) == "1 connection gap, 5000 depth_update_id gaps"
