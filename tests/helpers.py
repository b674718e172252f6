"""Builders for hand-written test frames (ProjectX records and lifecycle rows)."""

from __future__ import annotations

from typing import Any

import orjson

from rtcap.codecs import projectx, signalr
from rtcap.models import Frame
from rtcap.timeutil import format_iso_ns, parse_iso_ns

MNQ = "CON.F.US.MNQ.Z25"
ES = "CON.F.US.EP.Z25"
LATENCY_NS = 1_000_000


def ns(text: str) -> int:
    """ISO time (UTC when no suffix) → epoch ns."""
    return parse_iso_ns(text)


class Tape:
    """Builds frames with increasing ``seq``; receive time defaults to exchange time + 1 ms."""

    def __init__(self) -> None:
        self.seq = 0
        self.frames: list[Frame] = []

    def _add(self, recv_ns: int, payload: bytes, kind: str = "text", **extra: Any) -> Frame:
        frame = Frame(
            self.seq,
            recv_ns,
            0,
            extra.pop("conn", 0),
            extra.pop("stream", "market"),
            kind,
            payload,
            **extra,
        )
        self.seq += 1
        self.frames.append(frame)
        return frame

    def trade(
        self,
        at: str,
        price: float,
        volume: int = 1,
        side: int = 0,
        *,
        contract: str = MNQ,
        recv: str | None = None,
    ) -> Frame:
        return self.trades(at, [(price, volume, side)], contract=contract, recv=recv)

    def trades(
        self,
        at: str,
        prints: list[tuple[float, int, int]],
        *,
        contract: str = MNQ,
        recv: str | None = None,
    ) -> Frame:
        exch = ns(at)
        record = projectx.encode_trades(
            contract, "F.US." + contract.split(".")[3], [(exch, p, v, s) for p, v, s in prints]
        )
        return self._add(ns(recv) if recv else exch + LATENCY_NS, record, exch_ns=exch)

    def quote(self, at: str, *, contract: str = MNQ, recv: str | None = None, **fields) -> Frame:
        exch = ns(at)
        payload = {"symbol": "F.US." + contract.split(".")[3], "timestamp": format_iso_ns(exch)}
        payload.update(fields)
        record = projectx.encode_quote(contract, payload)
        return self._add(ns(recv) if recv else exch + LATENCY_NS, record, exch_ns=exch)

    def raw(self, at: str, payload: bytes) -> Frame:
        return self._add(ns(at), payload)

    def lifecycle(self, at: str, kind: str, stream: str = "market", **detail: Any) -> Frame:
        return self._add(ns(at), orjson.dumps(detail) if detail else b"", kind, stream=stream)

    def clock(self, at: str) -> Frame:
        return self._add(ns(at), b"", "clock")


def record(message: dict) -> bytes:
    """One SignalR record."""
    return signalr.encode(message)


def write_capture(path, frames, *, flush_every=333, **options):
    """Copy ``frames`` (their seq renumbered) into a new, closed capture at ``path``."""
    from rtcap.storage.capture import CaptureWriter

    writer = CaptureWriter(path, source={"kind": "test"}, fsync="never", **options)
    writer.open()
    for frame in frames:
        writer.append(
            Frame(
                0,
                frame.recv_ns,
                frame.mono_ns,
                frame.conn,
                frame.stream,
                frame.kind,
                frame.payload,
                frame.target,
                frame.symbol,
                frame.exch_ns,
            )
        )
        if writer.pending >= flush_every:
            writer.flush()
        if writer.should_rotate():
            writer.seal_now(writer.rotate())
    return writer
