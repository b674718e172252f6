import orjson
import pytest
from helpers import ES, MNQ, record

from rtcap import instruments
from rtcap.codecs import (
    AutoCodec,
    BinanceCodec,
    DecodeError,
    Notice,
    ProjectXCodec,
    projectx,
    signalr,
    sniff,
)
from rtcap.models import DepthUpdate, Frame, Quote, Trade


def frame(payload: bytes, seq: int = 1, stream: str = "market") -> Frame:
    return Frame(seq, 1_000, payload=payload, stream=stream)


def invocation(target: str, *arguments) -> bytes:
    return record({"type": 1, "target": target, "arguments": list(arguments)})


# --- SignalR framing ---------------------------------------------------------------------


def test_split_records_handles_several_records_and_trailing_partial():
    payload = b'{"type":6}\x1e{"type":1,"target":"x","arguments":[]}\x1e\x1e  '
    assert signalr.split_records(payload) == [
        b'{"type":6}',
        b'{"type":1,"target":"x","arguments":[]}',
    ]
    assert signalr.split_records("{}\x1e") == [b"{}"]


def test_parse_frame_reports_garbled_records_without_raising():
    parsed = signalr.parse_frame(b'{"type":6}\x1e{"type":1,\x1e[1,2]\x1e')
    assert parsed[0] == {"type": 6}
    assert isinstance(parsed[1], signalr.BadRecord) and "invalid JSON" in parsed[1].reason
    assert isinstance(parsed[2], signalr.BadRecord) and "not a JSON object" in parsed[2].reason


def test_handshake_and_control_records():
    assert signalr.is_handshake_response({})
    assert signalr.is_handshake_response({"error": "nope"})
    assert not signalr.is_handshake_response({"type": 6})
    assert (
        signalr.completion("7", error="boom") == b'{"type":3,"invocationId":"7","error":"boom"}\x1e'
    )
    assert signalr.close("bye", True) == b'{"type":7,"error":"bye","allowReconnect":true}\x1e'
    assert orjson.loads(signalr.HANDSHAKE_REQUEST[:-1]) == {"protocol": "json", "version": 1}


# --- ProjectX ----------------------------------------------------------------------------


def test_every_trade_of_a_multi_trade_message_counts():
    prints = [
        {
            "symbolId": "F.US.MNQ",
            "price": 21012.25,
            "timestamp": "2025-09-02T14:31:07.118Z",
            "type": 0,
            "volume": 2,
        },
        {
            "symbolId": "F.US.MNQ",
            "price": 21012.5,
            "timestamp": "2025-09-02T14:31:07.118Z",
            "type": 1,
            "volume": 3,
        },
        {
            "symbolId": "F.US.MNQ",
            "price": 21012.75,
            "timestamp": "2025-09-02T14:31:07.119Z",
            "type": 0,
            "volume": 5,
        },
    ]
    items = ProjectXCodec().decode(frame(invocation("GatewayTrade", MNQ, prints)))
    assert [type(i) for i in items] == [Trade, Trade, Trade]
    assert [(t.price, t.volume, t.side) for t in items] == [
        (21012.25, 2, "buy"),
        (21012.5, 3, "sell"),
        (21012.75, 5, "buy"),
    ]
    assert sum(t.volume for t in items) == 10
    assert items[2].exch_ns - items[0].exch_ns == 1_000_000
    assert all(t.symbol == "MNQ" and type(t.volume) is int for t in items)


def test_single_object_trade_payload_and_es_alias():
    one = {
        "symbolId": "F.US.EP",
        "price": 6001.5,
        "timestamp": "2025-09-02T14:31:07Z",
        "type": 1,
        "volume": 1,
    }
    (trade,) = ProjectXCodec().decode(frame(invocation("GatewayTrade", ES, one)))
    assert (trade.symbol, trade.price, trade.side) == ("ES", 6001.5, "sell")


def test_quote_needs_only_symbol():
    (quote,) = ProjectXCodec().decode(
        frame(invocation("GatewayQuote", MNQ, {"symbol": "F.US.MNQ"}))
    )
    assert isinstance(quote, Quote)
    assert (quote.symbol, quote.bid, quote.ask, quote.last, quote.exch_ns) == (
        "MNQ",
        None,
        None,
        None,
        None,
    )


