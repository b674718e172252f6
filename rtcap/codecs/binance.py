"""Binance spot/futures websocket messages (combined or raw streams, and REST depth snapshots).

Prices and quantities arrive as decimal strings and become floats here; the exact strings stay in
the capture. Trade ids (``t``/``a``) and depth update ids (``U``/``u``) are carried on the events
so the sequence checker can spot gaps.
"""

from __future__ import annotations

from typing import Any

import orjson

from rtcap.codecs.base import DecodeError, DecodeSink, SinkCodec, to_float
from rtcap.models import DepthLevel, DepthUpdate, Frame, Quote

MS = 1_000_000

# The fields the cold form keeps as typed columns (storage.shapes), per message kind: JSON key →
# column. Everything else in a message (keys, their order, the symbol, constant flags) stays in
# its shape's template. This is the codec's own reading of each field, stated once.
TYPED_FIELDS: dict[str, dict[str, str]] = {
    "trade": {
        "s": "instrument",
        "E": "event_ms",
        "T": "time_ms",
        "t": "trade_id",
        "p": "price",
        "q": "qty",
        "m": "maker",
        "b": "buyer_order",
        "a": "seller_order",
    },
    "aggTrade": {
        "s": "instrument",
        "E": "event_ms",
        "T": "time_ms",
        "a": "trade_id",
        "p": "price",
        "q": "qty",
        "f": "first_trade_id",
        "l": "last_trade_id",
        "m": "maker",
    },
    "bookTicker": {
        "s": "instrument",
        "u": "update_id",
        "E": "event_ms",
        "T": "time_ms",
        "b": "bid",
        "B": "bid_qty",
        "a": "ask",
        "A": "ask_qty",
    },
    "depthUpdate": {
        "s": "instrument",
        "E": "event_ms",
        "T": "time_ms",
        "U": "first_update_id",
        "u": "update_id",
        "pu": "prev_update_id",
        "b": "bids",
        "a": "asks",
    },
    "depthSnapshot": {
        "lastUpdateId": "update_id",
        "E": "event_ms",
        "T": "time_ms",
        "bids": "bids",
        "asks": "asks",
    },
}


def message_kind(data: dict[str, Any]) -> str | None:
    """Which market message ``data`` (a message, unwrapped from its combined-stream envelope)
    is: a key of :data:`TYPED_FIELDS`, or ``None`` for anything else (subscription replies,
    unknown events)."""
    kind = data.get("e")
    if kind in ("trade", "aggTrade", "depthUpdate"):
        return str(kind)
    if kind == "bookTicker" or (kind is None and "b" in data and "a" in data and "u" in data):
        return "bookTicker"  # futures name it; spot's carries no event type at all
    if "lastUpdateId" in data and "bids" in data:  # REST or partial-depth snapshot
        return "depthSnapshot"
    return None


def message_data(message: Any) -> tuple[dict[str, Any] | None, str | None]:
    """(the message, its combined stream's name) of a decoded frame; ``(None, None)`` when the
    frame is not a JSON object."""
    if type(message) is not dict:
        return None, None
    stream = message.get("stream")
    data = message.get("data", message) if stream is not None else message
    return (data, stream) if type(data) is dict else (None, None)


def stream_symbol(stream: str) -> str:
    """``ethusdt@depth@100ms`` → ``ETHUSDT``."""
    return stream.split("@", 1)[0].upper()


