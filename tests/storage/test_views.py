"""The SQL views, on a capture recorded from the simulator (with drops) and on the real Binance
capture, checked against values computed independently from the frames."""

import asyncio
import gzip
import hashlib

import orjson
import pytest
from click.testing import CliRunner

from rtcap.analysis.views import connect
from rtcap.capture.feeds import local_gateway_feed
from rtcap.capture.recorder import Recorder
from rtcap.capture.session import Backoff
from rtcap.cli import main
from rtcap.gateway.embedded import start_embedded_market
from rtcap.gateway.faults import FaultPlan
from rtcap.storage.importer import import_lines
from rtcap.storage.integrity import read_frames
from rtcap.storage.writer import CaptureWriter


@pytest.fixture(scope="module")
def sim_capture(tmp_path_factory):
    path = tmp_path_factory.mktemp("views") / "sim"

    async def record():
        market = await start_embedded_market(
            3, ["MNQ", "ES"], 300, history_days=0, faults=FaultPlan(drop_after_s=1.0)
        )
        writer = CaptureWriter(path, source=market.source_info(), fsync="never")
        writer.open()
        recorder = Recorder(
            [local_gateway_feed(market, ["MNQ", "ES"])],
            writer=writer,
            bar_timeframes=["1sec"],
            backoff=Backoff(0.05, max_s=0.2),
        )
        await recorder.prepare()
        try:
            await recorder.run(2.6)
        finally:
            await market.stop()

    asyncio.run(record())
    return path


def records(frames, target):
    for frame in frames:
        if frame.kind == "text" and frame.payload.endswith(b"\x1e"):
            for record in frame.payload.split(b"\x1e")[:-1]:
                message = orjson.loads(record)
                if message.get("target") == target:
                    yield frame, message


def test_sim_views_match_the_frames(sim_capture):
    frames = list(read_frames(sim_capture))
    con = connect([sim_capture])
    assert con.execute("select count(*) from frames").fetchone()[0] == len(frames)
    prints = [
        (m["arguments"][0], p)
        for _, m in records(frames, "GatewayTrade")
        for p in m["arguments"][1]
    ]
    rows = con.execute(
        "select contract, price, volume, side from trades order by seq, record_index, print_index"
    ).fetchall()
    assert rows == [
        (c, p["price"], float(p["volume"]), "buy" if p["type"] == 0 else "sell") for c, p in prints
    ]
    assert {s for (s,) in con.execute("select distinct symbol from trades").fetchall()} == {
        "MNQ",
        "ES",
    }
    quotes = list(records(frames, "GatewayQuote"))
    assert con.execute("select count(*), count(bid) from quotes").fetchone() == (
        len(quotes),
        len(quotes),
    )
    levels = sum(len(m["arguments"][1]) for _, m in records(frames, "GatewayDepth"))
    assert con.execute("select count(*) from depth").fetchone()[0] == levels
    gap_rows = [orjson.loads(f.payload) for f in frames if f.kind == "gap"]
    assert len(gap_rows) >= 1
    (count, kinds, seconds) = con.execute(
        "select count(*), list(distinct gap_kind), sum(seconds) from gaps"
    ).fetchone()
    assert count == len(gap_rows) and kinds == ["connection"]
    assert seconds == pytest.approx(sum(g["seconds"] for g in gap_rows))
    opens = con.execute("select count(*) from lifecycle where kind = 'open'").fetchone()[0]
    assert opens == sum(f.kind == "open" for f in frames) == count + 1
    assert con.execute("select count(*) from bars where origin = 'live'").fetchone()[0] >= 2
    typed = {row[0]: row[1] for row in con.execute("describe trades").fetchall()}
    assert typed["price"] == "DOUBLE" and typed["exch_time"] == "TIMESTAMP WITH TIME ZONE"


