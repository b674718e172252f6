import gzip

import orjson
import pytest

from rtcap.storage.importer import import_lines
from rtcap.storage.integrity import open_capture, read_frames


def test_import_real_hftbacktest_capture(binance_capture, binance_counts, tmp_path):
    report = import_lines(binance_capture, tmp_path / "eth", "hftbacktest")
    assert report.frames == binance_counts["lines"] and report.skipped_count == 0
    manifest = open_capture(tmp_path / "eth")
    assert manifest["frames"] == binance_counts["lines"]
    assert manifest["source"]["format"] == "hftbacktest"
    frames = list(read_frames(tmp_path / "eth"))
    with gzip.open(binance_capture, "rb") as lines:
        first = next(lines).rstrip(b"\n")
    stamp, _, payload = first.partition(b" ")
    assert (frames[0].recv_ns, frames[0].payload) == (int(stamp), payload)  # exact bytes
    kinds = {}
    for frame in frames:
        kinds[frame.target] = kinds.get(frame.target, 0) + 1
    assert kinds == {
        k: v
        for k, v in binance_counts.items()
        if k in ("bookTicker", "trade", "depth@100ms", "depthSnapshot")
    }
    assert {f.symbol for f in frames if f.target == "trade"} == {"ETHUSDT"}
    assert all(f.exch_ns for f in frames if f.target == "trade")


def test_import_tardis_and_jsonl_and_report_bad_lines(tmp_path):
    trade = {
        "stream": "btcusdt@trade",
        "data": {
            "e": "trade",
            "E": 1,
            "s": "BTCUSDT",
            "t": 1,
            "p": "1",
            "q": "1",
            "T": 1700000000000,
            "m": True,
        },
    }
    tardis = tmp_path / "t.txt"
    tardis.write_bytes(b"2023-11-14T22:13:20.000001Z " + orjson.dumps(trade) + b"\nbroken\n")
    report = import_lines(tardis, tmp_path / "t", "tardis")
    assert report.frames == 1 and report.skipped_count == 1
    assert report.skipped == ["line 2: no space between time and frame"]
    (frame,) = read_frames(tmp_path / "t")
    assert frame.recv_ns == 1_700_000_000_000_001_000 and frame.exch_ns == 1_700_000_000_000_000_000
    jsonl = tmp_path / "j.jsonl"
    jsonl.write_text(
        orjson.dumps({"ts": 1700000000123, "data": trade}).decode()
        + "\n"
        + orjson.dumps(
            {"recv_ns": "2023-11-14T22:13:20Z", "payload": "raw text", "stream": "s"}
        ).decode()
        + "\n"
    )
    assert import_lines(jsonl, tmp_path / "j", "jsonl").frames == 2
    frames = list(read_frames(tmp_path / "j"))
    assert frames[0].recv_ns == 1_700_000_000_123_000_000 and frames[1].payload == b"raw text"
    assert frames[1].stream == "s"


def test_import_refuses_existing_capture_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="unknown format"):
        import_lines(tmp_path / "x", tmp_path / "c", "csv")
    with pytest.raises(ValueError, match="no file at"):
        import_lines(tmp_path / "x", tmp_path / "c", "jsonl")
