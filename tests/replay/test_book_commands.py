"""Order books through the commands: ``replay --book``, ``export --book`` and the sql ``book``
view, ``plot --book``, and ``verify`` hashing book events the same at every speed and segment
size. On the real Binance capture (imported) and on the simulated market."""

import re

import duckdb
import orjson
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from helpers import write_capture

from rtcap.cli import main
from rtcap.decimals import format_amount
from rtcap.simulator import MarketSimulator


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def binance_cap(tmp_path_factory, binance_capture):
    capture = binance_capture
    path = tmp_path_factory.mktemp("book") / "eth"
    result = run("import", "--format", "hftbacktest", capture, path)
    assert result.exit_code == 0, result.output
    return path


def test_replay_book_prints_snapshots_at_the_cadence_in_every_format(binance_cap):
    table = run("replay", binance_cap, "--book", "3", "--every", "30s")
    csv = run("replay", binance_cap, "--book", "3", "--every", "30s", "--format", "csv")
    jsonl = run("replay", binance_cap, "--book", "3", "--every", "30s", "--format", "jsonl")
    assert table.exit_code == csv.exit_code == jsonl.exit_code == 0, table.output
    snaps = [orjson.loads(line) for line in jsonl.stdout.splitlines()]
    assert len(snaps) >= 6 and all(s["instrument"] == "ETHUSDT" for s in snaps)
    assert all(s["ts_ns"] % 30_000_000_000 == 0 for s in snaps)
    assert [s["ts_ns"] for s in snaps] == sorted({s["ts_ns"] for s in snaps})
    for snap in snaps:
        assert snap["valid"] and not snap["crossed"] and len(snap["bids"]) == 3
        assert snap["bids"][0][0] < snap["asks"][0][0]
        assert [b[0] for b in snap["bids"]] == sorted((b[0] for b in snap["bids"]), reverse=True)
    rows = csv.stdout.splitlines()
    assert rows[0] == "ts_ns,timestamp,instrument,level,bid_px,bid_sz,ask_px,ask_sz,valid"
    assert len(rows) - 1 == 3 * len(snaps)
    first = rows[1].split(",")
    assert (float(first[4]), float(first[5])) == tuple(snaps[0]["bids"][0])
    headers = [line for line in table.stdout.splitlines() if line.endswith("ETHUSDT")]
    assert len(headers) == len(snaps)
    # the table shows each level's exact price and size, as jsonl does (never %g-rounded)
    levels = [line.split() for line in table.stdout.splitlines() if " @ " in line]
    for (bid_px, bid_sz), (ask_px, ask_sz) in zip(snaps[0]["bids"], snaps[0]["asks"], strict=True):
        assert any(
            row[1:4] == [format_amount(bid_sz), "@", format_amount(bid_px)]
            and row[5:8] == [format_amount(ask_px), "x", format_amount(ask_sz)]
            for row in levels
        )
    assert any(len(row[3].partition(".")[2]) >= 2 for row in levels)  # 2678.14, not 2678.1
    bad = run("replay", binance_cap, "--book", "3", "--every", "0s")
    assert bad.exit_code == 2 and "too short" in bad.output


def test_export_book_is_the_sql_book_view_with_a_portable_schema(binance_cap, tmp_path):
    for fmt in ("parquet", "csv"):
        result = run(
            "export", binance_cap, "--out", tmp_path / fmt, "--book", "5", "--every", "1s",
            "--format", fmt,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert re.search(r"book: [\d,]+ rows \(top 5 levels every 1s\)", result.output)
    (parquet,) = (tmp_path / "parquet").glob("book_*.parquet")
    schema = pq.read_schema(parquet)
    assert [str(schema.field(n).type) for n in schema.names] == [
        "int64", "timestamp[us, tz=UTC]", "string", "int32",
        "double", "double", "double", "double", "bool",
    ]  # fmt: skip
    table = pq.read_table(parquet)
    ts_ns, ts = table["ts_ns"].to_pylist(), table["ts"].cast("int64").to_pylist()
    assert all(n == u * 1000 for n, u in zip(ts_ns, ts, strict=True))
    query = (
        "select count(*), count(distinct ts_ns), max(level), bool_and(valid), "
        "bool_and(bid_px < ask_px) filter (where level = 1) from book"
    )
    both = [
        run("sql", tmp_path / fmt, "-c", query, "--format", "json") for fmt in ("parquet", "csv")
    ]
    assert [r.exit_code for r in both] == [0, 0], both[0].output
    answers = [orjson.loads(r.output) for r in both]
    assert answers[0] == answers[1]
    count, times, levels, valid, ordered = answers[0][0].values()
    assert count == table.num_rows == 5 * times and levels == 5 and valid and ordered
    con = duckdb.connect()
    same = con.execute(
        f"select count(*) from read_parquet('{parquet}') where level = 1 and bid_px >= ask_px"
    ).fetchone()
    assert same == (0,)


def test_plot_book_draws_a_depth_heat_map_under_the_candles(binance_cap, tmp_path):
    out = tmp_path / "book.html"
    result = run("plot", binance_cap, "--book", "10", "--timeframe", "1min", "-o", out)
    assert result.exit_code == 0, result.output
    snapshots = int(re.search(r"book heat map of (\d+) snapshots", result.output).group(1))
    assert snapshots >= 150  # a 3-minute capture, one column per second
    html = out.read_text()
    assert html.index('"type":"heatmap"') < html.index('"type":"candlestick"')
    no_depth = run("plot", tmp_path / "missing", "--book")
    assert no_depth.exit_code != 0


def test_verify_hashes_book_events_alike_at_every_speed_and_segment_size(tmp_path):
    frames = list(MarketSimulator(3, ("MNQ",), rate=200).frames(duration_s=30))
    hashes = []
    for name, options in (("small", {"segment_max_bytes": 40_000}), ("one", {})):
        write_capture(tmp_path / name, frames, **options).close()
        result = run("verify", tmp_path / name, "--speed", "25x")
        assert result.exit_code == 0, result.output
        match = re.search(r"book stream sha256 ([0-9a-f]{64}) \(([\d,]+) order-book", result.output)
        hashes.append((match.group(1), int(match.group(2).replace(",", ""))))
    assert hashes[0] == hashes[1] and hashes[0][1] > 500
