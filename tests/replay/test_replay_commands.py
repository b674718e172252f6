"""``rtcap replay`` and ``rtcap verify`` on recorded and imported captures."""

import re
import signal
import subprocess
import sys

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import websockets
from click.testing import CliRunner

from rtcap.cli import main
from rtcap.decimals import format_amount
from rtcap.pipeline import Pipeline
from rtcap.replay.source import Replay
from rtcap.storage.integrity import open_capture, read_frames
from rtcap.storage.segments import sha256_file
from rtcap.timeutil import ns_to_datetime


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    path = tmp_path_factory.mktemp("rec") / "cap"
    result = run("record", path, "--duration", "4s", "--rate", "300", "--bars", "1sec", "--quiet")
    assert result.exit_code == 0, result.output
    return path


def test_replay_prints_bars_in_each_format(recorded):
    table = run("replay", recorded, "--timeframes", "1sec")
    csv = run("replay", recorded, "--timeframes", "1sec", "--format", "csv")
    jsonl = run("replay", recorded, "--timeframes", "1sec", "--format", "jsonl", "--ticks")
    assert table.exit_code == csv.exit_code == jsonl.exit_code == 0
    rows = csv.stdout.splitlines()
    assert rows[0] == "timestamp,instrument,timeframe,open,high,low,close,volume,trades,gap"
    lines = jsonl.stdout.splitlines()
    bars = [orjson.loads(line) for line in lines if '"timeframe"' in line]
    ticks = [orjson.loads(line) for line in lines if '"event":"trade"' in line]
    assert len(bars) + len(ticks) == len(lines)
    assert len(bars) == len(rows) - 1 >= 4 and len(ticks) > len(bars)
    assert {b["instrument"] for b in bars} == {"MNQ", "ES"}
    assert len([line for line in table.stdout.splitlines() if " 1sec " in line]) == len(bars)
    ticked = run("replay", recorded, "--timeframes", "1sec", "--ticks")
    printed = [line.split() for line in ticked.stdout.splitlines() if " trade " in line]
    assert [(row[3], row[5]) for row in printed] == [
        (format_amount(t["price"]), format_amount(t["volume"])) for t in ticks
    ]  # every price as exact as jsonl's (21055.75, never 21055.8)
    assert any(row[3].endswith((".25", ".75")) for row in printed)
    assert "replayed" in table.stderr and "frames in" in table.stderr


def test_verify_says_identical_and_catches_a_tampered_live_bar(recorded, tmp_path):
    result = run("verify", recorded, "--speed", "50x")
    assert result.exit_code == 0, result.output
    assert re.match(
        r"identical: \d+ bars \(1sec\), \d+ events at max speed and 50x and the \d+ "
        r"live bars",
        result.output,
    )
    assert re.search(r"bar stream sha256 [0-9a-f]{64}", result.output)
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(recorded, copy)
    (bars_file,) = (copy / "bars").glob("*.parquet")
    table = pq.read_table(bars_file)
    closes = table.column("close").to_pylist()
    closes[0] += 0.25
    pq.write_table(
        table.set_column(table.schema.get_field_index("close"), "close", pa.array(closes)),
        bars_file,
    )
    result = run("verify", copy, "--speed", "50x")
    assert result.exit_code == 1  # a file changed behind the manifest's back is damage
    assert f"{bars_file} is damaged: sha256" in result.output
    manifest = orjson.loads((copy / "manifest.json").read_bytes())
    for entry in (manifest["live_bars"], *(s["live_bars"] for s in manifest["sessions"])):
        for file in entry["files"]:
            file["sha256"] = sha256_file(bars_file)
    (copy / "manifest.json").write_bytes(orjson.dumps(manifest))
    result = run("verify", copy, "--speed", "50x")  # a consistent capture with another bar
    assert result.exit_code == 1
    assert "DIFFERENT: replayed bars differ from the live bars at bar #0" in result.output


def test_bad_inputs_are_one_line_errors(recorded, tmp_path):
    speed = run("replay", recorded, "--speed", "fast")
    assert speed.exit_code == 2 and "invalid speed 'fast'" in speed.output
    missing = run("replay", tmp_path / "nope")
    assert missing.exit_code == 1 and "no capture at" in missing.output
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(recorded, broken)
    part = next((broken / "frames").rglob("*.parquet"))
    part.write_bytes(b"PAR1 this is not a parquet file")
    result = run("replay", broken)
    assert result.exit_code == 1 and f"{part} is damaged" in result.output
    assert "Traceback" not in result.output


