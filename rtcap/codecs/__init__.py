"""Codecs: decode captured frames into market events (and encode them, for the simulator).

``codec_for(name)`` returns a codec by name; ``AutoCodec`` picks one per stream from the first
data frame it sees.
"""

from __future__ import annotations

from rtcap.codecs import projectx
from rtcap.codecs.base import (
    Codec,
    Collector,
    Decoded,
    DecodeError,
    DecodeSink,
    Notice,
    NullCodec,
    SinkCodec,
)
from rtcap.codecs.binance import BinanceCodec, binance_hints
from rtcap.codecs.projectx import ProjectXCodec
from rtcap.instruments import ContractNames
from rtcap.models import Frame

CODEC_NAMES = ("auto", "projectx", "binance", "raw")


def sniff(payload: bytes) -> str:
    """Guess the protocol of one data frame: ``projectx``, ``binance`` or ``raw``."""
    head = payload[:200].lstrip()
    if payload.rstrip().endswith(b"\x1e"):
        return "projectx"
    if head.startswith(b'{"stream"') or b'"e":"' in head or b'"lastUpdateId"' in head:
        return "binance"
    if b'"u":' in head and b'"b":' in head:
        return "binance"
    return "raw"


class AutoCodec(SinkCodec):
    """Chooses the codec per stream on its first data frame, then sticks to it."""

    name = "auto"

    def __init__(self, names: ContractNames | None = None) -> None:
        self._by_stream: dict[str, Codec] = {}
        self._names = names

    def chosen(self, stream: str) -> Codec | None:
        """The codec picked for ``stream``, once a data frame has decided it."""
        return self._by_stream.get(stream)

    def decode_into(self, frame: Frame, sink: DecodeSink) -> None:
        codec = self._by_stream.get(frame.stream)
        if codec is None:
            guessed = sniff(frame.payload)
            if guessed == "raw":
                return  # undecided: try again on the next frame
            codec = codec_for(guessed, self._names)
            self._by_stream[frame.stream] = codec
        codec.decode_into(frame, sink)


def frame_hints(payload: bytes) -> tuple[str | None, str | None, int | None]:
    """Pushdown hints for a data frame: (target or stream kind, symbol or contract id, exchange
    ns), from the first message it holds; ``(None, None, None)`` when nothing is recognised."""
    kind = sniff(payload)
    if kind == "projectx":
        target, contract = projectx.record_target_and_contract(payload)
        return target, contract, None
    if kind == "binance":
        return binance_hints(payload)
    return None, None, None


def codec_for(name: str, names: ContractNames | None = None) -> Codec:
    """A fresh codec by name (``names``: how ProjectX contract ids are named, when a capture
    recorded the gateway's own answer); ``ValueError`` lists the names that exist."""
    if name == "auto":
        return AutoCodec(names)
    if name == "projectx":
        return ProjectXCodec(names)
    if name == "binance":
        return BinanceCodec()
    if name == "raw":
        return NullCodec()
    raise ValueError(f"unknown codec {name!r}: choose one of {', '.join(CODEC_NAMES)}")


__all__ = [
    "CODEC_NAMES",
    "AutoCodec",
    "BinanceCodec",
    "Codec",
    "Collector",
    "DecodeError",
    "DecodeSink",
    "Decoded",
    "Notice",
    "NullCodec",
    "ProjectXCodec",
    "SinkCodec",
    "codec_for",
    "frame_hints",
    "sniff",
]