def test_binance_views_on_the_real_capture_with_a_known_bar_and_gap(
    binance_capture, binance_counts, tmp_path
):
    with gzip.open(binance_capture, "rb") as handle:
        lines = handle.read().splitlines(keepends=True)
    trade_lines = [i for i, line in enumerate(lines) if b"@trade" in line[:60]]
    removed = lines[trade_lines[500]]
    del lines[trade_lines[500]]  # one print lost
    damaged = tmp_path / "eth.gz"
    damaged.write_bytes(gzip.compress(b"".join(lines)))
    report = import_lines(damaged, tmp_path / "eth", "hftbacktest")
    assert report.sequence_gaps == 1
    con = connect([tmp_path / "eth"])
    assert con.execute("select count(*) from trades").fetchone()[0] == binance_counts["trade"] - 1
    quotes = con.execute("select count(*) from quotes").fetchone()[0]
    assert quotes == binance_counts["bookTicker"]
    lost = orjson.loads(removed.split(b" ", 1)[1])["data"]["t"]
    gap = con.execute("select gap_kind, symbol, expected, received, missing from gaps").fetchall()
    assert gap == [("trade_id", "ETHUSDT", lost, lost + 1, 1)]
    snapshot_levels = con.execute("select count(*) from depth where snapshot").fetchone()[0]
    first = orjson.loads(lines[0].split(b" ", 1)[1])
    snapshot = first if "lastUpdateId" in first else None
    if snapshot is not None:
        assert snapshot_levels == len(snapshot["bids"]) + len(snapshot["asks"])
    bar = con.execute("""
        select time_bucket(interval 1 minute, exch_time) as minute, first(price order by seq),
               max(price), min(price), last(price order by seq), count(*)
        from trades group by 1 order by 1 limit 1 offset 1
    """).fetchone()
    prices = [
        (orjson.loads(line.split(b" ", 1)[1])["data"]) for line in lines if b"@trade" in line[:60]
    ]
    minute = [p for p in prices if p["T"] // 60000 * 60000 == int(bar[0].timestamp()) * 1000]
    assert bar[1:] == (
        float(minute[0]["p"]),
        max(float(p["p"]) for p in minute),
        min(float(p["p"]) for p in minute),
        float(minute[-1]["p"]),
        len(minute),
    )


def test_sql_command_formats_errors_and_read_only(sim_capture, tmp_path):
    before = hashlib.sha256(
        b"".join(p.read_bytes() for p in sorted(sim_capture.rglob("*")) if p.is_file())
    ).hexdigest()
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "sql",
            str(sim_capture),
            "-c",
            "select kind, count(*) n from frames group by 1 order by 1",
            "--format",
            "csv",
        ],
    )
    assert result.exit_code == 0 and result.stdout.splitlines()[0] == "kind,n"
    result = runner.invoke(
        main,
        ["sql", str(sim_capture), "-c", "select count(*) as n from trades", "--format", "json"],
    )
    assert orjson.loads(result.stdout)[0]["n"] > 0
    out = tmp_path / "t.parquet"
    result = runner.invoke(
        main,
        [
            "sql",
            str(sim_capture.parent),
            "-c",
            "select * from trades",
            "--format",
            "parquet",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0 and out.stat().st_size > 0
    result = runner.invoke(main, ["sql", str(sim_capture), "-c", "select nope from frames"])
    assert result.exit_code == 1 and "Binder Error" in result.output
    result = runner.invoke(main, ["sql", str(tmp_path / "missing"), "-c", "select 1"])
    assert result.exit_code == 1 and "no capture or export at" in result.output
    after = hashlib.sha256(
        b"".join(p.read_bytes() for p in sorted(sim_capture.rglob("*")) if p.is_file())
    ).hexdigest()
    assert before == after  # nothing written into the capture


def test_sql_reads_statements_from_stdin(sim_capture):
    result = CliRunner().invoke(
        main, ["sql", str(sim_capture)], input="select count(*) as frames from frames;"
    )
    assert result.exit_code == 0
    assert "frames" in result.stdout.splitlines()[0]
    assert int(result.stdout.splitlines()[2].strip("| ")) > 0