def test_depth_list_or_object_with_volume_or_size():
    levels = [
        {"timestamp": "2025-09-02T14:31:07.100Z", "type": 2, "price": 21000.0, "volume": 7},
        {"timestamp": "2025-09-02T14:31:07.200Z", "type": 1, "price": 21000.25, "size": 4},
        {"timestamp": "2025-09-02T14:31:07.150Z", "type": 6, "price": 0, "volume": 0},
    ]
    (depth,) = ProjectXCodec().decode(frame(invocation("GatewayDepth", MNQ, levels)))
    assert isinstance(depth, DepthUpdate)
    assert [(lv.side, lv.price, lv.volume) for lv in depth.levels] == [
        ("bid", 21000.0, 7),
        ("ask", 21000.25, 4),
        ("reset", 0.0, 0),
    ]
    assert depth.exch_ns == projectx.parse_iso_ns("2025-09-02T14:31:07.200Z")
    (single,) = ProjectXCodec().decode(frame(invocation("GatewayDepth", MNQ, levels[1])))
    assert single.levels[0].volume == 4


@pytest.mark.parametrize(
    "payload",
    [
        b'{"type":1,"target":"GatewayTrade","arguments":["CON.F.US.MNQ.Z25",[{"price":"abc","volume":1}]]}\x1e',
        b'{"type":1,"target":"GatewayTrade","arguments":["CON.F.US.MNQ.Z25"]}\x1e',
        b'{"type":1,"target":"GatewayQuote","arguments":["CON.F.US.MNQ.Z25",{"symbol":"F.US.MNQ","bestBid":true}]}\x1e',
        b'{"type":1,"target":"GatewayTrade","arguments":["CON.F.US.MNQ.Z25",[{"price":1.0,"volume":1,"timestamp":"bad"}]]}\x1e',
        b"not json at all\x1e",
        b"[1,2,3]\x1e",
    ],
)
def test_malformed_frames_become_errors_not_exceptions(payload):
    items = ProjectXCodec().decode(frame(payload))
    assert len(items) == 1 and isinstance(items[0], DecodeError)
    assert items[0].seq == 1 and items[0].excerpt()


def test_bad_print_rejects_the_whole_message_once():
    prints = [{"price": 1.0, "volume": 1}, {"price": None, "volume": 1}]
    items = ProjectXCodec().decode(frame(invocation("GatewayTrade", MNQ, prints)))
    assert len(items) == 1 and isinstance(items[0], DecodeError)


def test_close_completion_and_logout_become_notices_and_pings_are_silent():
    payload = (
        b'{"type":6}\x1e'
        + signalr.completion("3", error="Unknown method")
        + signalr.close("server going away", True)
        + invocation("GatewayLogout")
        + invocation("GatewayUserOrder", {"action": 1, "data": {}})
    )
    items = ProjectXCodec().decode(frame(payload))
    assert [type(i) for i in items] == [Notice, Notice, Notice]
    assert items[0].level == "error" and "Unknown method" in items[0].reason
    assert items[1].reason == "hub closed: server going away"
    assert items[1].detail == {"allowReconnect": True}
    assert items[2].level == "warning" and "logged out" in items[2].reason


def test_subscription_invocations_round_trip():
    calls = projectx.subscription_messages(MNQ)
    assert calls == [
        ("SubscribeContractQuotes", [MNQ]),
        ("SubscribeContractTrades", [MNQ]),
        ("SubscribeContractMarketDepth", [MNQ]),
    ]
    assert projectx.parse_subscription("UnsubscribeContractTrades", [MNQ, ES]) == (
        "unsubscribe",
        "trades",
        [MNQ, ES],
    )
    assert projectx.parse_subscription("SubscribeOrders", [1]) is None


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("CON.F.US.EP.Z25", "ES"),
        ("F.US.ENQ", "NQ"),
        ("CON.F.US.MNQ.H26", "MNQ"),
        ("F.US.MES", "MES"),
        ("CON.F.US.CLE.Z25", "CL"),
        ("F.US.GCE", "GC"),
        ("CON.F.US.TYA.H26", "ZN"),
        ("CON.F.US.EU6.H26", "6E"),
        ("CON.F.US.NEW.H26", "NEW"),  # not in the table: its root is its name
    ],
)
def test_instrument_names_use_trader_symbols(key, name):
    assert instruments.symbol_of(key) == name