def test_replay_serve_feeds_signalr_and_raw_clients(recorded):
    import asyncio

    frames = list(read_frames(recorded))
    text_frames = [f for f in frames if f.kind == "text"]
    process = subprocess.Popen(
        [sys.executable, "-m", "rtcap", "replay", str(recorded), "--serve", "--speed", "2x"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        banner = ""
        while "the replay starts when" not in banner:
            banner += process.stdout.readline()
        raw_url = re.search(r"raw frames\s+(\S+)", banner).group(1)
        assert "MNQ=CON.F.US.MNQ" in banner

        async def listen():
            received = []
            async with websockets.connect(raw_url, max_size=None) as ws:
                try:
                    while True:
                        received.append(await asyncio.wait_for(ws.recv(), 4))
                except TimeoutError:
                    return received

        received = asyncio.run(listen())
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=20)
    assert process.returncode == 0
    # The replay waited for its first client, so it got every frame, in order.
    assert received == [f.payload.decode() for f in text_frames]
    assert re.search(r"served \d+ records to \d+ connections", out)


def test_real_binance_bars_from_replay_equal_duckdb_bars(binance_capture, binance_counts, tmp_path):
    assert (
        run("import", binance_capture, tmp_path / "eth", "--format", "hftbacktest").exit_code == 0
    )
    pipeline = Pipeline(None, ["1min"], codec="auto")

    async def replay():
        async for batch in Replay(tmp_path / "eth").batches():
            for frame in batch:
                pipeline.feed(frame)

    import asyncio

    asyncio.run(replay())
    bars = [
        (b.start_ns // 1_000_000, b.open, b.high, b.low, b.close, b.volume, b.trades)
        for b in pipeline.instrument("ETHUSDT").builder.bars("1min")
    ]
    expected = duckdb.sql(f"""
        with trades as (
            select seq,
                   (decode(payload)->>'$.data.T')::BIGINT as t,
                   (decode(payload)->>'$.data.p')::DOUBLE as p,
                   (decode(payload)->>'$.data.q')::DOUBLE as q
            from read_parquet('{tmp_path / "eth"}/frames/*/*.parquet')
            where target = 'trade'
        )
        select t // 60000 * 60000 as minute, arg_min(p, seq), max(p), min(p), arg_max(p, seq),
               sum(q), count(*)
        from trades group by 1 order by 1
    """).fetchall()
    assert len(bars) == len(expected) == binance_counts["trade_minutes"]
    for mine, theirs in zip(bars, expected, strict=True):
        assert mine[:5] == theirs[:5] and mine[6] == theirs[6]
        assert mine[5] == pytest.approx(theirs[5], rel=1e-12)


def test_time_ranges_take_dates_and_refuse_windows_outside_the_capture(recorded):
    manifest = open_capture(recorded)
    day = ns_to_datetime(manifest["segments"][0]["first_ns"]).date().isoformat()
    from_date = run("replay", recorded, "--timeframes", "1sec", "--from", day)
    assert from_date.exit_code == 0, from_date.output  # a date: its UTC midnight
    assert "replayed 0 frames" not in from_date.stderr
    for option, value in (("--from", "+10m"), ("--to", "2020-01-01")):
        result = run("replay", recorded, option, value)
        assert result.exit_code != 0
        assert f"{option} {value}" in result.output and "it spans" in result.output
        assert len(result.output.strip().splitlines()) == 1
    bad = run("replay", recorded, "--from", "2025-13-45")
    assert bad.exit_code != 0 and "a date such as 2025-09-02" in bad.output


def test_replay_serve_answers_the_forming_bar_as_of_the_replayed_moment(tmp_path):
    """``retrieveBars`` from ``replay --serve``: with ``includePartialBar`` the newest bar is the
    bar forming at the replayed moment, exactly as the frames served so far build it; without,
    the newest bar is the last one closed before it."""
    import asyncio

    from gateway_client import login, rest

    from rtcap.gateway.build import capture_gateway
    from rtcap.timeutil import parse_iso_ns

    capture = tmp_path / "slow"
    result = run(
        "record", capture, "--duration", "8s", "--rate", "6", "--symbols", "MNQ", "--quiet"
    )
    assert result.exit_code == 0, result.output
    data_frames = [f for f in read_frames(capture) if f.kind in ("text", "binary")]

    async def scenario():
        server = capture_gateway(Replay(capture, "1x"))
        await server.start()
        compared = []
        try:
            token = await login(server)
            contract = next(iter(server.contracts))
            request = {
                "contractId": contract,
                "live": False,
                "startTime": "2000-01-01T00:00:00Z",
                "endTime": "2100-01-01T00:00:00Z",
                "unit": 1,
                "unitNumber": 1,
                "limit": 3,
            }
            server.first_client.set()  # start the replay
            while not server.feed_done.is_set() and len(compared) < 8:
                await asyncio.sleep(0.05)
                served = server.stats["frames_in"]
                _, partial = await rest(
                    server, "/History/retrieveBars", {**request, "includePartialBar": True}, token
                )
                _, closed = await rest(
                    server, "/History/retrieveBars", {**request, "includePartialBar": False}, token
                )
                if served and server.stats["frames_in"] == served:  # nothing served meanwhile
                    compared.append((served, partial["bars"], closed["bars"]))
        finally:
            await server.stop()
        return compared

    checked = 0
    for served, partial, closed in asyncio.run(scenario()):
        expected = Pipeline(None, ["1sec"], codec="projectx")
        expected.feed_many(data_frames[:served])
        state = expected.instruments.get("MNQ")  # none while only subscription answers came
        forming = state.builder.forming("1sec") if state is not None else None
        if forming is None:  # no live print yet: history alone, nothing forming
            assert partial == closed
            continue
        checked += 1
        newest = partial[0]
        assert parse_iso_ns(newest["t"]) == forming.start_ns
        assert (newest["o"], newest["h"], newest["l"], newest["c"], newest["v"]) == (
            forming.open,
            forming.high,
            forming.low,
            forming.close,
            forming.volume,
        )
        assert parse_iso_ns(closed[0]["t"]) < forming.start_ns
        assert closed[0] == partial[1]
    assert checked >= 3
