"""ProjectX Gateway market hub: SignalR records to quotes, trades and depth, and back.

Payload shapes are normalised on read, never on write: trades and depth arrive as a list or a
single object, depth sizes as ``volume`` or ``size``, and every quote field but ``symbol`` may be
missing. Every trade of a multi-trade message counts.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from orjson import JSONDecodeError, loads

from rtcap.accel import speedups
from rtcap.codecs import signalr
from rtcap.codecs.base import (
    DecodeError,
    DecodeSink,
    Notice,
    SinkCodec,
    optional_float,
    to_float,
    to_number,
)
from rtcap.instruments import ContractNames
from rtcap.models import DepthLevel, DepthUpdate, Frame, Quote
from rtcap.timeutil import format_iso_ns, parse_iso_ns

QUOTE = "GatewayQuote"
TRADE = "GatewayTrade"
DEPTH = "GatewayDepth"
LOGOUT = "GatewayLogout"
RS = signalr.RS
MARKET_TARGETS = frozenset({QUOTE, TRADE, DEPTH})

CHANNEL_METHODS = {
    "quotes": ("SubscribeContractQuotes", "UnsubscribeContractQuotes"),
    "trades": ("SubscribeContractTrades", "UnsubscribeContractTrades"),
    "depth": ("SubscribeContractMarketDepth", "UnsubscribeContractMarketDepth"),
}
CHANNEL_OF_TARGET = {QUOTE: "quotes", TRADE: "trades", DEPTH: "depth"}
_METHOD_TO_CHANNEL = {
    method: (action, channel)
    for channel, pair in CHANNEL_METHODS.items()
    for action, method in zip(("subscribe", "unsubscribe"), pair, strict=True)
}

# The fields the cold form keeps as typed columns (storage.shapes), per target: JSON key →
# column. A quote is one object; trades and depth carry a list of items (or one bare item),
# each item's fields kept as list columns (``item_*``), one element per item. Everything else
# (the contract id, ``symbol``, ``symbolId``, key order) stays in the frame's shape. This is
# the codec's own reading of each field, stated once.
TYPED_FIELDS: dict[str, dict[str, str]] = {
    QUOTE: {
        "lastPrice": "last",
        "bestBid": "bid",
        "bestAsk": "ask",
        "change": "change",
        "changePercent": "change_percent",
        "open": "open",
        "high": "high",
        "low": "low",
        "volume": "session_volume",
        "lastUpdated": "updated_ns",
        "timestamp": "quote_ns",
    },
    TRADE: {
        "price": "item_price",
        "volume": "item_volume",
        "type": "item_type",
        "timestamp": "item_ns",
    },
    DEPTH: {
        "price": "item_price",
        "volume": "item_volume",
        "currentVolume": "item_current_volume",
        "type": "item_type",
        "timestamp": "item_ns",
    },
}
ITEM_TARGETS = frozenset({TRADE, DEPTH})  # their payload is a list of items

DEPTH_SIDES = {1: "ask", 2: "bid", 3: "ask", 4: "bid", 5: "trade", 6: "reset", 9: "bid", 10: "ask"}
TRADE_SIDES = {0: "buy", 1: "sell"}

# The compiled decoder of a frame that is one plain GatewayTrade, GatewayQuote or GatewayDepth
# record (None: pure Python only).
decode_trades: Callable[..., None] | None = (
    speedups.projectx_decode if speedups is not None else None
)
if speedups is not None:
    speedups.projectx_types(Quote, DepthLevel, DepthUpdate, DEPTH_SIDES)


def subscription_messages(
    contract_id: str,
    channels: tuple[str, ...] = ("quotes", "trades", "depth"),
    *,
    subscribe: bool = True,
) -> list[tuple[str, list[Any]]]:
    """The (method, arguments) invocations that (un)subscribe one contract to ``channels``."""
    index = 0 if subscribe else 1
    return [(CHANNEL_METHODS[channel][index], [contract_id]) for channel in channels]


def parse_subscription(target: str, arguments: list[Any]) -> tuple[str, str, list[str]] | None:
    """``SubscribeContractTrades(["CON…"])`` → ``("subscribe", "trades", ["CON…"])``.

    Several contracts as positional arguments (an old SDK bug) are all returned. ``None`` when
    ``target`` is not a market subscription method.
    """
    found = _METHOD_TO_CHANNEL.get(target)
    if found is None:
        return None
    contracts = [arg for arg in arguments if isinstance(arg, str)]
    return found[0], found[1], contracts


class ProjectXCodec(SinkCodec):
    """Decoder for ``/hubs/market`` frames (SignalR JSON records)."""

    name = "projectx"

    def __init__(self, names: ContractNames | None = None) -> None:
        self._name = names or ContractNames()
        # contract id → trader symbol: the names' own dict, so a contract roll reaches here
        self._symbols: dict[str, str] = self._name.known
        if decode_trades is not None:
            # the compiled decoder stands in for this instance's method
            self.decode_into = partial(decode_trades, self._symbols, self.decode_into)  # type: ignore[method-assign]

    def decode_into(self, frame: Frame, sink: DecodeSink) -> None:
        """Decode any frame (the pure-Python reference). With the compiled fast paths, each
        codec's ``decode_into`` is instead ``rtcap._speedups.projectx_decode``, which sends a
        plain trade, quote or depth frame of a known contract straight to the sink and every
        other frame here."""
        pieces = frame.payload.split(RS)
        if len(pieces) == 2 and not pieces[1]:
            # The common frame: one record. Trades take a fast path without helper calls.
            record = pieces[0]
            try:
                message = loads(record)
            except JSONDecodeError as exc:
                sink.error(DecodeError(frame.seq, frame.recv_ns, f"invalid JSON: {exc}", record))
                return
            if type(message) is dict and message.get("target") == TRADE:
                arguments = message.get("arguments")
                if message.get("type") == 1 and type(arguments) is list and len(arguments) >= 2:
                    try:
                        contract_id, payload = arguments[0], arguments[1]
                        symbol = type(contract_id) is str and self._symbols.get(contract_id)
                        if symbol and type(payload) is list and len(payload) == 1:
                            # One print from a known contract: the commonest message of all.
                            item = payload[0]
                            stamp = item.get("timestamp")
                            price = item["price"]
                            volume = item["volume"]
                            sink.trade(
                                symbol,
                                price if type(price) is float else to_float(price),
                                volume if type(volume) is int else to_number(volume),
                                TRADE_SIDES.get(item.get("type")),
                                parse_iso_ns(stamp) if stamp else None,
                                frame.recv_ns,
                                frame.seq,
                            )
                        else:
                            self._trades(contract_id, payload, frame, sink)
                    except (TypeError, ValueError, KeyError, AttributeError) as exc:
                        sink.error(
                            DecodeError(frame.seq, frame.recv_ns, f"bad {TRADE}: {exc!r}", record)
                        )
                    return
            self._message(message, record, frame, sink)
            return
        for record in pieces:
            if record.strip():
                self._message(signalr.parse_record(record), record, frame, sink)

    def _message(self, message: Any, record: bytes, frame: Frame, sink: DecodeSink) -> None:
        if type(message) is not dict:
            reason = message.reason if isinstance(message, signalr.BadRecord) else "not an object"
            sink.error(DecodeError(frame.seq, frame.recv_ns, reason, record))
            return
        kind = message.get("type")
        if kind == signalr.INVOCATION:
            self._invocation(message, record, frame, sink)
        elif kind == signalr.CLOSE:
            error = message.get("error")
            sink.notice(
                Notice(
                    frame.seq,
                    frame.recv_ns,
                    "error" if error else "warning",
                    f"hub closed: {error}" if error else "hub closed the connection",
                    {"allowReconnect": message.get("allowReconnect")},
                )
            )
        elif kind == signalr.COMPLETION and message.get("error"):
            sink.notice(
                Notice(
                    frame.seq,
                    frame.recv_ns,
                    "error",
                    f"invocation {message.get('invocationId')} failed: {message['error']}",
                )
            )
        elif kind is None and message.get("error"):
            sink.notice(Notice(frame.seq, frame.recv_ns, "error", f"handshake: {message['error']}"))

    def _invocation(
        self, message: dict[str, Any], record: bytes, frame: Frame, sink: DecodeSink
    ) -> None:
        target = message.get("target")
        if target not in MARKET_TARGETS:
            if target == LOGOUT:
                sink.notice(Notice(frame.seq, frame.recv_ns, "warning", "gateway logged out"))
            return
        arguments = message.get("arguments")
        if type(arguments) is not list or len(arguments) < 2:
            sink.error(DecodeError(frame.seq, frame.recv_ns, f"{target} without 2 args", record))
            return
        contract_id, payload = arguments[0], arguments[1]
        if type(contract_id) is str and contract_id not in self._symbols:
            # named once, so the compiled path knows this contract's next frames
            self._symbols[contract_id] = self._name(contract_id)
        try:
            if target == TRADE:
                self._trades(contract_id, payload, frame, sink)
            elif target == QUOTE:
                sink.quote(self._quote(contract_id, payload, frame))
            else:
                sink.depth(self._depth(contract_id, payload, frame))
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            sink.error(DecodeError(frame.seq, frame.recv_ns, f"bad {target}: {exc!r}", record))

    def _trades(self, contract_id: Any, payload: Any, frame: Frame, sink: DecodeSink) -> None:
        symbol = None
        if type(contract_id) is str:
            symbol = self._symbols.get(contract_id)
            if symbol is None:
                symbol = self._symbols[contract_id] = self._name(contract_id)
        seq, recv_ns = frame.seq, frame.recv_ns
        if type(payload) is not list:
            payload = [payload]
        if len(payload) == 1:
            item = payload[0]
            stamp = item.get("timestamp")
            price = item["price"]
            volume = item["volume"]
            sink.trade(
                symbol or self._name(item["symbolId"]),
                price if type(price) is float else to_float(price),
                volume if type(volume) is int else to_number(volume),
                TRADE_SIDES.get(item.get("type")),
                parse_iso_ns(stamp) if stamp else None,
                recv_ns,
                seq,
            )
            return
        prints = []
        names: list[str] | None = None if symbol else []
        last_stamp = exch_ns = None
        # Validate every print before reporting any: a bad print rejects the message as one
        # error instead of delivering half of it.
        for item in payload:
            stamp = item.get("timestamp")
            if stamp != last_stamp:  # prints of one message usually share a stamp
                last_stamp = stamp
                exch_ns = parse_iso_ns(stamp) if stamp else None
            price = item["price"]
            volume = item["volume"]
            prints.append(
                (
                    price if type(price) is float else to_float(price),
                    volume if type(volume) is int else to_number(volume),
                    TRADE_SIDES.get(item.get("type")),
                    exch_ns,
                )
            )
            if names is not None:
                names.append(self._name(item["symbolId"]))
        if symbol:  # one contract named all prints (names is None)
            sink.trades(symbol, prints, recv_ns, seq)
            return
        assert names is not None
        trade = sink.trade
        for name, (price, volume, side, exch_ns) in zip(names, prints, strict=True):
            trade(name, price, volume, side, exch_ns, recv_ns, seq)

    def _quote(self, contract_id: Any, payload: dict[str, Any], frame: Frame) -> Quote:
        key = contract_id if isinstance(contract_id, str) else payload["symbol"]
        stamp = payload.get("timestamp") or payload.get("lastUpdated")
        return Quote(
            self._name(key),
            optional_float(payload.get("bestBid")),
            optional_float(payload.get("bestAsk")),
            optional_float(payload.get("lastPrice")),
            optional_float(payload.get("volume")),
            parse_iso_ns(stamp) if stamp else None,
            frame.recv_ns,
            frame.seq,
        )

    def _depth(self, contract_id: Any, payload: Any, frame: Frame) -> DepthUpdate:
        items = payload if isinstance(payload, list) else [payload]
        levels = []
        latest = None
        last_stamp: str | None = None
        stamp_ns = 0
        for item in items:
            size = item.get("volume", item.get("size"))
            kind = item.get("type")
            levels.append(
                DepthLevel(
                    to_float(item["price"]),
                    0 if size is None else to_number(size),
                    DEPTH_SIDES.get(kind, "other"),
                    kind,
                )
            )
            stamp = item.get("timestamp")
            if stamp:
                if stamp != last_stamp:  # the levels of one update usually share a stamp
                    last_stamp, stamp_ns = stamp, parse_iso_ns(stamp)
                latest = max(latest or 0, stamp_ns)
        key = contract_id if isinstance(contract_id, str) else ""
        return DepthUpdate(self._name(key), levels, latest, frame.recv_ns, frame.seq)


def record_target_and_contract(payload: bytes) -> tuple[str | None, str | None]:
    """Cheap pushdown hints for the first market record of a frame (target, contract id)."""
    for record in signalr.split_records(payload):
        message = signalr.parse_record(record)
        if isinstance(message, dict) and message.get("type") == signalr.INVOCATION:
            arguments = message.get("arguments")
            contract = arguments[0] if isinstance(arguments, list) and arguments else None
            return message.get("target"), contract if isinstance(contract, str) else None
    return None, None


# --- encoding (the simulator and the gateway speak this side) ------------------------------


def encode_trades(
    contract_id: str, symbol_id: str, prints: list[tuple[int, float, int, int]]
) -> bytes:
    """A ``GatewayTrade`` record from ``(exch_ns, price, volume, type)`` prints."""
    payload = [
        {
            "symbolId": symbol_id,
            "price": price,
            "timestamp": format_iso_ns(ns),
            "type": side,
            "volume": volume,
        }
        for ns, price, volume, side in prints
    ]
    return signalr.encode(signalr.invocation(TRADE, [contract_id, payload]))


def encode_quote(contract_id: str, fields: dict[str, Any]) -> bytes:
    """A ``GatewayQuote`` record; ``fields`` are the gateway's quote fields."""
    return signalr.encode(signalr.invocation(QUOTE, [contract_id, fields]))


def encode_depth(contract_id: str, levels: list[dict[str, Any]]) -> bytes:
    """A ``GatewayDepth`` record from gateway depth-level dicts."""
    return signalr.encode(signalr.invocation(DEPTH, [contract_id, levels]))