# --- Binance -----------------------------------------------------------------------------


def wrap(stream: str, data: dict) -> bytes:
    return orjson.dumps({"stream": stream, "data": data})


def test_binance_trade_agg_trade_book_ticker_and_depth():
    codec = BinanceCodec()
    (trade,) = codec.decode(
        frame(
            wrap(
                "ethusdt@trade",
                {
                    "e": "trade",
                    "E": 1723101000123,
                    "s": "ETHUSDT",
                    "t": 42,
                    "p": "2501.10",
                    "q": "0.5000",
                    "T": 1723101000120,
                    "m": True,
                    "M": True,
                },
            )
        )
    )
    assert (trade.symbol, trade.price, trade.volume, trade.side, trade.trade_id) == (
        "ETHUSDT",
        2501.10,
        0.5,
        "sell",
        42,
    )
    assert trade.exch_ns == 1723101000120 * 1_000_000 and not trade.aggregated
    (agg,) = codec.decode(
        frame(
            wrap(
                "ethusdt@aggTrade",
                {
                    "e": "aggTrade",
                    "E": 1,
                    "s": "ETHUSDT",
                    "a": 7,
                    "p": "1",
                    "q": "2",
                    "f": 100,
                    "l": 105,
                    "T": 2,
                    "m": False,
                    "M": True,
                },
            )
        )
    )
    assert (agg.trade_id, agg.aggregated, agg.side) == (7, True, "buy")
    (book,) = codec.decode(
        frame(
            wrap(
                "ethusdt@bookTicker",
                {
                    "u": 400900217,
                    "s": "ETHUSDT",
                    "b": "2501.00",
                    "B": "3.5",
                    "a": "2501.01",
                    "A": "1.25",
                },
            )
        )
    )
    assert (book.bid, book.ask, book.bid_size, book.ask_size, book.exch_ns) == (
        2501.0,
        2501.01,
        3.5,
        1.25,
        None,
    )
    (depth,) = codec.decode(
        frame(
            wrap(
                "ethusdt@depth@100ms",
                {
                    "e": "depthUpdate",
                    "E": 1723101000200,
                    "s": "ETHUSDT",
                    "U": 10,
                    "u": 12,
                    "b": [["2500.9", "1.0"]],
                    "a": [["2501.2", "0"]],
                },
            )
        )
    )
    assert (depth.first_id, depth.last_id) == (10, 12)
    assert [(lv.side, lv.price, lv.volume) for lv in depth.levels] == [
        ("bid", 2500.9, 1.0),
        ("ask", 2501.2, 0.0),
    ]


def test_binance_rest_snapshot_takes_the_streams_symbol_and_replies_are_ignored():
    codec = BinanceCodec()
    codec.decode(
        frame(
            wrap(
                "ethusdt@bookTicker",
                {"u": 1, "s": "ETHUSDT", "b": "1", "B": "1", "a": "2", "A": "1"},
            )
        )
    )
    (snap,) = codec.decode(
        frame(orjson.dumps({"lastUpdateId": 99, "bids": [["1", "2"]], "asks": [["3", "4"]]}))
    )
    assert (snap.symbol, snap.snapshot, snap.last_id, len(snap.levels)) == ("ETHUSDT", True, 99, 2)
    assert codec.decode(frame(b'{"result":null,"id":1}')) == []
    (bad,) = codec.decode(frame(b'{"stream":"x@trade","data":{"e":"trade","p":"1"}}'))
    assert isinstance(bad, DecodeError) and "KeyError" in bad.reason


def test_sniff_and_auto_codec_pick_per_stream():
    px = invocation("GatewayTrade", MNQ, [{"price": 1.0, "volume": 1}])
    bn = wrap(
        "ethusdt@trade",
        {"e": "trade", "E": 1, "s": "ETHUSDT", "t": 1, "p": "1", "q": "1", "T": 1, "m": True},
    )
    assert (sniff(px), sniff(bn), sniff(b"hello")) == ("projectx", "binance", "raw")
    codec = AutoCodec()
    assert codec.decode(frame(b"hello", stream="a")) == []
    assert codec.decode(frame(px, stream="a"))[0].symbol == "MNQ"
    assert codec.decode(frame(bn, stream="b"))[0].symbol == "ETHUSDT"
