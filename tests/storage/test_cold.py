"""The cold form: ``rtcap compact`` rewrites a closed capture as typed columns plus shapes, and
every frame still reads back byte for byte; replay, verify and the books see the same tape."""

from __future__ import annotations

import gzip
import hashlib
import itertools
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from helpers import write_capture
from hypothesis import given, settings
from hypothesis import strategies as st

from rtcap.accel import speedups
from rtcap.cli import main
from rtcap.codecs import BinanceCodec, DecodeError
from rtcap.codecs.projectx import ProjectXCodec
from rtcap.models import DepthUpdate, Frame, Quote, Trade
from rtcap.simulator import MarketSimulator
from rtcap.storage.compact import (
    COLD_ROW_GROUP_ROWS,
    by_message,
    cold_writer,
    compact,
    is_cold_file,
)
from rtcap.storage.importer import import_lines
from rtcap.storage.integrity import open_capture, read_frames
from rtcap.storage.schema import FRAME_SCHEMA, SHAPES_KEY, cold_frame_pieces, frame_columns
from rtcap.storage.shapes import (
    _compiled_render,
    render,
    render_by_columns,
    shapes_from_json,
    typed_columns,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
SLICES = sorted(FIXTURES.glob("binance-*/*.gz"))
WHOLE = sorted(SHARED_DATA.glob("binance-*/*.gz"))
SHORT_LINES = 5_000  # of each whole capture, outside --run-slow


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def lines_of(path: Path) -> list[tuple[int, bytes]]:
    with gzip.open(path, "rb") as handle:
        return [
            (int(stamp), payload)
            for stamp, _, payload in (line.rstrip(b"\n").partition(b" ") for line in handle)
        ]


def write_cold(table: pa.Table, path: Path) -> None:
    """A whole cold table written as one cold file, as compaction writes its blocks."""
    with cold_writer(path, table.schema) as writer:
        for start in range(0, max(table.num_rows, 1), COLD_ROW_GROUP_ROWS):
            part = by_message(table.slice(start, COLD_ROW_GROUP_ROWS))
            writer.write_table(part, row_group_size=COLD_ROW_GROUP_ROWS)


def capture_files(capture: Path) -> list[Path]:
    manifest = open_capture(capture)
    return [capture / f["path"] for s in manifest["segments"] for f in s["files"]]


@pytest.mark.parametrize("source", SLICES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_real_frame_reads_back_byte_for_byte_after_compaction(source, tmp_path):
    compacts_byte_for_byte(source, tmp_path / "cap")


@pytest.mark.slow
@pytest.mark.parametrize("source", WHOLE, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_whole_real_captures_read_back_byte_for_byte(source, tmp_path, full_length):
    """The captures in ../shared/data whole under --run-slow, their first lines otherwise."""
    if not full_length:
        head = tmp_path / source.name
        with gzip.open(source, "rb") as whole, gzip.open(head, "wb") as out:
            out.writelines(itertools.islice(whole, SHORT_LINES))
        source = head
    compacts_byte_for_byte(source, tmp_path / "cap")


def compacts_byte_for_byte(source: Path, capture: Path) -> None:
    import_lines(source, capture, "hftbacktest")
    before = capture_files(capture)
    (report,) = compact(capture)
    lines = lines_of(source)
    frames = list(read_frames(capture))
    assert [(f.recv_ns, f.payload) for f in frames] == lines
    assert report.frames == len(lines) and report.files_rewritten == len(before)
    # every frame is a market message the codec knows: all typed, and only shapes used once
    # and holding no levels may keep their payload
    assert report.typed == len(lines) and report.raw <= 2
    assert report.cold_bytes < report.hot_bytes * 0.7
    assert all(is_cold_file(f) for f in capture_files(capture))
    assert not any(f.exists() for f in before)
    # its frames are read from the columns Binance shapes fill, never ProjectX's
    read = frame_columns(pq.read_schema(capture_files(capture)[0]))
    assert read is not None and {"seq", "payload", "shape", "price", "bid_prices"} <= set(read)
    assert not {"item_price", "quote_ns", "message"} & set(read)
    manifest = open_capture(capture)
    assert manifest["cold"]["form"] == "typed/2" and manifest["cold"]["encodings"]


def decoded(frames: list[Frame]) -> list:
    codec = BinanceCodec()
    return [item for frame in frames for item in codec.decode(frame)]


def test_typed_columns_hold_what_the_codec_reads(tmp_path):
    """Every trade, quote and depth level in the typed columns equals the codec's event for
    the same frame (one codec: compaction cuts out the fields the codec reads)."""
    source = FIXTURES / "binance-usdm" / "ethusdt_20240808_1min.gz"
    frames = [
        Frame(seq, ns, 0, 0, "market", "text", payload)
        for seq, (ns, payload) in enumerate(lines_of(source))
    ]
    columns, _ = typed_columns(pa.array([f.payload for f in frames], pa.binary()))
    rows = pa.table(columns).to_pylist()
    checked = {"trade": 0, "bookTicker": 0, "depthUpdate": 0}

    def value(row, name):
        return row[name] / 10 ** row[f"{name}_scale"]

    for frame, row in zip(frames, rows, strict=True):
        (event,) = BinanceCodec().decode(frame)
        if isinstance(event, Trade):
            assert (event.price, event.volume, event.trade_id) == (
                value(row, "price"), value(row, "qty"), row["trade_id"])  # fmt: skip
            assert event.side == ("sell" if row["maker"] else "buy")
            assert event.exch_ns == row["time_ms"] * 1_000_000
        elif isinstance(event, Quote):
            assert (event.bid, event.ask, event.bid_size, event.ask_size) == tuple(
                value(row, name) for name in ("bid", "ask", "bid_qty", "ask_qty"))  # fmt: skip
        elif isinstance(event, DepthUpdate) and not event.snapshot:
            bids = [
                (price / 10 ** row["bid_price_scale"], size / 10 ** row["bid_size_scale"])
                for price, size in zip(row["bid_prices"], row["bid_sizes"], strict=True)
            ]
            assert [(lv.price, lv.volume) for lv in event.levels if lv.side == "bid"] == bids
            assert (event.first_id, event.last_id, event.prev_id) == (
                row["first_update_id"], row["update_id"], row["prev_update_id"])  # fmt: skip
        else:
            continue
        checked[row["message"]] += 1
    assert min(checked.values()) > 100, checked


def test_a_futures_book_ticker_is_a_quote_in_the_codec_and_in_sql(tmp_path):
    """USD-M and COIN-M bookTicker messages name their event type ("e": "bookTicker");
    both the codec and the SQL view once took only spot's, which names none."""
    source = FIXTURES / "binance-usdm" / "ethusdt_20240808_1min.gz"
    tickers = [(ns, p) for ns, p in lines_of(source) if b"@bookTicker" in p]
    (quote,) = BinanceCodec().decode(Frame(0, tickers[0][0], 0, 0, "m", "text", tickers[0][1]))
    assert isinstance(quote, Quote) and quote.symbol == "ETHUSDT" and quote.bid < quote.ask
    capture = tmp_path / "usdm"
    import_lines(source, capture, "hftbacktest")
    result = run("sql", capture, "-c", "select count(*) as n from quotes", "--format", "json")
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.output) == [{"n": len(tickers)}]


# Awkward numbers: trailing zeros, leading zeros, negative zero, exponents, huge integers,
# spacing, reordered keys and mixed digits within one side's levels. Whatever the text, the
# frame must read back exactly; where it cannot be typed it keeps its payload.
decimals = st.one_of(
    st.builds(
        lambda w, f: f"{w}.{f}",
        st.integers(0, 10**7),
        st.text("0123456789", min_size=1, max_size=9),
    ),
    st.sampled_from(["0", "-0.0", "007.5", "1e5", "-1.25", "0.00000000", "12.", "9" * 25, "1E-7"]),
    st.integers(-(10**6), 10**9).map(str),
)
integers = st.one_of(st.integers(0, 2**63 - 1), st.sampled_from([2**63, 2**70, -1]))


@st.composite
def binance_frames(draw) -> bytes:
    kind = draw(st.sampled_from(["trade", "bookTicker", "depthUpdate", "other"]))
    if kind == "trade":
        data = {"e": "trade", "E": draw(integers), "s": "ETHUSDT", "t": draw(integers),
                "p": draw(decimals), "q": draw(decimals), "T": draw(integers),
                "m": draw(st.booleans()), "M": True}  # fmt: skip
    elif kind == "bookTicker":
        data = {"u": draw(integers), "s": "ETHUSDT", "b": draw(decimals), "B": draw(decimals),
                "a": draw(decimals), "A": draw(decimals)}  # fmt: skip
    elif kind == "depthUpdate":
        levels = st.lists(st.tuples(decimals, decimals).map(list), max_size=6)
        data = {"e": "depthUpdate", "E": draw(integers), "s": "ETHUSDT", "U": draw(integers),
                "u": draw(integers), "pu": draw(integers), "b": draw(levels), "a": draw(levels)}  # fmt: skip
    else:
        data = {"result": None, "id": draw(integers)}
    keys = draw(st.permutations(list(data)))
    separator = draw(st.sampled_from([",", ", "]))
    body = separator.join(f'"{k}":{_text(data[k])}' for k in keys)
    text = "{" + body + "}"
    if draw(st.booleans()):
        text = '{"stream":"ethusdt@' + kind + '","data":' + text + "}"
    return text.encode()


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ",".join("[" + ",".join(f'"{x}"' for x in pair) + "]" for pair in value) + "]"
    return "null" if value is None else f'"{value}"'


def reads_back_exactly(payloads: list[bytes], random) -> dict:
    """Type ``payloads`` and render them back; the compiled renderer (where built) and the
    pyarrow one give the same bytes, in any order. Returns the typed columns."""
    original = pa.array(payloads, pa.binary())
    columns, shapes = typed_columns(original)
    kept = pc.if_else(pc.is_null(columns["shape"]), original, pa.scalar(None, pa.binary()))
    assert render(columns, shapes, kept).to_pylist() == payloads
    assert render_by_columns(columns, shapes, kept).to_pylist() == payloads
    order = random.sample(range(len(payloads)), len(payloads))
    in_order = render(columns, shapes, kept, pa.array(order, pa.uint64()))
    assert in_order.to_pylist() == [payloads[i] for i in order]
    if speedups is not None:
        assert _compiled_render(columns, shapes, kept, None) is not None
    return columns


@settings(max_examples=150, deadline=None)
@given(st.lists(binance_frames(), min_size=1, max_size=40), st.randoms(use_true_random=False))
def test_generated_frames_with_awkward_numbers_read_back_exactly(payloads, random):
    columns = reads_back_exactly(payloads, random)
    # a typed frame's values are the codec's: its prices and sizes as the codec's floats
    for payload, row in zip(payloads, pa.table(columns).to_pylist(), strict=True):
        if row["message"] in ("trade", "bookTicker"):
            events = BinanceCodec().decode(Frame(0, 1, 0, 0, "m", "text", payload))
            if events and not isinstance(events[0], DecodeError):
                name = "price" if row["message"] == "trade" else "bid"
                typed = row[name] / 10 ** row[f"{name}_scale"]
                codec = events[0].price if row["message"] == "trade" else events[0].bid
                assert typed == codec


# ProjectX: bare JSON numbers, ISO timestamps with any fraction and offset, items of one
# message with mixed digits, a bare item instead of a list, several records in one frame.
stamps = st.builds(
    lambda day, clock, fraction, zone: f"{day}T{clock}{fraction}{zone}",
    st.sampled_from(
        [
            "2026-12-05",
            "2026-01-31",
            "2026-02-29",
            "2024-02-29",
            "2000-03-01",
            "1970-01-01",
            "2100-12-31",
            "9999-12-31",
        ]
    ),
    st.sampled_from(["00:00:00", "15:07:16", "23:59:59"]),
    st.one_of(st.just(""), st.text("0123456789", min_size=1, max_size=9).map(".{}".format)),
    st.sampled_from(["Z", "Z", "+00:00", "", "-05:00"]),
) | st.sampled_from(["1969-12-31T23:59:59.9Z", "2026-12-05 15:07:16Z", "not a time"])

json_numbers = st.one_of(
    st.builds(
        lambda w, f: f"{w}.{f}",
        st.integers(0, 10**5),
        st.text("0123456789", min_size=1, max_size=4),
    ),
    st.integers(0, 10**5).map(str),
    decimals,
)


def _record(target: str, contract: str, body) -> str:
    return f'{{"type":1,"target":"{target}","arguments":["{contract}",{body}]}}\x1e'


@st.composite
def projectx_frames(draw) -> bytes:
    kind = draw(st.sampled_from(["GatewayTrade", "GatewayQuote", "GatewayDepth", "other"]))
    contract = draw(st.sampled_from(["CON.F.US.MNQ.Z26", "CON.F.US.EP.Z26"]))
    if kind == "GatewayQuote":
        fields = {"symbol": '"F.US.MNQ"', "lastPrice": draw(json_numbers), "bestBid": draw(json_numbers),
                  "bestAsk": draw(json_numbers), "changePercent": draw(json_numbers),
                  "volume": draw(st.integers(0, 10**6).map(str) | decimals),
                  "timestamp": f'"{draw(stamps)}"'}  # fmt: skip
        chosen = draw(st.lists(st.sampled_from(list(fields)), unique=True, min_size=1))
        body = "{" + ",".join(f'"{k}":{fields[k]}' for k in chosen) + "}"
        text = _record(kind, contract, body)
    elif kind in ("GatewayTrade", "GatewayDepth"):
        stamp = draw(stamps)
        item = st.builds(
            lambda price, volume, side, same: (
                "{"
                + f'"price":{price},"timestamp":"{stamp if same else "2026-12-05T15:07:17Z"}",'
                + f'"type":{side},"volume":{volume}'
                + ("}" if kind == "GatewayTrade" else f',"currentVolume":{volume}}}')
            ),
            json_numbers,
            st.integers(0, 500),
            st.integers(0, 10),
            st.sampled_from([True, True, True, False]),  # mostly one stamp per message
        )
        items = draw(st.lists(item, min_size=1, max_size=5))
        listed = len(items) > 1 or draw(st.booleans())
        text = _record(kind, contract, "[" + ",".join(items) + "]" if listed else items[0])
    else:
        text = '{"type":6}\x1e'
    if draw(st.integers(0, 5)) == 0:  # two records in one frame
        text += _record("GatewayTrade", contract, '[{"price":1.5,"type":0,"volume":1}]')
    return text.encode()


@settings(max_examples=150, deadline=None)
@given(st.lists(projectx_frames(), min_size=1, max_size=40), st.randoms(use_true_random=False))
def test_generated_projectx_frames_read_back_exactly(payloads, random):
    columns = reads_back_exactly(payloads, random)
    # a typed item's values are the codec's: its price as the codec's float, its time in ns
    for payload, row in zip(payloads, pa.table(columns).to_pylist(), strict=True):
        if row["message"] == "GatewayTrade":
            codec = ProjectXCodec()
            events = [e for e in codec.decode(Frame(0, 1, 0, 0, "m", "text", payload))]
            trades = [e for e in events if isinstance(e, Trade)][: len(row["item_price"])]
            scale = row["item_price_scale"]
            assert [t.price for t in trades] == [p / 10**scale for p in row["item_price"]]
            assert [t.exch_ns for t in trades] == row["item_ns"]


def test_the_compiled_renderer_hands_back_what_it_cannot_read(tmp_path):
    """On a real compacted file the compiled renderer gives the pyarrow renderer's bytes; a
    row whose shape needs a value that is missing, or a column of another type (a damaged or
    hand-made file), is not guessed at: it returns nothing and the pyarrow path renders the
    table."""
    capture = tmp_path / "cap"
    import_lines(FIXTURES / "binance-usdm" / "ethusdt_20240808_1min.gz", capture, "hftbacktest")
    compact(capture)
    (path,) = capture_files(capture)
    table = pq.read_table(path)
    shapes = shapes_from_json(table.schema.metadata[SHAPES_KEY])
    columns = {name: table.column(name) for name in table.column_names}
    reference = render_by_columns(columns, shapes, table.column("payload"))
    assert render(columns, shapes, table.column("payload")).equals(reference)
    assert sorted(reference.to_pylist()) == sorted(p for _, p in lines_of(
        FIXTURES / "binance-usdm" / "ethusdt_20240808_1min.gz"))  # fmt: skip
    if speedups is not None:
        assert _compiled_render(columns, shapes, table.column("payload"), None) is not None
    trade = pc.index(table.column("message").cast(pa.string()), "trade").as_py()
    assert trade >= 0
    prices = table.column("price").combine_chunks().to_pylist()
    prices[trade] = None
    damaged = {**columns, "price": pa.array(prices, pa.int64())}
    assert _compiled_render(damaged, shapes, table.column("payload"), None) is None
    rendered = render(damaged, shapes, table.column("payload"))
    assert rendered.equals(render_by_columns(damaged, shapes, table.column("payload")))
    assert rendered[trade].as_py() is None and rendered.null_count == 1
    # a column of another type than the cold schema's: left to pyarrow, which reads it as text
    as_text = {**columns, "trade_id": pc.cast(table.column("trade_id"), pa.string())}
    assert _compiled_render(as_text, shapes, table.column("payload"), None) is None
    assert render(as_text, shapes, table.column("payload")).equals(reference)


def test_compaction_keeps_replay_verify_and_books_identical(tmp_path):
    """Real USD-M depth (with its book) and a simulated ProjectX tape (quotes, trades and
    depth typed) verify to the same bar, event and book hashes once compacted."""
    real = tmp_path / "usdm"
    import_lines(FIXTURES / "binance-usdm" / "ethusdt_20240808_1min.gz", real, "hftbacktest")
    sim = tmp_path / "sim"
    write_capture(sim, MarketSimulator(7, ["MNQ", "ES"], rate=40).frames(duration_s=120)).close()
    for capture in (real, sim):
        before = run("verify", capture, "--speed", "500x")
        assert before.exit_code == 0, before.output
        digests = [line for line in before.output.splitlines() if "sha256" in line]
        (report,) = compact(capture)
        assert report.typed > report.frames * 0.7, report  # a ProjectX tape is typed too
        after = run("verify", capture, "--speed", "500x")
        assert after.exit_code == 0, after.output
        assert [line for line in after.output.splitlines() if "sha256" in line] == digests
        assert len(digests) >= 2


def test_an_interrupted_compaction_leaves_the_hot_file_listed_and_is_finished_later(tmp_path):
    capture = tmp_path / "cap"
    import_lines(
        FIXTURES / "binance-coinm" / "ethusd_perp_20240808_1min.gz", capture, "hftbacktest"
    )
    (hot,) = capture_files(capture)
    digest = hashlib.sha256(b"".join(f.payload for f in read_frames(capture))).hexdigest()
    # a crash after the cold file was published, before the manifest switched to it
    from rtcap.storage.compact import cold_table

    leftover = hot.parent / (hot.stem + "-1.parquet")
    write_cold(cold_table(pq.read_table(hot)), leftover)
    spill = hot.parent / f".{leftover.name}.typed.tmp"  # typed blocks awaiting their shapes
    spill.write_bytes(b"ARROW1")
    assert capture_files(capture) == [hot]
    assert run("verify", capture, "--speed", "500x").exit_code == 0
    (report,) = compact(capture)
    assert report.files_rewritten == 1
    (cold,) = capture_files(capture)
    assert is_cold_file(cold) and not hot.exists() and not spill.exists()
    assert hashlib.sha256(b"".join(f.payload for f in read_frames(capture))).hexdigest() == digest
    (again,) = compact(capture)  # nothing left to do
    assert (again.files_rewritten, again.already_cold) == (0, 1)


def test_compact_command_reports_sizes_and_info_shows_the_tables(tmp_path):
    capture = tmp_path / "cap"
    import_lines(FIXTURES / "binance-spot" / "ethusdt_20240808_3min.gz", capture, "hftbacktest")
    result = run("compact", capture)
    assert result.exit_code == 0, result.output
    assert "17,492 frames" in result.output and "of the hot size" in result.output
    info = run("info", capture)
    assert info.exit_code == 0, info.output
    assert "cold  typed/2" in info.output
    for table in ("envelope", "trades", "quotes", "depth"):
        assert f"  {table}" in info.output
    migrated = run("migrate", capture)  # a compacted capture is current: left as it is
    assert migrated.exit_code == 0 and "nothing to do" in migrated.output
    again = run("compact", capture)
    assert again.exit_code == 0 and "already compacted" in again.output
    missing = run("compact", tmp_path / "nowhere")
    assert missing.exit_code != 0 and "no capture" in missing.output


def usdm_slice(capture: Path) -> int:
    source = FIXTURES / "binance-usdm" / "ethusdt_20240808_1min.gz"
    import_lines(source, capture, "hftbacktest")
    return len(lines_of(source))


def simulated_projectx(capture: Path) -> int:
    frames = list(MarketSimulator(7, ["MNQ", "ES"], rate=40).frames(duration_s=60))
    write_capture(capture, frames).close()
    return len(frames)


@pytest.mark.parametrize("make", [usdm_slice, simulated_projectx], ids=["binance", "projectx"])
def test_sql_views_read_the_typed_columns_as_they_decoded_the_json(tmp_path, make):
    """trades, quotes and depth of a compacted capture (typed columns, no JSON parsed) equal
    those of the same capture hot (decoded from the JSON), row for row; frames still gives
    every payload's exact bytes, rendered in SQL from the shapes."""
    from rtcap.analysis.views import connect

    for name in ("hot", "cold"):
        frames = make(tmp_path / name)
    (report,) = compact(tmp_path / "cold")
    queries = {
        "trades": "select * exclude (capture) from trades order by all",
        "quotes": "select * exclude (capture) from quotes order by all",
        "depth": "select * exclude (capture) from depth order by all",
        "frames": "select seq, recv_time, exch_time, bytes, payload, payload_text from frames "
        "order by seq",
    }
    hot, cold = connect([tmp_path / "hot"]), connect([tmp_path / "cold"])
    for view, query in queries.items():
        expected = hot.execute(query).fetchall()
        assert cold.execute(query).fetchall() == expected, view
        assert len(expected) > 1000, view
    typed = cold.execute("select count(*) from typed_rows").fetchone()[0]
    assert typed == report.typed > frames * 0.7
    assert hot.execute("select count(*) from typed_rows").fetchone()[0] == 0


def test_the_rows_no_typed_column_holds_stay_in_the_views_that_read_them(tmp_path):
    """A compacted file whose frames are all typed is left out of the views over raw frames
    (lifecycle, gaps, the JSON decoders), as its footer shows; one with connection rows is
    not, and its rows read as they did hot."""
    from rtcap.analysis.views import connect

    lines = lines_of(FIXTURES / "binance-usdm" / "ethusdt_20240808_1min.gz")[:3000]
    opened = orjson.dumps({"url": "wss://fstream.binance.com/stream"})
    frames = [
        Frame(0, lines[0][0] - 1, 0, 1, "binance", "open", opened),
        *(Frame(0, ns, 0, 1, "binance", "text", payload) for ns, payload in lines),
        Frame(0, lines[-1][0] + 1, 0, 1, "binance", "close", orjson.dumps({"code": 1000})),
    ]
    for name in ("hot", "cold"):
        write_capture(tmp_path / name, frames).close()
    compact(tmp_path / "cold")
    queries = (
        "select seq, kind, detail from lifecycle order by seq",
        "select count(*), sum(price * volume) from trades",
        "select count(*), sum(bytes) from frames",
    )
    hot, cold = connect([tmp_path / "hot"]), connect([tmp_path / "cold"])
    for query in queries:
        assert cold.execute(query).fetchall() == hot.execute(query).fetchall(), query
    assert [kind for _, kind, _ in cold.execute(queries[0]).fetchall()] == ["open", "close"]


def test_rtcap_open_hands_the_views_out_as_lazy_polars_frames(tmp_path):
    import polars as pl

    import rtcap

    source = FIXTURES / "binance-usdm" / "ethusdt_20240808_1min.gz"
    import_lines(source, tmp_path / "cap", "hftbacktest")
    compact(tmp_path / "cap")
    tape = rtcap.open(tmp_path / "cap")
    trades = tape.trades()
    assert isinstance(trades, pl.LazyFrame)
    minutes = (
        trades.sort("seq")
        .group_by_dynamic("recv_time", every="1m")
        .agg(pl.col("price").first().alias("open"), pl.col("volume").sum(), pl.len())
        .collect()
    )
    expected = tape.connection.execute(
        "select time_bucket(interval 1 minute, recv_time) as m, first(price order by seq), "
        "sum(volume), count(*) from trades group by 1 order by 1"
    ).fetchall()
    assert [(r["open"], r["len"]) for r in minutes.iter_rows(named=True)] == [
        (row[1], row[3]) for row in expected
    ]
    assert sum(minutes["volume"]) == pytest.approx(sum(row[2] for row in expected))
    stored = tape.typed_rows().filter(pl.col("message") == "trade").sort("seq").select(
        (pl.col("price") / 10 ** pl.col("price_scale")).alias("price")).collect()  # fmt: skip
    assert stored["price"].to_list() == trades.sort("seq").collect()["price"].to_list()
    with pytest.raises(ValueError, match="no table 'nope'"):
        tape.table("nope")


def test_other_engines_read_the_cold_files_as_the_readme_says(tmp_path):
    """DuckDB and Polars, without rtcap, read a folder of hot and cold files (the recipe in the
    README) and get the trades `rtcap sql` gives."""
    import duckdb
    import polars as pl

    from rtcap.analysis.views import connect

    root = tmp_path / "eth"
    import_lines(FIXTURES / "binance-usdm" / "ethusdt_20240808_1min.gz", root / "a", "hftbacktest")
    import_lines(FIXTURES / "binance-spot" / "ethusdt_20240808_3min.gz", root / "b", "hftbacktest")
    compact(root / "a")  # b stays hot: the folder holds both forms
    files = f"{root}/a/frames/**/*.parquet"
    rows = duckdb.sql(f"""
        select time_bucket(interval 1 minute, make_timestamp(recv_ns // 1000)) as minute,
               instrument, first(price / 10^price_scale order by seq) as open,
               max(price / 10^price_scale) as high, min(price / 10^price_scale) as low,
               last(price / 10^price_scale order by seq) as close,
               sum(qty / 10^qty_scale) as volume
        from read_parquet(['{files}', '{root}/b/frames/**/*.parquet'], union_by_name = true)
        where message = 'trade' group by all order by all
    """).fetchall()
    expected = (
        connect([root / "a"])
        .execute("""
        select time_bucket(interval 1 minute, recv_time) as minute, symbol,
               first(price order by seq), max(price), min(price), last(price order by seq),
               sum(volume)
        from trades group by all order by all
    """)
        .fetchall()
    )
    assert [r[2:6] for r in rows] == [r[2:6] for r in expected] and len(rows) >= 1
    assert [r[6] for r in rows] == pytest.approx([r[6] for r in expected])
    trades = (
        pl.scan_parquet(files, missing_columns="insert")
        .filter(pl.col("message") == "trade")
        .select(
            "seq",
            (pl.col("price") / 10.0 ** pl.col("price_scale")).alias("price"),
            (pl.col("qty") / 10.0 ** pl.col("qty_scale")).alias("volume"),
        )
        .sort("seq")
        .collect()
    )
    ours = connect([root / "a"]).execute("select price, volume from trades order by seq")
    assert list(zip(trades["price"], trades["volume"], strict=True)) == ours.fetchall()


def test_spark_tasks_read_a_compacted_root_as_it_was(tmp_path):
    """Spark's tasks (run here without Spark) read a compacted dataset capture's pieces back to
    the frames it held: the tables of a root may be hot and cold at once."""
    from rtcap.analysis import sparkplan, sparktasks
    from rtcap.storage.dataset import capture_path

    root = tmp_path / "root"
    capture = Path(capture_path(root, "sim", "2025-09-02", "a"))
    frames = list(MarketSimulator(7, ["MNQ"], rate=40).frames(duration_s=60))
    write_capture(capture, frames, tables=True).close()
    source = FIXTURES / "binance-usdm" / "ethusdt_20240808_1min.gz"
    other = Path(capture_path(root, "import", "2024-08-08", "b"))
    import_lines(source, other, "hftbacktest")
    before = hashlib.sha256(b"".join(f.payload for f in read_frames(other))).hexdigest()
    compact(root)
    plan = sparkplan.plan(root, across_venues=True)
    tables = [sparktasks.read_piece(piece) for piece in plan.pieces]
    payloads = pa.concat_tables(tables).sort_by("seq").column("payload").to_pylist()
    assert len(payloads) == len(frames) + len(lines_of(source))
    assert (
        hashlib.sha256(b"".join(read.payload for read in read_frames(other))).hexdigest() == before
    )
    assert any(is_cold_file(f) for f in capture_files(other))
    assert set(payloads) >= {payload for _, payload in lines_of(source)}


def test_a_capture_compacted_in_the_first_typed_form_reads_as_it_did(tmp_path):
    """typed/1 files (Binance columns only, before ProjectX was typed) read back byte for
    byte, verify, and give the same SQL views as today's form."""
    from rtcap.analysis.views import connect
    from rtcap.storage import manifest as manifests
    from rtcap.storage.schema import COLD_SCHEMA_V1, FRAME_SCHEMAS
    from rtcap.storage.segments import sha256_file

    for name in ("now", "first"):
        usdm_slice(tmp_path / name)
        compact(tmp_path / name)
    capture = tmp_path / "first"
    manifest = open_capture(capture)
    for entry in (f for s in manifest["segments"] for f in s["files"]):
        path = capture / entry["path"]
        table = pq.read_table(path)
        first = table.select(COLD_SCHEMA_V1.names).cast(
            COLD_SCHEMA_V1.with_metadata(
                {**COLD_SCHEMA_V1.metadata, SHAPES_KEY: table.schema.metadata[SHAPES_KEY]}
            )
        )
        write_cold(first, path)
        entry.update(bytes=path.stat().st_size, sha256=sha256_file(path), form="typed/1")
        assert pq.read_schema(path).equals(COLD_SCHEMA_V1, check_metadata=False)
        assert not pq.read_schema(path).equals(FRAME_SCHEMAS[-2], check_metadata=False)
    manifest["cold"]["form"] = "typed/1"
    manifests.save(capture, manifest)
    frames = [(f.recv_ns, f.payload) for f in read_frames(capture)]
    assert frames == lines_of(FIXTURES / "binance-usdm" / "ethusdt_20240808_1min.gz")
    assert run("verify", capture, "--speed", "500x").exit_code == 0
    query = "select * exclude (capture) from {} order by all"
    now, first_form = connect([tmp_path / "now"]), connect([capture])
    for view in ("trades", "quotes", "depth"):
        expected = now.execute(query.format(view)).fetchall()
        assert first_form.execute(query.format(view)).fetchall() == expected and expected, view


def test_a_file_is_compacted_a_block_at_a_time(tmp_path, monkeypatch):
    """A day of millions of frames is compacted in blocks of one row group (its memory is a
    block's): shapes found in later blocks join the file's, and every frame reads back."""
    import rtcap.storage.compact as compaction

    monkeypatch.setattr(compaction, "COLD_ROW_GROUP_ROWS", 4_000)
    capture = tmp_path / "cap"
    source = FIXTURES / "binance-spot" / "ethusdt_20240808_3min.gz"
    import_lines(source, capture, "hftbacktest")
    (report,) = compact(capture)
    (cold,) = capture_files(capture)
    lines = lines_of(source)
    assert pq.read_metadata(cold).num_row_groups == -(-len(lines) // 4_000) >= 4
    assert [(f.recv_ns, f.payload) for f in read_frames(capture)] == lines
    assert report.typed == len(lines) and report.raw <= 8
    assert not [p for p in capture.rglob("*") if p.name.endswith(".tmp")]
    assert run("verify", capture, "--speed", "500x").exit_code == 0


def test_a_compacted_row_group_is_read_in_pieces_in_seq_order(tmp_path, monkeypatch):
    """A replay starts on a compacted row group's first frames: the reader renders it a piece at
    a time, and the pieces are the group's frames in seq order, none left out."""
    import rtcap.storage.compact as compaction
    import rtcap.storage.reader as reader

    monkeypatch.setattr(compaction, "COLD_ROW_GROUP_ROWS", 4_000)
    monkeypatch.setattr(reader, "COLD_PIECE_ROWS", 1_500)
    capture = tmp_path / "cap"
    source = FIXTURES / "binance-spot" / "ethusdt_20240808_3min.gz"
    import_lines(source, capture, "hftbacktest")
    compact(capture)
    tables = list(reader.CaptureReader(capture).tables())
    lines = lines_of(source)
    (cold,) = capture_files(capture)
    metadata = pq.read_metadata(cold)
    groups = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    assert groups[0] == 4_000 and len(groups) >= 4
    pieces = [min(1_500, rows - start) for rows in groups for start in range(0, rows, 1_500)]
    assert [t.num_rows for t in tables] == pieces  # 1,500 + 1,500 + 1,000 of a whole group
    seqs = [s for t in tables for s in t.column("seq").to_pylist()]
    assert seqs == list(range(len(lines)))
    payloads = [p for t in tables for p in t.column("payload").to_pylist()]
    assert payloads == [payload for _, payload in lines]
    group = pq.ParquetFile(cold).read_row_group(0)
    (empty,) = cold_frame_pieces(group.slice(0, 0), 1_500)
    assert empty.num_rows == 0 and empty.schema.equals(FRAME_SCHEMA, check_metadata=False)


def test_a_cold_file_that_does_not_read_back_as_the_hot_one_is_never_switched_to(
    tmp_path, monkeypatch
):
    """Compaction proves the file it wrote: one whose frames differ from the hot file's in any
    field is refused, removed with its spill, and the capture keeps its hot file as it was."""
    import rtcap.storage.compact as compaction
    from rtcap.storage.errors import CaptureError

    capture = tmp_path / "cap"
    source = FIXTURES / "binance-spot" / "ethusdt_20240808_3min.gz"
    import_lines(source, capture, "hftbacktest")
    (hot,) = capture_files(capture)
    before = hot.read_bytes()
    honest = compaction.cold_writer

    def tampering(path, schema):  # every frame's connection number off by one
        writer = honest(path, schema)
        write = writer.write_table

        def write_table(table, **options):
            index = table.schema.get_field_index("conn")
            conn = pc.add(table.column("conn"), 1).cast(pa.int32())
            write(table.set_column(index, table.schema.field(index), conn), **options)

        writer.write_table = write_table
        return writer

    monkeypatch.setattr(compaction, "cold_writer", tampering)
    with pytest.raises(CaptureError, match="changed its frames: nothing was switched"):
        compact(capture)
    assert capture_files(capture) == [hot] and hot.read_bytes() == before
    assert sorted(p.name for p in hot.parent.iterdir()) == [hot.name]
    assert [(f.recv_ns, f.payload) for f in read_frames(capture)] == lines_of(source)
