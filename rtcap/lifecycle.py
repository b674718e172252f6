"""Lifecycle rows, one typed vocabulary: what a capture says about its connections.

Besides the frames a feed sent (``text``/``binary``) and the messages rtcap sent (``sent``), a
capture holds rows about the recording itself. Each has one dataclass here, which writes it
(:meth:`to_frame`) and reads it back (:func:`parse`); every writer (the capture session, the
recorder, importers) and every reader (the pipeline, the manifest, recovery, the SQL and Spark
``lifecycle``/``gaps`` views) goes through them.

=========  ===========================  ==============================================
kind       row                          payload (JSON)
=========  ===========================  ==============================================
open       :class:`Opened`              ``url`` (secrets redacted), ``max_message_bytes``
close      :class:`Closed`              ``code``, ``reason``, ``by`` (who closed it)
gap        :class:`ConnectionGap`       ``kind: connection``, ``from_ns``, ``to_ns``,
                                        ``seconds``, ``final``
gap        :class:`SilenceGap`          ``kind: silence``, ``from_ns``, ``to_ns``, ``seconds``
gap        :class:`SequenceGapRow`      ``kind`` (``trade_id``, ``depth_update_id``, ``book``
                                        …), ``symbol``, ``expected``, ``received``,
                                        ``missing``, ``last_applied``
error      :class:`ErrorRow`            ``event`` (``connect_failed``, ``reconnecting``,
                                        ``stale`` …), ``error``, and the event's own fields
clock      :class:`ClockRow`            none: time advanced to ``recv_ns``
=========  ===========================  ==============================================

Readers are tolerant: a payload that is not a JSON object, or lacks a field, still parses
(missing fields are ``None``, unknown ones kept in ``extra``), so a damaged or older capture
never stops a replay.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, ClassVar

import orjson

from rtcap.models import BINARY, CLOCK, CLOSE, ERROR, GAP, OPEN, SENT, TEXT, Frame
from rtcap.sequence import SEQUENCE_GAP_KINDS


class RowKind(StrEnum):
    """The ``kind`` column of a capture."""

    TEXT = TEXT
    BINARY = BINARY
    SENT = SENT
    OPEN = OPEN
    CLOSE = CLOSE
    GAP = GAP
    ERROR = ERROR
    CLOCK = CLOCK


LIFECYCLE_KINDS = frozenset({RowKind.OPEN, RowKind.CLOSE, RowKind.GAP, RowKind.ERROR})


def payload_detail(payload: bytes) -> dict[str, Any]:
    """A lifecycle payload as a dict, in the order written; never raises (a payload that is not
    a JSON object comes back as ``{"raw": …}`` or ``{"value": …}``)."""
    if not payload:
        return {}
    try:
        detail = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return {"raw": payload[:200].decode("utf-8", "replace")}
    return detail if isinstance(detail, dict) else {"value": detail}


@dataclass(frozen=True, slots=True)
class _Row:
    """Fields common to every row: where and when it was written (not in the payload)."""

    KIND: ClassVar[RowKind]
    JSON_KIND: ClassVar[str | None] = None  # the payload's own "kind" (gap rows)

    def payload(self) -> bytes:
        body: dict[str, Any] = {} if self.JSON_KIND is None else {"kind": self.JSON_KIND}
        for item in fields(self):
            if item.name == "extra":
                continue
            value = getattr(self, item.name)
            if value is not None:
                body[item.name] = value
        body.update(getattr(self, "extra", None) or {})
        return orjson.dumps(body) if body else b""

    def to_frame(self, recv_ns: int, mono_ns: int = 0, conn: int = 0, stream: str = "") -> Frame:
        """The row as a capture frame (its ``seq`` is the writer's to give)."""
        return Frame(0, recv_ns, mono_ns, conn, stream, self.KIND, self.payload())


@dataclass(frozen=True, slots=True)
class Opened(_Row):
    """A connection opened."""

    KIND: ClassVar[RowKind] = RowKind.OPEN
    url: str | None = None
    max_message_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class Closed(_Row):
    """A connection closed: its close code and reason, and who closed it (``client``,
    ``server``, ``stale``, ``error: …``)."""

    KIND: ClassVar[RowKind] = RowKind.CLOSE
    code: int | None = None
    reason: str | None = None
    by: str | None = None


@dataclass(frozen=True, slots=True)
class ConnectionGap(_Row):
    """No connection from ``from_ns`` to ``to_ns`` (``final``: the recording ended in it)."""

    KIND: ClassVar[RowKind] = RowKind.GAP
    JSON_KIND: ClassVar[str | None] = "connection"
    from_ns: int | None = None
    to_ns: int | None = None
    seconds: float | None = None
    final: bool | None = None


@dataclass(frozen=True, slots=True)
class SilenceGap(_Row):
    """Connected, but nothing arrived from ``from_ns`` to ``to_ns``."""

    KIND: ClassVar[RowKind] = RowKind.GAP
    JSON_KIND: ClassVar[str | None] = "silence"
    from_ns: int | None = None
    to_ns: int | None = None
    seconds: float | None = None


@dataclass(frozen=True, slots=True)
class UnrecordedGap(_Row):
    """Rows arrived from ``from_ns`` to ``to_ns`` but could not be kept (the journal's disk was
    full and the rows held in memory reached their bound): ``missing`` rows, ``bytes`` bytes."""

    KIND: ClassVar[RowKind] = RowKind.GAP
    JSON_KIND: ClassVar[str | None] = "unrecorded"
    from_ns: int | None = None
    to_ns: int | None = None
    seconds: float | None = None
    missing: int | None = None
    bytes: int | None = None


@dataclass(frozen=True, slots=True)
class SequenceGapRow(_Row):
    """Exchange ids ``expected`` … ``received - 1`` of ``symbol`` never arrived (the kind of
    id is ``gap_kind``: one of :data:`rtcap.sequence.SEQUENCE_GAP_KINDS`)."""

    KIND: ClassVar[RowKind] = RowKind.GAP
    gap_kind: str = "trade_id"
    symbol: str | None = None
    expected: int | None = None
    received: int | None = None
    missing: int | None = None
    last_applied: int | None = None

    def payload(self) -> bytes:
        body = {"kind": self.gap_kind}
        for name in ("symbol", "expected", "received", "missing", "last_applied"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        return orjson.dumps(body)


@dataclass(frozen=True, slots=True)
class ErrorRow(_Row):
    """Something went wrong, or is being retried: ``event`` names it, ``error`` says it."""

    KIND: ClassVar[RowKind] = RowKind.ERROR
    event: str | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ClockRow(_Row):
    """Time advanced to the row's ``recv_ns`` with no frame (a timer, or replay's clock)."""

    KIND: ClassVar[RowKind] = RowKind.CLOCK


LifecycleRow = (
    Opened
    | Closed
    | ConnectionGap
    | SilenceGap
    | UnrecordedGap
    | SequenceGapRow
    | ErrorRow
    | ClockRow
)


def error_row(event: str, error: str | None = None, **extra: Any) -> ErrorRow:
    """An :class:`ErrorRow` with the event's own fields (``attempt``, ``delay_s`` …)."""
    return ErrorRow(event, error, extra)


CONTRACT_ROLLED = "contract_rolled"


def contract_rolled(symbol: str, old: str, new: str) -> ErrorRow:
    """The row a recorder writes when ``symbol``'s front contract changes from ``old`` to
    ``new``: frames of ``old`` after it are no longer ``symbol``'s."""
    return error_row(CONTRACT_ROLLED, None, symbol=symbol, from_contract=old, to_contract=new)


def contract_roll_of(row: LifecycleRow | None) -> tuple[str, str, str] | None:
    """(symbol, old contract, new contract) of a :func:`contract_rolled` row, else ``None``."""
    if not isinstance(row, ErrorRow) or row.event != CONTRACT_ROLLED:
        return None
    fields = [_text(row.extra.get(k)) for k in ("symbol", "from_contract", "to_contract")]
    symbol, old, new = fields
    return (symbol, old, new) if symbol and old and new else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: Any) -> float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def gap_kind_of(detail: dict[str, Any]) -> str:
    """The kind of a ``gap`` row from its payload (rows written before kinds: ``connection``)."""
    return str(detail.get("kind") or "connection")


def parse_detail(kind: str, detail: dict[str, Any]) -> LifecycleRow | None:
    """The row of ``kind`` with payload ``detail`` (``None`` for data and ``sent`` rows)."""
    if kind == OPEN:
        return Opened(_text(detail.get("url")), _int(detail.get("max_message_bytes")))
    if kind == CLOSE:
        return Closed(
            _int(detail.get("code")), _text(detail.get("reason")), _text(detail.get("by"))
        )
    if kind == GAP:
        gap_kind = gap_kind_of(detail)
        if gap_kind in SEQUENCE_GAP_KINDS:
            return SequenceGapRow(
                gap_kind,
                _text(detail.get("symbol")),
                _int(detail.get("expected")),
                _int(detail.get("received")),
                _int(detail.get("missing")),
                _int(detail.get("last_applied")),
            )
        span = (_int(detail.get("from_ns")), _int(detail.get("to_ns")))
        seconds = _number(detail.get("seconds"))
        if gap_kind == "silence":
            return SilenceGap(*span, seconds)
        if gap_kind == UnrecordedGap.JSON_KIND:
            return UnrecordedGap(
                *span, seconds, _int(detail.get("missing")), _int(detail.get("bytes"))
            )
        final = detail.get("final")
        return ConnectionGap(*span, seconds, final if isinstance(final, bool) else None)
    if kind == ERROR:
        known = {"event", "error"}
        extra = {key: value for key, value in detail.items() if key not in known}
        error = detail.get("error")
        return ErrorRow(_text(detail.get("event")), None if error is None else str(error), extra)
    if kind == CLOCK:
        return ClockRow()
    return None


def parse(frame: Frame) -> LifecycleRow | None:
    """The lifecycle row ``frame`` holds (``None`` for data and ``sent`` rows)."""
    if frame.kind not in LIFECYCLE_KINDS and frame.kind != CLOCK:
        return None
    return parse_detail(frame.kind, payload_detail(frame.payload))


# What the SQL and Spark views show of these rows: (column, payload field, type), the types
# named as each engine's view builder spells them ("text", "int32", "int64", "float64"). The
# ``gaps`` views add ``gap_kind`` and the ``gap_from``/``gap_to`` times of from_ns/to_ns.
ROW_KINDS = tuple(kind.value for kind in RowKind if kind not in (RowKind.TEXT, RowKind.BINARY))
LIFECYCLE_COLUMNS = (
    ("event", "event", "text"),
    ("close_code", "code", "int32"),
    ("reason", "reason", "text"),
    ("url", "url", "text"),
)
GAP_COLUMNS = (
    ("seconds", "seconds", "float64"),
    ("symbol", "symbol", "text"),
    ("expected", "expected", "int64"),
    ("received", "received", "int64"),
    ("missing", "missing", "int64"),
)


def view_columns(
    columns: tuple[tuple[str, str, str], ...], extract: str, cast: str, types: dict[str, str]
) -> str:
    """The select items of a view's ``columns`` in one engine's SQL: ``extract`` reads a
    payload field (``{field}``), ``cast`` types it (``{value}``, ``{type}``, ``types`` naming
    each type); text fields are not cast."""
    parts = []
    for column, name, kind in columns:
        value = extract.format(field=name)
        if kind != "text":
            value = cast.format(value=value, type=types[kind])
        parts.append(f"{value} AS {column}")
    return ", ".join(parts)
