"""The compiled fast paths (rtcap._speedups) against their pure-Python references.

Every input, well-formed or not, must give what the pure path gives: the same decoded items
(compared by ``repr``, so ``1`` and ``1.0`` differ) and the same errors, and the same frames
from the same Arrow tables. The generated inputs deliberately sit on the edges of what the
compiled reader accepts, so both its own answers and its hand-offs to the pure path are tested.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from functools import partial

import orjson
import pyarrow as pa
import pytest
from helpers import event_signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtcap import accel
from rtcap import book as book_module
from rtcap.bars import BarBuilder
from rtcap.codecs import projectx
from rtcap.codecs.projectx import ProjectXCodec
from rtcap.events import EventType
from rtcap.models import DepthLevel, DepthUpdate, Frame
from rtcap.pipeline import InstrumentState, Pipeline
from rtcap.simulator import MarketSimulator
from rtcap.storage import schema
from rtcap.storage.journal import encode_block
from rtcap.timeutil import format_iso_ns, parse_iso_ns

speedups = accel.speedups
needs_speedups = pytest.mark.skipif(
    speedups is None, reason=f"no compiled fast paths in this process: {accel.describe()}"
)
EXAMPLES = int(os.environ.get("RTCAP_FUZZ_EXAMPLES", "300"))


def test_the_compiled_fast_paths_are_built_where_required():
    if os.environ.get("RTCAP_REQUIRE_SPEEDUPS") != "1" and speedups is None:
        pytest.skip(f"not required here and not built: {accel.describe()}")
    assert speedups is not None, accel.describe()
    assert accel.describe().startswith("compiled")
    assert projectx.decode_trades is speedups.projectx_decode
    assert ProjectXCodec().decode_into.func is speedups.projectx_decode


def test_rtcap_pure_selects_the_pure_python_modules():
    code = (
        "from rtcap import accel; from rtcap.codecs import projectx; "
        "print(accel.speedups, projectx.decode_trades, accel.describe())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "RTCAP_PURE": "1"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "None None pure Python (RTCAP_PURE is set)"


# --- the GatewayTrade reader -------------------------------------------------------------

CANONICAL = (
    b'{"type":1,"target":"GatewayTrade","arguments":["CON.F.US.MNQ.U25",[{"symbolId":"F.US.MNQ",'
    b'"price":21071.25,"timestamp":"2025-09-02T13:30:00.033Z","type":1,"volume":2},'
    b'{"symbolId":"F.US.MNQ","price":21071,"timestamp":"2025-09-02T13:30:00.034Z","type":0,'
    b'"volume":5}]]}\x1e'
)


SYMBOLS = {"CON.F.US.MNQ.U25": "MNQ", "CON.F.US.EP.Z25": "ES", "": ""}


@needs_speedups
def test_a_canonical_frame_is_read_by_the_compiled_path():
    symbol, prints = speedups.projectx_trades(CANONICAL, SYMBOLS)
    assert symbol == "MNQ"
    assert prints == [
        (21071.25, 2, "sell", 1756819800033000000),
        (21071.0, 5, "buy", 1756819800034000000),
    ]
    assert type(prints[1][0]) is float and type(prints[1][1]) is int


@needs_speedups
@pytest.mark.parametrize(
    "payload",
    [
        CANONICAL[:-1],  # no record separator
        CANONICAL + b"\x1e",  # two separators
        CANONICAL.replace(b'"type":1,', b'"type":1.0,', 1),
        CANONICAL.replace(b'"type":1,', b'"type":true,', 1),
        CANONICAL.replace(b"GatewayTrade", b"GatewayQuote"),
        CANONICAL.replace(b"MNQ.U25", b"MN\\u0051.U25"),  # an escape
        CANONICAL.replace(b"F.US.MNQ", "F.US.MNQ\u00e9".encode()),  # non-ASCII
        CANONICAL.replace(b"21071.25", b"2.107125e4"),  # exponent
        CANONICAL.replace(b"21071.25", b"021071.25"),  # leading zero: invalid JSON
        CANONICAL.replace(b'"volume":2', b'"volume":2.0'),
        CANONICAL.replace(b'"volume":2', b'"volume":2,"volume":3'),  # duplicate key
        CANONICAL.replace(b".033Z", b".0331Z"),  # seven-digit .NET fraction
        CANONICAL.replace(b"09-02T", b"02-30T"),  # no such day
        CANONICAL.replace(b"]]}", b"],7]}"),  # a third argument
        CANONICAL.replace(b'"type":0', b'"type":false'),
        b'{"type":1,"target":"GatewayTrade","arguments":["C",[]]}\x1e',
        b"",
        CANONICAL.replace(b"MNQ.U25", b"MNQ.Z25"),  # a contract not named yet
    ],
)
def test_anything_outside_the_strict_shape_is_handed_back(payload):
    assert speedups.projectx_trades(payload, SYMBOLS) is None


def _mostly(valid: st.SearchStrategy[str], edges: st.SearchStrategy[str]) -> st.SearchStrategy:
    """Usually a value the compiled reader takes, sometimes one on or past its edge."""
    return st.one_of(*[valid] * 7, edges)


_CONTRACTS = _mostly(
    st.sampled_from(['"CON.F.US.MNQ.U25"', '"CON.F.US.EP.Z25"']),
    st.sampled_from(['""', '"CON.F.US.MN\\u0051.U25"', '"CON.F.US.MNQ.U25\u00e9"', "7", "null"]),
)
_PRICE = st.floats(-1e6, 1e6).map(lambda value: repr(round(value, 2)))
_PRICES = _mostly(
    _PRICE,
    st.one_of(
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
        st.integers(-(10**20), 10**20).map(str),
        st.sampled_from(['"21000.5"', "null", "1e3", "-0.0", "01.5", "1.", "-", "true", "[1]"]),
        st.from_regex(r"-?[1-9][0-9]{0,25}\.[0-9]{1,25}", fullmatch=True),
    ),
)
_VOLUME = st.integers(0, 10**6).map(str)
_VOLUMES = _mostly(
    _VOLUME,
    st.one_of(
        st.integers(-(10**19), 10**19).map(str),
        st.sampled_from(["2.5", '"3"', "true", "null", "-0", "0", "1e2"]),
    ),
)
_SIDE = st.sampled_from(["0", "1"])
_SIDES = _mostly(
    _SIDE,
    st.sampled_from(["2", "-0", "null", "true", "false", "0.0", '"1"']),
)


def _stamp(moment: datetime) -> str:
    return '"' + moment.strftime("%Y-%m-%dT%H:%M:%S.") + f'{moment.microsecond // 1000:03d}Z"'


_STAMP = st.datetimes(datetime(2000, 1, 1), datetime(2100, 12, 31)).map(_stamp)
_STAMPS = _mostly(
    _STAMP,
    st.one_of(
        st.datetimes(datetime(1890, 1, 1), datetime(2210, 12, 31)).map(_stamp),
        st.sampled_from(
            [
                '"2025-02-30T00:00:00.000Z"',
                '"2024-02-29T23:59:59.999Z"',
                '"2025-09-02T24:00:00.000Z"',
                '"2025-09-02T13:60:00.000Z"',
                '""',
                "null",
                "0",
                '"2025-09-02T13:30:00.0331234Z"',
                '"2025-09-02 13:30:00.033Z"',
                '"2025-09-02T13:30:00.033+01:00"',
                '"2025-09-02T13:30:00Z"',
                '"garbage"',
                '"2025-9-02T13:30:00.033Z"',
            ]
        ),
    ),
)
_SPACE = st.sampled_from(["", "", "", " ", "\n", "\t "])


@st.composite
def _object(draw, fields: dict[str, st.SearchStrategy[str]], extra: list[str]) -> str:
    names = draw(st.lists(st.sampled_from([*fields, *extra]), max_size=len(fields) + 2))
    if draw(st.integers(0, 7)):  # mostly every field, once, in any order
        names = draw(st.permutations(list(fields)))
    parts = []
    for name in names:
        value = (
            draw(fields[name])
            if name in fields
            else draw(
                st.sampled_from(
                    ['"x"', "null", "7", "true", "[1]", '{"a":1}', "1e400", "123456789012345678901"]
                )
            )
        )
        parts.append(f'{draw(_SPACE)}"{name}"{draw(_SPACE)}:{draw(_SPACE)}{value}{draw(_SPACE)}')
    return "{" + ",".join(parts) + "}"


_PRINT = _object(
    {
        "symbolId": st.sampled_from(['"F.US.MNQ"', '"F.US.EP"', "null", "3"]),
        "price": _PRICES,
        "timestamp": _STAMPS,
        "type": _SIDES,
        "volume": _VOLUMES,
    },
    ["extra", "symbolID"],
)


@st.composite
def trade_payload(draw) -> bytes:
    prints = draw(st.lists(_PRINT, min_size=draw(st.sampled_from([1, 1, 1, 0])), max_size=4))
    shape = draw(st.sampled_from(["list"] * 8 + ["object", "null"]))
    body = (
        "[" + ",".join(prints) + "]"
        if shape == "list" or not prints
        else prints[0]
        if shape == "object"
        else "null"
    )
    return _market_frame(draw, "GatewayTrade", "GatewayQuote", body)


def _market_frame(draw, target: str, other_target: str, body: str) -> bytes:
    """One SignalR invocation of ``target`` on a drawn contract with ``body`` as its second
    argument, its envelope mostly as the gateway sends it and sometimes not."""
    arguments = f"[{draw(_CONTRACTS)},{draw(_SPACE)}{body}"
    if draw(st.integers(0, 9)) == 0:
        arguments += ',"more"'
    arguments += "]"
    record = draw(
        _object(
            {
                "type": st.sampled_from(["1"] * 12 + ["1.0", "true", "3", '"1"']),
                "target": st.sampled_from([f'"{target}"'] * 12 + [f'"{other_target}"']),
                "arguments": st.just(arguments),
            },
            ["invocationId"],
        )
    )
    tail = draw(st.sampled_from(["\x1e"] * 16 + ["", "\x1e\x1e", " \x1e", '\x1e{"type":6}\x1e']))
    return (draw(_SPACE) + record + tail).encode()


@st.composite
def canonical_payload(draw) -> bytes:
    """A frame of the shape the compiled reader takes: every field valid, in any order."""
    fields = {
        "symbolId": st.just('"F.US.MNQ"'),
        "price": _PRICE,
        "timestamp": _STAMP,
        "type": _SIDE,
        "volume": _VOLUME,
    }
    prints = []
    for _ in range(draw(st.integers(1, 5))):
        order = draw(st.permutations(list(fields)))
        prints.append("{" + ",".join(f'"{name}":{draw(fields[name])}' for name in order) + "}")
    top = {
        "type": "1",
        "target": '"GatewayTrade"',
        "arguments": f'["CON.F.US.MNQ.U25",[{",".join(prints)}]]',
    }
    order = draw(st.permutations(list(top)))
    return ("{" + ",".join(f'"{name}":{top[name]}' for name in order) + "}\x1e").encode()


ANY_TRADE_PAYLOAD = st.one_of(trade_payload(), canonical_payload())


def _pure_codec() -> ProjectXCodec:
    saved = projectx.decode_trades
    projectx.decode_trades = None
    try:
        return ProjectXCodec()
    finally:
        projectx.decode_trades = saved


def _decoded(codec: ProjectXCodec, frame: Frame) -> list[str]:
    return [repr(item) for item in codec.decode(frame)]


@needs_speedups
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ANY_TRADE_PAYLOAD, min_size=1, max_size=6))
def test_every_trade_frame_decodes_as_the_pure_path_decodes_it(payloads):
    fast, pure = ProjectXCodec(), _pure_codec()  # each keeps its own contract names
    for seq, payload in enumerate(payloads):
        frame = Frame(seq, 1_756_819_800_000_000_000 + seq, payload=payload)
        assert _decoded(fast, frame) == _decoded(pure, frame), payload


@needs_speedups
@settings(max_examples=EXAMPLES * 3, deadline=None)
@given(st.integers(0, len(CANONICAL) - 1), st.binary(max_size=3), st.integers(0, 3))
def test_a_damaged_frame_decodes_as_the_pure_path_decodes_it(at, insert, cut):
    payload = CANONICAL[:at] + insert + CANONICAL[at + cut :]
    frame = Frame(3, 1_756_819_800_000_000_000, payload=payload)
    fast, pure = ProjectXCodec(), _pure_codec()
    fast.decode(Frame(0, 0, payload=CANONICAL))  # both now know the contract
    pure.decode(Frame(0, 0, payload=CANONICAL))
    assert _decoded(fast, frame) == _decoded(pure, frame)


@needs_speedups
def test_the_generated_frames_exercise_both_the_fast_path_and_the_hand_off():
    read = handed_back = 0

    @settings(max_examples=400, deadline=None, database=None)
    @given(ANY_TRADE_PAYLOAD)
    def count(payload):
        nonlocal read, handed_back
        if speedups.projectx_trades(payload, SYMBOLS) is None:
            handed_back += 1
        else:
            read += 1

    count()
    assert read > 20 and handed_back > 20, (read, handed_back)


# --- the GatewayQuote and GatewayDepth readers ---------------------------------------------

_OPTIONAL_PRICES = _mostly(
    _PRICE,
    st.one_of(
        st.integers(-(10**20), 10**20).map(str),
        st.sampled_from(["null", '"21000.5"', "true", "1e3", "-0", "0", "[1]", '""']),
    ),
)
_DEPTH_TYPES = _mostly(
    st.sampled_from(["1", "2", "3", "4", "5", "6", "9", "10"]),
    st.sampled_from(["0", "7", "-1", "null", "2.0", "true", '"2"', "12345678901234567890"]),
)
_QUOTE = _object(
    {
        "symbol": st.sampled_from(['"F.US.MNQ"', '"F.US.EP"', "null"]),
        "symbolName": st.sampled_from(['"/MNQ"', '"/ES"']),
        "lastPrice": _OPTIONAL_PRICES,
        "bestBid": _OPTIONAL_PRICES,
        "bestAsk": _OPTIONAL_PRICES,
        "change": _PRICE,
        "volume": _mostly(_VOLUME, _VOLUMES),
        "lastUpdated": _STAMPS,
        "timestamp": _STAMPS,
    },
    ["extra", "open"],
)
_LEVEL = _object(
    {
        "timestamp": _STAMPS,
        "type": _DEPTH_TYPES,
        "price": _PRICES,
        "volume": _VOLUMES,
        "currentVolume": _VOLUME,
    },
    ["size", "extra"],
)


@st.composite
def book_payload(draw) -> bytes:
    """A GatewayQuote or GatewayDepth frame, mostly of the shape the compiled reader takes."""
    target = draw(st.sampled_from(["GatewayQuote", "GatewayDepth"]))
    if target == "GatewayQuote":
        body = draw(_mostly(_QUOTE, st.sampled_from(["[]", "null", "{}", "7"])))
    else:
        levels = draw(st.lists(_LEVEL, min_size=draw(st.sampled_from([1, 1, 1, 0])), max_size=6))
        body = draw(
            _mostly(
                st.just("[" + ",".join(levels) + "]"),
                st.sampled_from([levels[0] if levels else "{}", "null", "[[]]"]),
            )
        )
    return _market_frame(draw, target, "GatewayTrade", body)


@st.composite
def canonical_book_payload(draw) -> bytes:
    """A quote or depth frame of the shape the compiled readers take, fields in any order."""

    def members(fields):
        order = draw(st.permutations(list(fields)))
        return "{" + ",".join(f'"{name}":{draw(fields[name])}' for name in order) + "}"

    stamp = st.one_of(_STAMP, st.sampled_from(['""', "null"]))
    optional = st.one_of(_PRICE, _VOLUME, st.just("null"))
    if draw(st.booleans()):
        target = "GatewayQuote"
        body = members(
            {
                "symbol": st.just('"F.US.MNQ"'),
                "bestBid": optional,
                "bestAsk": optional,
                "lastPrice": optional,
                "volume": optional,
                "timestamp": stamp,
                "lastUpdated": stamp,
            }
        )
    else:
        target = "GatewayDepth"
        count = draw(st.integers(1, 6))
        level = {
            "timestamp": stamp,
            "type": st.sampled_from(["1", "2", "3", "4", "5", "6", "9", "10", "0", "null"]),
            "price": _PRICE,
            "volume": st.one_of(_VOLUME, _PRICE, st.just("null")),
            "currentVolume": _VOLUME,
        }
        body = "[" + ",".join(members(level) for _ in range(count)) + "]"
    return (
        f'{{"type":1,"target":"{target}","arguments":["CON.F.US.MNQ.U25",{body}]}}\x1e'
    ).encode()


ANY_BOOK_PAYLOAD = st.one_of(book_payload(), canonical_book_payload())
ANY_MARKET_PAYLOAD = st.one_of(ANY_BOOK_PAYLOAD, ANY_BOOK_PAYLOAD, ANY_TRADE_PAYLOAD)


@needs_speedups
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ANY_MARKET_PAYLOAD, min_size=1, max_size=6))
def test_every_quote_and_depth_frame_decodes_as_the_pure_path_decodes_it(payloads):
    fast, pure = ProjectXCodec(), _pure_codec()
    for seq, payload in enumerate(payloads):
        frame = Frame(seq, 1_756_819_800_000_000_000 + seq, payload=payload)
        assert _decoded(fast, frame) == _decoded(pure, frame), payload


def _depth(*levels: str) -> bytes:
    body = ",".join(levels)
    return f'{{"type":1,"target":"GatewayDepth","arguments":["CON.F.US.EP.Z25",[{body}]]}}\x1e'.encode()


def _quote(fields: str) -> bytes:
    return f'{{"type":1,"target":"GatewayQuote","arguments":["CON.F.US.EP.Z25",{{{fields}}}]}}\x1e'.encode()


_AT = '"2025-09-02T13:30:00.033Z"'
_LATER = '"2025-09-02T13:30:01.500Z"'


@needs_speedups
@pytest.mark.parametrize(
    "payload",
    [
        _depth(f'{{"price":1.5,"volume":null,"size":5,"type":2,"timestamp":{_AT}}}'),  # 0
        _depth('{"price":1.5,"size":5,"type":1}'),  # size stands in for volume
        _depth('{"price":1.5,"size":null,"type":1}', '{"price":2,"type":3}'),
        _depth('{"price":1.5,"volume":2.5,"type":7}', '{"price":1,"volume":1,"type":null}'),
        _depth('{"price":7,"volume":1,"type":6,"timestamp":"1960-05-01T00:00:00.000Z"}'),  # max 0
        _depth(
            f'{{"price":1,"volume":1,"type":2,"timestamp":{_LATER}}}',
            f'{{"price":2,"volume":1,"type":1,"timestamp":{_AT}}}',  # earlier: latest stays
            '{"price":3,"volume":1,"type":1,"timestamp":""}',
        ),
        _quote(f'"bestBid":1,"bestAsk":2.5,"timestamp":"","lastUpdated":{_AT}'),
        _quote(f'"bestBid":null,"timestamp":null,"lastUpdated":{_LATER}'),
        _quote(f'"lastUpdated":{_AT},"timestamp":{_LATER},"volume":12'),
        _quote('"lastPrice":-0.0,"symbol":"F.US.EP"'),
        _quote(""),
    ],
)
def test_quote_and_depth_edge_cases_are_read_as_the_pure_path_reads_them(payload):
    """Each of these the compiled readers take themselves (no hand-off), and must read as
    ProjectXCodec._quote / _depth do: which stamp wins, a null volume beside a size, the
    floor of 0 under the latest stamp, unknown depth types."""
    handed_back = []
    fast, pure = ProjectXCodec(), _pure_codec()
    for codec in (fast, pure):  # both now know the contract
        codec.decode(Frame(0, 0, payload=_depth('{"price":1,"volume":1,"type":1}')))
    general = fast.decode_into.args[1]
    fast.decode_into = partial(
        speedups.projectx_decode,
        fast._symbols,
        lambda frame, sink: handed_back.append(frame) or general(frame, sink),
    )
    frame = Frame(1, 1_756_819_800_000_000_000, payload=payload)
    assert _decoded(fast, frame) == _decoded(pure, frame)
    assert not handed_back


@needs_speedups
def test_generated_quote_and_depth_frames_exercise_the_compiled_readers():
    """Counts frames projectx_decode reads itself (it calls sink.quote/sink.depth without
    handing the frame to the general decoder) and frames it hands back."""
    read, handed_back = {"quote": 0, "depth": 0}, 0

    class Sink:
        def quote(self, quote):
            read["quote"] += 1

        def depth(self, update):
            read["depth"] += 1

        def __getattr__(self, name):
            return lambda *args: None

    def general(frame, sink):
        nonlocal handed_back
        handed_back += 1

    @settings(max_examples=400, deadline=None, database=None)
    @given(ANY_BOOK_PAYLOAD)
    def count(payload):
        speedups.projectx_decode(SYMBOLS, general, Frame(0, 0, payload=payload), Sink())

    count()
    assert read["quote"] > 20 and read["depth"] > 20 and handed_back > 20, (read, handed_back)


@needs_speedups
def test_the_simulator_s_quotes_and_depth_take_the_compiled_readers():
    """The golden digests compare both paths on the simulator: that comparison must reach
    the compiled quote and depth readers, not only the hand-off."""
    codec, handed_back = ProjectXCodec(), []
    general = codec.decode_into.args[1]
    codec.decode_into = partial(
        speedups.projectx_decode,
        codec._symbols,
        lambda frame, sink: handed_back.append(frame.target) or general(frame, sink),
    )
    frames = [f for f in MarketSimulator(3, ["MNQ", "ES"]).frames(max_frames=5000) if f.target]
    items = [item for frame in frames for item in codec.decode(frame)]
    quotes = sum(type(item).__name__ == "Quote" for item in items)
    depth = sum(type(item).__name__ == "DepthUpdate" for item in items)
    assert quotes > 500 and depth > 500
    assert len(handed_back) <= 4, handed_back  # each contract's first frame names it


@needs_speedups
@settings(max_examples=EXAMPLES * 3, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_prices_are_the_doubles_orjson_reads(value):
    text = repr(value).encode()
    if b"e" in text or b"inf" in text:
        return  # exponents go to the general parser, tested above
    payload = CANONICAL.replace(b"21071.25", text)
    _, prints = speedups.projectx_trades(payload, SYMBOLS)
    expected = orjson.loads(text)
    assert struct.pack("<d", prints[0][0]) == struct.pack("<d", float(expected))


@needs_speedups
@settings(max_examples=EXAMPLES * 3, deadline=None)
@given(st.datetimes(datetime(1900, 1, 1), datetime(2200, 12, 31, 23, 59, 59)))
def test_timestamps_are_the_nanoseconds_parse_iso_ns_gives(moment):
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000, tzinfo=UTC)
    ns = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000
    stamp = format_iso_ns(ns)
    payload = CANONICAL.replace(b"2025-09-02T13:30:00.033Z", stamp.encode())
    _, prints = speedups.projectx_trades(payload, SYMBOLS)
    assert prints[0][3] == parse_iso_ns(stamp) == ns


# --- frames from Arrow buffers ----------------------------------------------------------


def _pure_frames(table: pa.Table, chunk: int) -> list[list[Frame]]:
    saved = schema.speedups
    schema.speedups = None
    try:
        return list(schema.frame_chunks(table, chunk))
    finally:
        schema.speedups = saved


_FRAME = st.builds(
    Frame,
    st.integers(0, 2**62),
    st.integers(0, 2**62),
    st.integers(-(2**62), 2**62),
    st.integers(0, 9),
    st.sampled_from(["market", "user", "clock"]),
    st.sampled_from(["text", "binary", "gap", "clock"]),
    st.binary(max_size=40),
    st.one_of(st.none(), st.sampled_from(["GatewayTrade", "depthUpdate", ""])),
    st.one_of(st.none(), st.sampled_from(["MNQ", "ETHUSDT", "é"])),
    st.one_of(st.none(), st.integers(-(2**62), 2**62)),
)


@needs_speedups
@settings(max_examples=EXAMPLES, deadline=None)
@given(
    st.lists(_FRAME, max_size=60),
    st.integers(0, 10),
    st.integers(1, 25),
    st.sampled_from(["frames/2", "large_binary", "int8_index", "chunked", "unsigned"]),
)
def test_frames_from_buffers_equal_the_frames_from_lists(frames, skip, chunk, layout):
    table = schema.FrameColumns.of(frames).to_table().slice(skip)  # a non-zero array offset
    if layout == "large_binary":
        table = table.set_column(
            table.schema.get_field_index("payload"),
            "payload",
            table.column("payload").cast(pa.large_binary()),
        )
    elif layout == "int8_index":
        index = table.schema.get_field_index("symbol")
        table = table.set_column(
            index, "symbol", table.column("symbol").cast(pa.dictionary(pa.int8(), pa.string()))
        )
    elif layout == "chunked":
        table = pa.concat_tables([table, table])
    elif layout == "unsigned":
        index = table.schema.get_field_index("conn")
        table = table.set_column(index, "conn", table.column("conn").cast(pa.uint32()))
    got = list(schema.frame_chunks(table, chunk))
    expected = _pure_frames(table, chunk)
    assert [repr(batch) for batch in got] == [repr(batch) for batch in expected]
    copies = 2 if layout == "chunked" else 1
    assert [frame for batch in got for frame in batch] == frames[skip:] * copies
    assert all(len(batch) <= chunk for batch in got)


@needs_speedups
def test_frames_from_buffers_refuse_what_they_do_not_read():
    frame = Frame(1, 2, payload=b"x")
    table = schema.FrameColumns.of([frame]).to_table()
    spec = schema._buffer_specs(table)
    assert speedups.frames_from_arrays(Frame, 0, 1, spec) == [frame]
    assert speedups.frames_from_arrays(Frame, 1, 1, spec) is None  # past the buffers
    assert speedups.frames_from_arrays(Frame, 0, 1, [*spec[:3], ("nope", *spec[3][1:])]) is None
    assert schema.table_to_frames(table.slice(0, 0)) == []


# --- the journal's memtable: columns from frames ------------------------------------------


def _pure_block(frames: list[Frame]) -> bytes:
    saved = schema.speedups
    schema.speedups = None
    try:
        return encode_block(schema.FrameColumns.of(frames).to_table())
    finally:
        schema.speedups = saved


class _Int(int):
    pass


class _Str(str):
    __slots__ = ()


# values the compiled builder does not take: each hands the whole block to pyarrow
_ODD_VALUES = [
    ("seq", True),
    ("seq", _Int(3)),
    ("seq", 2**63),
    ("recv_ns", None),
    ("conn", 2**31),
    ("conn", -(2**31) - 1),
    ("conn", 1.0),
    ("payload", bytearray(b"ab")),
    ("payload", "text"),
    ("kind", _Str("text")),
    ("stream", None),
    ("symbol", 7),
    ("exch_ns", 2.5),
]


@needs_speedups
@settings(max_examples=EXAMPLES, deadline=None)
@given(
    st.lists(_FRAME, max_size=60),
    st.lists(st.tuples(st.integers(0, 59), st.sampled_from(_ODD_VALUES)), max_size=2),
)
def test_memtable_blocks_are_the_bytes_pyarrow_builds(frames, odd):
    """The journal block of the compiled columns is byte for byte the pure one, and a value
    it does not take gives what pyarrow gives (the same block, or the same error)."""
    for at, (name, value) in odd:
        if frames:
            setattr(frames[at % len(frames)], name, value)
    try:
        expected = _pure_block(frames)
    except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
        with pytest.raises(type(exc)):
            schema.FrameColumns.of(frames).to_table()
        return
    assert encode_block(schema.FrameColumns.of(frames).to_table()) == expected


@needs_speedups
def test_the_memtable_builds_plain_frames_compiled_and_hands_odd_ones_back():
    frames = list(MarketSimulator(5, ["MNQ", "ES"]).frames(max_frames=500))
    frames += [Frame(500, 9, stream="market", kind="open"), Frame(501, 10, exch_ns=None)]
    built = speedups.frame_columns(frames, Frame, schema._MEMTABLE_SPECS)
    assert built is not None
    by_name = dict(zip(schema.FRAME_FIELDS, built, strict=True))
    offsets, data = by_name["payload"]
    assert data == b"".join(f.payload for f in frames)
    assert struct.unpack(f"<{len(frames) + 1}i", offsets)[-1] == len(data)
    indices, (validity, nulls), words = by_name["target"]
    assert nulls == 2 and validity is not None
    assert [words[i] for i in struct.unpack(f"<{len(frames)}i", indices)[:500]] == [
        f.target for f in frames[:500]
    ]
    assert by_name["seq"][1] == (None, 0)  # no nulls: no bitmap, as pyarrow leaves it
    for name, value in _ODD_VALUES:
        odd = [Frame(0, 1), Frame(1, 2)]
        setattr(odd[1], name, value)
        assert speedups.frame_columns(odd, Frame, schema._MEMTABLE_SPECS) is None, name
    assert speedups.frame_columns([Frame(0, 1), object()], Frame, schema._MEMTABLE_SPECS) is None
    assert speedups.frame_columns([], Frame, schema._MEMTABLE_SPECS) is not None


# --- the in-window trade fold ---------------------------------------------------------------

T0 = 1_756_819_800_000_000_000  # a minute boundary
SECOND = 1_000_000_000
FOLD_WANTED = [
    {EventType.NEW_BAR},
    {EventType.NEW_BAR, EventType.BAR_CLOSED, EventType.GAP},
    {EventType.NEW_BAR, EventType.TRADE_TICK},
    {EventType.BAR_CLOSED, EventType.DATA_UPDATE},
]
# mostly what decoders send, sometimes what only the pure handlers take
_fold_price = st.one_of(
    st.floats(100.0, 101.0).map(lambda p: round(p, 2)),
    st.sampled_from([100, float("nan"), -0.0]),
)
_fold_volume = st.one_of(st.integers(1, 9), st.sampled_from([0.5, 2.0, True, 10**30]))


@st.composite
def _fold_calls(draw) -> list[tuple]:
    """Trade-handler calls of a few instruments (and depth between them), times moving forward
    over a few minutes, with exchange times that are sometimes missing and sometimes out of
    order."""
    calls, now = [], T0
    for _ in range(draw(st.integers(1, 60))):
        now += draw(st.sampled_from([0, 1, SECOND, 20 * SECOND, 61 * SECOND]))
        symbol = draw(st.sampled_from(["MNQ", "ES", "NEWSYM"]))

        exch = partial(draw, st.one_of(st.none(), st.integers(now - 90 * SECOND, now + SECOND)))
        kind = draw(st.sampled_from(["trade", "trade", "trades", "depth", "advance", "odd"]))
        if kind == "trade":
            trade_id = draw(st.one_of(st.none(), st.integers(1, 5)))
            args = (symbol, draw(_fold_price), draw(_fold_volume), "buy", exch(), now, 1)
            calls.append(("trade", (*args, trade_id) if trade_id is not None else args))
        elif kind == "trades":
            prints = [
                (draw(_fold_price), draw(_fold_volume), "sell", exch())
                for _ in range(draw(st.integers(1, 4)))
            ]
            calls.append(("trades", (symbol, prints, now, 2)))
        elif kind == "depth":  # ProjectX levels: the touch that later prints are noted with
            levels = [
                DepthLevel(draw(_fold_price), draw(st.integers(0, 3)), "other", dom)
                for dom in draw(st.lists(st.sampled_from([1, 2, 6]), min_size=1, max_size=4))
            ]
            calls.append(("depth", (DepthUpdate(symbol, levels, exch(), now, 5),)))
        elif kind == "advance":
            calls.append(("advance", (now,)))
        else:  # shapes only the pure handlers take (or refuse)
            odd = draw(
                st.sampled_from(
                    [
                        ("trades", (symbol, [], now, 3)),
                        ("trades", (symbol, [(100.5, 1, "buy")], now, 3)),
                        ("trades", (symbol, ((100.5, 1, "buy", None),), now, 3)),
                        ("trade", (symbol, 100.5, 1, "buy", None, float(now), 4)),
                        ("trade", (symbol, 100.5, 1, "buy", None, now)),
                    ]
                )
            )
            calls.append(odd)
    return calls


def _run_fold_calls(pipeline, calls) -> list:
    """What each call gave: its events, or the error it raised."""
    results = []
    for handler, args in calls:
        pipeline._out = out = []
        try:
            if handler == "advance":
                out.extend(pipeline.advance_to(*args))
            else:
                getattr(pipeline._sink, handler)(*args)
            results.append([event_signature(event) for event in out])
        except Exception as error:  # the error itself is what is compared
            results.append(f"{type(error).__name__}: {error}")
    return results


def _instrument_states(pipeline) -> list:
    return [
        (
            symbol,
            repr((state.trades, state.volume, state.last_trade_price, state.last_event_ns)),
            {label: repr(state.builder.bars(label)) for label in state.builder.series},
            repr(state.recent_trades),
        )
        for symbol, state in sorted(pipeline.instruments.items())
    ]


@needs_speedups
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_fold_calls(), st.sampled_from(FOLD_WANTED), st.booleans())
def test_the_trade_fold_leaves_what_the_pure_handlers_leave(calls, wanted, books):
    def pipeline(compiled: bool) -> Pipeline:
        made = Pipeline(
            ["MNQ", "ES"], ["1min", "5min"], codec="projectx", wanted=set(wanted), books=books
        )
        assert isinstance(made._sink.trade, speedups.TradeFold)
        if not compiled:
            made._sink.trade, made._sink.trades = made._on_trade, made._on_trades
        return made

    compiled, pure = pipeline(True), pipeline(False)
    assert _run_fold_calls(compiled, calls) == _run_fold_calls(pure, calls)
    assert _instrument_states(compiled) == _instrument_states(pure)


class _Counting:
    """A fallback handler that counts the calls it was given."""

    def __init__(self, handler) -> None:
        self.handler, self.calls = handler, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.handler(*args, **kwargs)


@needs_speedups
def test_the_trade_fold_folds_in_window_prints_and_hands_the_rest_back():
    wanted = {EventType.NEW_BAR}
    pipeline = Pipeline(["MNQ"], ["1min", "5min"], codec="projectx", wanted=wanted)
    single, many = _Counting(pipeline._on_trade), _Counting(pipeline._on_trades)
    fold = partial(
        speedups.TradeFold,
        instruments=pipeline.instruments,
        wanted=wanted,
        refused=(EventType.TRADE_TICK, EventType.DATA_UPDATE),
        state_cls=InstrumentState,
        builder_cls=BarBuilder,
    )
    trade, trades = fold(single, many=False), fold(many, many=True)
    pipeline._out = out = []
    trade("MNQ", 100.25, 2, "buy", None, T0 + SECOND, 1)  # opens the bars: the pure handler
    assert (single.calls, len(out)) == (1, 2)
    trade("MNQ", 100.5, 1, "sell", T0 + 2 * SECOND, T0 + 3 * SECOND, 2)  # in the window
    trades(
        "MNQ", [(99.75, 3, "buy", None), (100.0, 2, "sell", T0 + 4 * SECOND)], T0 + 5 * SECOND, 3
    )
    trade("MNQ", 100.0, 1, "buy", None, T0 + 6 * SECOND, 4, None, False)  # no trade id to check
    assert (single.calls, many.calls, len(out)) == (1, 0, 2)
    state = pipeline.instruments["MNQ"]
    assert (state.trades, state.volume, state.last_trade_price) == (5, 9, 100.0)
    assert state.last_event_ns == T0 + 6 * SECOND
    bar = state.builder.forming("1min")
    assert (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.trades) == (
        100.25,
        100.5,
        99.75,
        100.0,
        9,
        5,
    )
    trade("MNQ", 100.0, 1, "buy", None, T0 + 7 * SECOND, 5, 77)  # a trade id: the pure check
    trade("MNQ", 100.0, 0.5, "buy", None, T0 + 7 * SECOND, 5)  # a decimal: summed exactly there
    trade("MNQ", 100.0, True, "buy", None, T0 + 7 * SECOND, 6)  # a bool volume
    trades("MNQ", [(100.0, 1, "buy", T0 - SECOND)], T0 + 8 * SECOND, 7)  # before the window
    trade("ES", 5000.0, 1, "buy", None, T0 + 8 * SECOND, 8)  # an instrument not made yet
    wanted.add(EventType.TRADE_TICK)  # the bus's set grew: ticks are events now
    trade("MNQ", 100.0, 1, "buy", None, T0 + 9 * SECOND, 9)
    assert (single.calls, many.calls) == (6, 1)
    assert [event.type for event in out[2:]] == [EventType.TRADE_TICK]
    with pytest.raises(TypeError, match="no writable __slots__ field builder"):
        fold(single, many=False, state_cls=Frame)


# --- order-book levels ----------------------------------------------------------------------

_book_price = st.one_of(
    st.sampled_from([99.5, 100.0, 100.25, 100.5, 101.0, 101.25]),
    st.sampled_from([100, float("nan"), float("inf"), -0.0, "100.0", None]),
)
_book_size = st.one_of(
    st.sampled_from([0.0, 0, 1.5, 2, 3.0]),
    st.sampled_from([-1.0, float("nan"), float("inf"), True, "2", None]),
)
_book_level = st.builds(
    DepthLevel,
    _book_price,
    _book_size,
    st.sampled_from(["bid", "ask", "bid", "ask", "trade", "reset", "other"]),
    st.sampled_from([1, 2, 3, 4, 5, 6, 9, 10, 7, None]),
)


def _apply_all(updates, sides, track) -> list:
    """What each update did to a fresh book: refused count or error, then the book itself."""
    book, results = book_module.OrderBook(), []
    for ns, levels in enumerate(updates):
        changed = [] if track else None
        try:
            results.append((book.apply_levels(levels, ns, changed, sides), repr(changed)))
        except Exception as error:  # the error itself is what is compared
            results.append(f"{type(error).__name__}: {error}")
    results.append(
        repr((book.bids, book.asks, book.bid_ns, book.ask_ns, book._bid_prices, book._ask_prices))
    )
    return results


@needs_speedups
@settings(max_examples=EXAMPLES, deadline=None)
@given(
    st.lists(st.lists(_book_level, max_size=8), min_size=1, max_size=8),
    st.sampled_from([None, book_module._DOM_ACTION]),
    st.booleans(),
)
def test_compiled_book_levels_leave_the_book_the_pure_loop_leaves(updates, sides, track):
    compiled = _apply_all(updates, sides, track)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(book_module, "apply_levels_compiled", None)
        pure = _apply_all(updates, sides, track)
    assert compiled == pure


@needs_speedups
def test_compiled_book_levels_set_remove_and_refuse_levels():
    book, changed = book_module.OrderBook(), []
    levels = [
        DepthLevel(100.0, 2.0, "bid"),
        DepthLevel(99.5, 1, "bid"),
        DepthLevel(100.5, 3.0, "ask"),
        DepthLevel(101.0, float("nan"), "ask"),  # refused
        DepthLevel("x", 1.0, "ask"),  # refused: not a number
        DepthLevel(100.0, 0.0, "bid"),  # removed
        DepthLevel(100.25, 1.0, "trade"),  # not a book level
    ]
    assert book.apply_levels(levels, 7, changed) == 2
    assert book.bids == {99.5: 1} and book.asks == {100.5: 3.0}
    assert (book._bid_prices, book._ask_prices, book.bid_ns) == ([99.5], [100.5], {99.5: 7})
    assert changed == [
        ("bid", 100.0, 2.0),
        ("bid", 99.5, 1),
        ("ask", 100.5, 3.0),
        ("bid", 100.0, 0.0),
    ]
    assert book.apply_levels([DepthLevel(100.75, 4.0, "other", 1)], 8, None, {1: "ask"}) == 0
    assert book.best_ask() == (100.5, 3.0) and book._ask_prices == [100.5, 100.75]
    # A type sides does not name is refused; a reset clears both sides, noted with its price.
    levels = [
        DepthLevel(99.0, 1.0, "x", 2),
        DepthLevel(98.0, 1.0, "x", 42),
        DepthLevel(97.5, 0, "x", 6),
        DepthLevel(101.5, 2.0, "x", 1),
        DepthLevel(101.0, 1.0, "x", 5),
    ]
    changed = []
    assert book.apply_levels(levels, 9, changed, book_module._DOM_ACTION) == 1
    assert changed == [("bid", 99.0, 1.0), ("reset", 97.5, 0.0), ("ask", 101.5, 2.0)]
    assert (book.bids, book.asks, book.bid_ns, book.ask_ns) == ({}, {101.5: 2.0}, {}, {101.5: 9})
    assert (book._bid_prices, book._ask_prices) == ([], [101.5])
