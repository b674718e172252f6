"""What every codec returns besides market events: decode errors and protocol notices.

Decoding never raises past a codec. A frame that cannot be understood becomes a
:class:`DecodeError` (counted, and reported as an ``ERROR`` event); protocol messages worth a
user's attention (a hub close, a handshake error, a failed invocation) become a :class:`Notice`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from rtcap.models import DepthUpdate, Frame, Quote, Trade

RAW_EXCERPT = 200


@dataclass(slots=True)
class DecodeError:
    """A frame (or one record of it) that could not be decoded."""

    seq: int
    recv_ns: int
    reason: str
    raw: bytes = b""

    def excerpt(self) -> str:
        """The first bytes of the offending input, for logs and events."""
        return self.raw[:RAW_EXCERPT].decode("utf-8", "replace")


@dataclass(slots=True)
class Notice:
    """A protocol-level message: ``level`` is ``"warning"`` or ``"error"``."""

    seq: int
    recv_ns: int
    level: str
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)


Decoded = Quote | Trade | DepthUpdate | DecodeError | Notice
# One print of a multi-print message: (price, volume, aggressor side, exchange ns or None).
Print = tuple[float, int | float, str | None, int | None]


class DecodeSink(Protocol):
    """Receives what a codec finds, in order. Trades come as plain arguments because they are
    the hot path; the pipeline is a sink, and :class:`Collector` builds objects instead."""

    def trade(
        self,
        symbol: str,
        price: float,
        volume: float,
        side: str | None,
        exch_ns: int | None,
        recv_ns: int,
        seq: int,
        trade_id: int | None = None,
        aggregated: bool = False,
    ) -> None: ...

    def trades(self, symbol: str, prints: list[Print], recv_ns: int, seq: int) -> None:
        """Several prints of one message for one instrument, in order (same as one
        :meth:`trade` call per print)."""
        ...

    def quote(self, quote: Quote) -> None: ...

    def depth(self, update: DepthUpdate) -> None: ...

    def error(self, error: DecodeError) -> None: ...

    def notice(self, notice: Notice) -> None: ...


class Collector:
    """A sink that keeps everything as objects: what :meth:`SinkCodec.decode` returns."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[Decoded] = []

    def trade(
        self,
        symbol: str,
        price: float,
        volume: int | float,
        side: str | None,
        exch_ns: int | None,
        recv_ns: int,
        seq: int,
        trade_id: int | None = None,
        aggregated: bool = False,
    ) -> None:
        self.items.append(
            Trade(symbol, price, volume, side, exch_ns, recv_ns, seq, trade_id, aggregated)
        )

    def trades(self, symbol: str, prints: list[Print], recv_ns: int, seq: int) -> None:
        for price, volume, side, exch_ns in prints:
            self.items.append(Trade(symbol, price, volume, side, exch_ns, recv_ns, seq))

    def quote(self, quote: Quote) -> None:
        self.items.append(quote)

    def depth(self, update: DepthUpdate) -> None:
        self.items.append(update)

    def error(self, error: DecodeError) -> None:
        self.items.append(error)

    def notice(self, notice: Notice) -> None:
        self.items.append(notice)


class Codec(Protocol):
    """Turns one data frame into market events (plus errors and notices), in order."""

    name: str

    def decode_into(self, frame: Frame, sink: DecodeSink) -> None:
        """Report what ``frame`` holds to ``sink``; must not raise."""
        ...

    def decode(self, frame: Frame) -> list[Decoded]:
        """What ``frame`` holds, as objects; must not raise."""
        ...


class SinkCodec:
    """Base for codecs: implement :meth:`decode_into`; :meth:`decode` collects from it."""

    name = "base"

    def decode_into(self, frame: Frame, sink: DecodeSink) -> None:
        raise NotImplementedError

    def decode(self, frame: Frame) -> list[Decoded]:
        collector = Collector()
        self.decode_into(frame, collector)
        return collector.items


class NullCodec(SinkCodec):
    """For feeds recorded raw with no decoder: every frame yields nothing."""

    name = "raw"

    def decode_into(self, frame: Frame, sink: DecodeSink) -> None:
        return None


def to_float(value: Any) -> float:
    """A JSON number or decimal string to float; ``ValueError``/``TypeError`` otherwise."""
    if value is None or isinstance(value, bool):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


def to_number(value: Any) -> int | float:
    """Like :func:`to_float` but JSON integers stay ``int`` (contract counts stay exact)."""
    if type(value) is int:
        return value
    return to_float(value)


def optional_float(value: Any) -> float | None:
    """Like :func:`to_float` but ``None`` stays ``None``."""
    return None if value is None else to_float(value)