class BinanceCodec(SinkCodec):
    """Decoder for Binance market streams. Remembers the last symbol seen per stream so a REST
    depth snapshot (which names none) is attributed to the feed it was recorded with."""

    name = "binance"

    def __init__(self) -> None:
        self._last_symbol: dict[str, str] = {}

    def decode_into(self, frame: Frame, sink: DecodeSink) -> None:
        try:
            message = orjson.loads(frame.payload)
        except orjson.JSONDecodeError as exc:
            sink.error(DecodeError(frame.seq, frame.recv_ns, f"invalid JSON: {exc}", frame.payload))
            return
        if type(message) is not dict:
            sink.error(DecodeError(frame.seq, frame.recv_ns, "not a JSON object", frame.payload))
            return
        data, stream = message_data(message)
        if data is None:
            sink.error(DecodeError(frame.seq, frame.recv_ns, "bad message: its data is not an "
                                   "object", frame.payload))  # fmt: skip
            return
        try:
            self._dispatch(data, stream, frame, sink)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            sink.error(
                DecodeError(frame.seq, frame.recv_ns, f"bad message: {exc!r}", frame.payload)
            )

    def _dispatch(
        self, data: dict[str, Any], stream: str | None, frame: Frame, sink: DecodeSink
    ) -> None:
        kind = message_kind(data)
        if kind == "trade" or kind == "aggTrade":
            symbol = data["s"]
            price, volume, maker = to_float(data["p"]), to_float(data["q"]), data["m"]
            trade_id = data["t"] if kind == "trade" else data["a"]
            exch_ns = data["T"] * MS
            self._last_symbol[frame.stream] = symbol
            sink.trade(
                symbol,
                price,
                volume,
                "sell" if maker else "buy",
                exch_ns,
                frame.recv_ns,
                frame.seq,
                trade_id,
                kind == "aggTrade",
            )
        elif kind == "depthUpdate":
            update = DepthUpdate(
                data["s"],
                _levels(data.get("b", ()), "bid") + _levels(data.get("a", ()), "ask"),
                data["E"] * MS,
                frame.recv_ns,
                frame.seq,
                data["U"],
                data["u"],
                prev_id=data.get("pu"),
            )
            self._last_symbol[frame.stream] = update.symbol
            sink.depth(update)
        elif kind == "bookTicker":
            symbol = data.get("s") or stream_symbol(stream or "")
            exch = data.get("T") or data.get("E")  # futures carry times, spot none
            self._last_symbol[frame.stream] = symbol
            # Decimal strings: float() of a str is what to_float does, without the call.
            # Fields convert in the order they always did, so a bad message fails the same way.
            bid = data["b"]
            bid = float(bid) if type(bid) is str else to_float(bid)
            ask = data["a"]
            ask = float(ask) if type(ask) is str else to_float(ask)
            exch_ns = exch * MS if exch else None
            bid_size = data["B"]
            bid_size = float(bid_size) if type(bid_size) is str else to_float(bid_size)
            ask_size = data["A"]
            ask_size = float(ask_size) if type(ask_size) is str else to_float(ask_size)
            sink.quote(
                Quote(
                    symbol,
                    bid,
                    ask,
                    None,
                    None,
                    exch_ns,
                    frame.recv_ns,
                    frame.seq,
                    bid_size,
                    ask_size,
                )
            )
        elif kind == "depthSnapshot":
            symbol = (
                stream_symbol(stream)
                if stream
                else frame.symbol or self._last_symbol.get(frame.stream, "")
            )
            sink.depth(
                DepthUpdate(
                    symbol,
                    _levels(data["bids"], "bid") + _levels(data["asks"], "ask"),
                    data["E"] * MS if "E" in data else None,
                    frame.recv_ns,
                    frame.seq,
                    None,
                    data["lastUpdateId"],
                    snapshot=True,
                )
            )
        # anything else (subscription replies, unknown event types) is recorded, not decoded


def _levels(pairs: Any, side: str) -> list[DepthLevel]:
    # decimal strings: float() of a str is what to_float does, without the call
    return [
        DepthLevel(
            float(price) if type(price) is str else to_float(price),
            float(size) if type(size) is str else to_float(size),
            side,
        )
        for price, size in pairs
    ]


def binance_hints(payload: bytes) -> tuple[str | None, str | None, int | None]:
    """(stream kind, symbol, exchange ns) of a Binance frame, as far as it tells cheaply."""
    try:
        message = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None, None, None
    if not isinstance(message, dict):
        return None, None, None
    stream = message.get("stream")
    data = message.get("data", message)
    if not isinstance(data, dict):
        return None, None, None
    if stream:
        symbol, _, kind = stream.partition("@")
        exch = data.get("T") or data.get("E")
        return kind, symbol.upper(), exch * MS if isinstance(exch, int) else None
    if "lastUpdateId" in data:
        return "depthSnapshot", None, None
    return None, None, None
