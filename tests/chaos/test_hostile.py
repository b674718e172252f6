"""Hostile input: SQL that tries to write or reach out, URLs and messages full of secrets,
and malformed files and options. SQL never changes a byte of a capture; no secret reaches any
byte written, decompressed or not; every bad input is one line with a non-zero exit."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import threading
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import websockets
import zstandard
from click.testing import CliRunner
from helpers import one_line_error

from rtcap.cli import main
from rtcap.storage.integrity import open_capture, read_frames
from rtcap.storage.journal import read_journal


def run(*args, **kwargs):
    return CliRunner().invoke(main, [str(a) for a in args], **kwargs)


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    path = tmp_path_factory.mktemp("hostile") / "cap"
    result = run("record", path, "--duration", "2s", "--rate", "200", "--bars", "1sec", "--quiet")
    assert result.exit_code == 0, result.output
    return path


def tree_hash(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "capture.lock"
    }


HOSTILE_SQL = [
    "COPY frames TO '{cap}/frames/date=2026-01-01/part-777777.parquet'",
    "COPY (SELECT 1) TO '{cap}/manifest.json'",
    "ATTACH '{cap}/evil.db'",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_parquet('{cap}/frames/*/*.parquet')",
    "SET enable_external_access = true",
    "SET lock_configuration = false",
    "EXPORT DATABASE '{cap}/dump'",
    "CALL enable_logging(storage_path := '{cap}/log')",
]


@pytest.mark.parametrize("statement", HOSTILE_SQL)
def test_sql_cannot_write_into_a_capture_or_reach_outside(capture, statement):
    before = tree_hash(capture)
    result = run("sql", capture, "-c", statement.format(cap=capture))
    one_line_error(result)
    assert tree_hash(capture) == before
    assert run("sql", capture, "-c", "select count(*) from frames").exit_code == 0


def test_sql_out_may_not_point_into_a_capture(capture):
    before = tree_hash(capture)
    result = run("sql", capture, "-c", "select 1", "--out", capture / "frames" / "x.csv")
    assert result.exit_code == 2 and "captures are read-only" in result.output
    result = run("export", capture, "--out", capture / "bars")
    assert result.exit_code == 2 and "captures are read-only" in result.output
    assert tree_hash(capture) == before


SECRETS = {
    "password": "PWSECRET9",
    "path key": "Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56Qr78St90",
    "listenKey": "LKSECRET9",
    "x-api-key": "XKSECRET9",
    "signature": "SIGSECRET9",
    "login apiKey": "K1SECRET9",
    "passphrase": "P1SECRET9",
    "sign": "S1SECRET9",
    "auth token": "T1SECRET9",
    "bybit args": "B1SECRET9",
    "--redact name": "CUSTOMSECRET9",
}


def every_byte_written(folder: Path) -> bytes:
    """Raw bytes of every file, plus every decompressed value of every Parquet and journal."""
    chunks = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        chunks.append(path.read_bytes())
        if path.suffix == ".parquet":
            for column in pq.read_table(path).columns:
                if pa.types.is_timestamp(column.type):
                    column = column.cast(pa.int64())
                chunks.extend(str(v).encode() for v in column.to_pylist())
        if path.suffix == ".rtj":
            chunks.extend(f.payload for f in read_journal(path).frames)
    return b"\n".join(chunks)


def test_no_secret_reaches_any_byte_written(tmp_path):
    messages = []

    async def handler(ws):
        messages.append(ws.request.path)
        for index in range(60):
            await ws.send(orjson.dumps({"n": index}).decode())
        async for message in ws:
            messages.append(message)

    loop_ready = threading.Event()
    state = {}

    def serve():
        async def main_():
            server = await websockets.serve(handler, "127.0.0.1", 0)
            state["port"] = server.sockets[0].getsockname()[1]
            state["server"] = server
            loop_ready.set()
            await server.wait_closed()

        state["loop"] = asyncio.new_event_loop()
        state["loop"].run_until_complete(main_())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    loop_ready.wait(10)
    port = state["port"]
    url = (
        f"ws://trader:{SECRETS['password']}@127.0.0.1:{port}/ws/{SECRETS['path key']}"
        f"?listenKey={SECRETS['listenKey']}&x-api-key={SECRETS['x-api-key']}"
        f"&signature={SECRETS['signature']}&timestamp=1700000000000"
    )
    sends = [
        orjson.dumps(
            {
                "op": "login",
                "args": [
                    {
                        "apiKey": SECRETS["login apiKey"],
                        "passphrase": SECRETS["passphrase"],
                        "sign": SECRETS["sign"],
                    }
                ],
            }
        ).decode(),
        orjson.dumps({"method": "auth", "params": {"token": SECRETS["auth token"]}}).decode(),
        orjson.dumps({"op": "auth", "args": ["public", 1, SECRETS["bybit args"]]}).decode(),
        orjson.dumps({"action": "subscribe", "my_field": SECRETS["--redact name"]}).decode(),
    ]
    cap = tmp_path / "ws"
    args = ["record", cap, "--source", "ws", "--url", url, "--max-frames", "60", "--quiet"]
    for message in sends:
        args += ["--send", message]
    result = run(*args, "--redact", "my_field")
    state["loop"].call_soon_threadsafe(state["server"].close)
    assert result.exit_code == 0, result.output
    assert SECRETS["path key"] in messages[0]  # the server did get the real thing
    assert len([f for f in read_frames(cap) if f.kind == "text"]) == 60
    written = every_byte_written(cap) + result.output.encode()
    for name, secret in SECRETS.items():
        assert secret.encode() not in written, name
    sent = [orjson.loads(f.payload) for f in read_frames(cap) if f.kind == "sent"]
    assert sent[0] == {"op": "login", "args": "REDACTED"}
    assert sent[3] == {"action": "subscribe", "my_field": "REDACTED"}
    opened = orjson.loads(next(f.payload for f in read_frames(cap) if f.kind == "open"))
    assert opened["url"].startswith("ws://trader:REDACTED@127.0.0.1:")
    assert "timestamp=1700000000000" in opened["url"]  # not a secret: kept


BAD_LINES = {
    "microseconds.jsonl": [
        orjson.dumps({"ts": 1_700_000_000_000_000 + i, "data": {"n": i}}) for i in range(5)
    ],
    "seconds.jsonl": [
        orjson.dumps({"ts": 1_700_000_000.5 + i, "data": {"n": i}}) for i in range(5)
    ],
}


def test_import_tells_time_units_apart_and_bounds_every_time(tmp_path):
    for name, lines in BAD_LINES.items():
        source = tmp_path / name
        source.write_bytes(b"\n".join(lines) + b"\n")
        result = run("import", source, tmp_path / f"cap-{name}", "--format", "jsonl")
        assert result.exit_code == 0, result.output
        frames = list(read_frames(tmp_path / f"cap-{name}"))
        assert frames[0].recv_ns // 10**9 == 1_700_000_000  # 2023-11-14, whatever the unit
    hostile = tmp_path / "hostile.jsonl"
    hostile.write_bytes(
        b"\n".join(
            [
                orjson.dumps({"ts": True, "data": {}}),
                orjson.dumps({"ts": 2**63, "data": {}}),
                b'{"ts": 1e300, "data": {}}',
                orjson.dumps({"ts": -5, "data": {}}),
                orjson.dumps({"ts": "9999-01-01T00:00:00Z", "data": {}}),
                orjson.dumps({"ts": 1_700_000_000_000, "data": {"ok": 1}}),
            ]
        )
    )
    result = run("import", hostile, tmp_path / "cap-hostile", "--format", "jsonl")
    assert result.exit_code == 0 and "skipped 5 unreadable lines" in result.output
    assert len(list(read_frames(tmp_path / "cap-hostile"))) == 1
    result = run(
        "import",
        tmp_path / "seconds.jsonl",
        tmp_path / "cap-ms",
        "--format",
        "jsonl",
        "--ts-unit",
        "ms",
    )  # 1.7e9 ms is 1970: refused line by line, not read as a wrong date
    one_line_error(result, "every line of", "5 lines", "--ts-unit")
    assert not (tmp_path / "cap-ms").exists()  # nothing left behind
    micros = tmp_path / "micros.hftbacktest"  # hftbacktest lines with µs times
    micros.write_bytes(
        b"".join(b'%d {"n":%d}\n' % (1_700_000_000_000_000 + i, i) for i in range(5))
    )
    result = run("import", micros, tmp_path / "cap-us", "--format", "hftbacktest")
    assert result.exit_code == 0, result.output
    frames = list(read_frames(tmp_path / "cap-us"))
    assert [f.recv_ns for f in frames] == [(1_700_000_000_000_000 + i) * 1000 for i in range(5)]


def test_corrupt_compressed_imports_fail_cleanly_and_leave_nothing(tmp_path):
    lines = b"".join(
        b'%d {"n":%d}\n' % (1_700_000_000_000_000_000 + i * 7919, i) for i in range(9000)
    )
    gz, zst = gzip.compress(lines), zstandard.ZstdCompressor().compress(lines)
    for name, data in {
        "fake.gz": b"this is not gzip at all\n",
        "fake.zst": b"nor is this zstd\n",
        "cut.gz": gz[: len(gz) // 2],
        "cut.zst": zst[: len(zst) // 2],
    }.items():
        source = tmp_path / name
        source.write_bytes(data)
        target = tmp_path / f"cap-{name}"
        one_line_error(run("import", source, target, "--format", "hftbacktest"), str(source))
        assert not target.exists()  # no half-made capture blocks the retry
        target.mkdir()  # an empty folder made beforehand is emptied again, not removed
        one_line_error(run("import", source, target, "--format", "hftbacktest"), str(source))
        assert target.is_dir() and not any(target.iterdir())


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["record", "{tmp}/r", "--duration", "0s"], "too short"),
        (["record", "{tmp}/r", "--duration", "nan"], "invalid duration"),
        (["record", "{tmp}/r", "--duration", "inf"], "invalid duration"),
        (["record", "{tmp}/r", "--stale-after", "0s"], "at least 1s"),
        (["sim", "--burst-every", "0s"], "at least 1s"),
        (["sim", "--keepalive", "0s"], "at least 1s"),
        (["verify", "{cap}", "--speed", "max"], "already replays at max speed"),
        (["verify", "{cap}", "--timeframes", "abc"], "unknown timeframe"),
        (["verify", "{cap}", "--timeframes", "0min"], "unknown timeframe"),
        (["replay", "{cap}", "--timeframes", "0min"], "unknown timeframe"),
    ],
)
def test_options_that_make_no_sense_are_refused(capture, tmp_path, args, needle):
    result = run(*[a.format(tmp=tmp_path, cap=capture) for a in args])
    assert result.exit_code == 2 and needle in result.output, result.output
    assert not (tmp_path / "r").exists()


def test_impossible_requests_are_one_line_errors(capture, tmp_path):
    one_line_error(run("replay", capture, "--from", "+1s", "--to", "+1s"), "is not before --to")
    one_line_error(run("export", capture, "--out", tmp_path / "o", "--from", "+2s", "--to", "+1s"))
    one_line_error(run("plot", capture, "--instrument", "ZZZ", "-o", tmp_path / "c.html"), "ZZZ")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    one_line_error(run("export", capture, "--out", blocker / "sub"), "cannot write into --out")
    one_line_error(run("info", tmp_path / "file"), "is a file, not a capture")
    one_line_error(run("recover", tmp_path / "nothing"), "no capture at")


def test_existing_capture_needs_append(capture):
    before = tree_hash(capture)
    result = run("record", capture, "--duration", "1s", "--quiet")
    one_line_error(result, "already holds a recording", "--append")
    assert tree_hash(capture) == before
    assert open_capture(capture)["status"] == "closed"


def test_a_reader_that_goes_away_ends_the_command_quietly(capture):
    """``rtcap replay --ticks | head -1``: one line out, no traceback or handler error on
    stderr, the exit a Unix tool stopped by SIGPIPE shows (141)."""
    import subprocess
    import sys

    for args in (["replay", "--ticks"], ["replay", "--timeframes", "1sec"], ["sql"]):
        extra = ["-c", "select * from frames"] if args == ["sql"] else []
        process = subprocess.Popen(
            [sys.executable, "-m", "rtcap", *args[:1], str(capture), *args[1:], *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        first = process.stdout.readline()
        process.stdout.close()  # the reader goes away, as `head -1` does
        _, err = process.communicate(timeout=60)
        assert first.strip(), args
        assert b"BrokenPipe" not in err and b"Broken pipe" not in err, (args, err[-500:])
        assert b"Traceback" not in err and b"failed on" not in err, (args, err[-500:])
        assert process.returncode in (0, 141), (args, process.returncode)
