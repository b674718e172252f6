"""Shapes: a frame's exact bytes as a template plus typed values, and back again.

The cold form of a capture (:mod:`rtcap.storage.compact`) keeps each market message the codec
understands as typed columns: its ids and times as integers, its decimal prices and sizes as
integer mantissas with their scale (``"2678.10"`` is 267810 and 2, so trailing zeros survive),
the maker flag as a boolean and depth levels as lists; ProjectX's ISO timestamps as epoch
nanoseconds with the fraction digits they show, and the items of its trade and depth messages
(a list of objects) as list columns, one element per item, each item cut by one item shape.
Which field is which is the codecs' word (:data:`rtcap.codecs.binance.TYPED_FIELDS`,
:data:`rtcap.codecs.projectx.TYPED_FIELDS`). What is left of the frame once those values are
cut out — keys, their order, literal strings, spacing, quotes — is its *shape*, stored once per
file.

Rendering joins shape and values back into bytes column by column (no Python loop over rows),
or row by row in compiled code (``rtcap._speedups.render_rows``) where it was built: the
pyarrow path is the reference, and the compiled one hands back any table it does not fully
read.
:func:`typed_columns` keeps a frame's shape only when rendering gives back exactly its bytes;
otherwise the frame keeps its raw payload (and its typed values, which are still what the
codec reads). Frames of no known kind stay raw.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from rtcap.accel import speedups
from rtcap.codecs import binance, projectx
from rtcap.codecs.binance import message_data, message_kind
from rtcap.timeutil import parse_iso_ns

INT, DECIMAL, BOOL, LEVELS, STRING = "int", "decimal", "bool", "levels", "string"
TIME = "time"  # an ISO-8601 UTC timestamp: epoch ns and the fraction digits it shows
# One value per item of a list of objects (ProjectX trades and depth), as list columns.
ITEM_INT, ITEM_DECIMAL, ITEM_TIME = "item_int", "item_decimal", "item_time"
ITEM_VALUE = {ITEM_INT: INT, ITEM_DECIMAL: DECIMAL, ITEM_TIME: TIME}
ITEMS = "items"  # the hole a message's items fill, each cut by the shape's item shape
# Every message kind the cold form types, with its codec's map of JSON keys to columns.
MESSAGE_FIELDS: dict[str, dict[str, str]] = {**binance.TYPED_FIELDS, **projectx.TYPED_FIELDS}
VENUE_OF_MESSAGE = {
    **{message: "binance" for message in binance.TYPED_FIELDS},
    **{message: "projectx" for message in projectx.TYPED_FIELDS},
}
# Every typed column the codecs' field maps name, by kind of value. The first form of the cold
# files (typed/1) had the Binance ones only.
FIRST_FORM_KINDS: dict[str, str] = {
    "instrument": STRING,
    "event_ms": INT,
    "time_ms": INT,
    "trade_id": INT,
    "first_trade_id": INT,
    "last_trade_id": INT,
    "buyer_order": INT,
    "seller_order": INT,
    "update_id": INT,
    "first_update_id": INT,
    "prev_update_id": INT,
    "maker": BOOL,
    "price": DECIMAL,
    "qty": DECIMAL,
    "bid": DECIMAL,
    "bid_qty": DECIMAL,
    "ask": DECIMAL,
    "ask_qty": DECIMAL,
    "bids": LEVELS,
    "asks": LEVELS,
}
VALUE_KINDS: dict[str, str] = {
    **FIRST_FORM_KINDS,
    "last": DECIMAL,
    "change": DECIMAL,
    "change_percent": DECIMAL,
    "open": DECIMAL,
    "high": DECIMAL,
    "low": DECIMAL,
    "session_volume": INT,
    "updated_ns": TIME,
    "quote_ns": TIME,
    "item_price": ITEM_DECIMAL,
    "item_volume": ITEM_INT,
    "item_current_volume": ITEM_INT,
    "item_type": ITEM_INT,
    "item_ns": ITEM_TIME,
    ITEMS: ITEMS,
}
LEVEL_PREFIX = {"bids": "bid", "asks": "ask"}
HOLE = "\x00"  # never in a shape: JSON text cannot hold a raw NUL
MIN_USES = 2  # a shape used once saves nothing: that frame stays raw
MAX_SHAPES = 4096  # per file; the least used beyond it stay raw
MAX_SCALE = 18
INT64 = 1 << 63
# Mantissas below 2**53 divide by 10**scale into exactly the double the codec parses from the
# text (both correctly rounded); larger ones would not, so their frames stay raw.
EXACT = 1 << 53

_DEC = r"-?\d+(?:\.\d+)?"
_PAIR = rf'\["{_DEC}","{_DEC}"\]'
# "key": then a string with no escapes (group 2, inside its quotes), a bare number (3), a
# boolean (4) or a list of [price, size] decimal-string pairs (5).
_FIELD = re.compile(
    rf'"(\w+)":(?:"([^"\\]*)"|({_DEC})(?=[,}}\]\s])|(true|false)|(\[(?:{_PAIR}(?:,{_PAIR})*)?\]))'
)
_DECIMAL = re.compile(_DEC)
# The UTC timestamps typed: date and time (group 1, years from 1970), up to nine fraction digits
# (2) and a UTC suffix, kept in the shape (3). Any other offset keeps the frame raw.
_ISO = re.compile(
    r"((?:19[7-9]\d|[2-9]\d{3})-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|\+00:00|)"
)
_PAIRS = re.compile(rf'\["({_DEC})","({_DEC})"\]')


def decimal_columns(column: str) -> tuple[str, str, str]:
    """The columns holding a decimal field (or a side's level prices or sizes): its integer
    values, their scale (value = integer / 10**scale) and the digits its text shows after the
    point (what rendering pads to: ``"2678.14000000"`` is 267814, scale 2, digits 8)."""
    return column, f"{column}_scale", f"{column}_digits"


def level_columns(column: str) -> tuple[str, str]:
    """The list columns of one side's levels: prices and sizes."""
    side = LEVEL_PREFIX[column]
    return f"{side}_prices", f"{side}_sizes"


def _digit_stem(values_column: str) -> str:
    # bid_prices -> bid_price: a side's scale and digits columns are named per value
    return values_column[:-1]


def time_columns(column: str) -> tuple[str, str]:
    """The columns of a timestamp field: its epoch ns and the fraction digits its text shows."""
    return column, f"{column}_digits"


def typed_schema(kinds: dict[str, str]) -> list[pa.Field]:
    """The typed columns of the cold form, after the frame columns."""
    fields = [
        pa.field("message", pa.dictionary(pa.int32(), pa.string())),
        pa.field("shape", pa.int32()),
    ]
    for column, kind in kinds.items():
        if kind == ITEMS:
            continue
        if kind == TIME:
            ns, digits = time_columns(column)
            fields += [pa.field(ns, pa.int64()), pa.field(digits, pa.int8())]
        elif kind == ITEM_INT:
            fields.append(pa.field(column, pa.list_(pa.int64())))
        elif kind == ITEM_TIME:
            ns, digits = time_columns(column)
            fields += [pa.field(ns, pa.list_(pa.int64())), pa.field(digits, pa.list_(pa.int8()))]
        elif kind == ITEM_DECIMAL:
            values, scale, digits = decimal_columns(column)
            fields += [pa.field(values, pa.list_(pa.int64())), pa.field(scale, pa.int8()),
                       pa.field(digits, pa.list_(pa.int8()))]  # fmt: skip
        elif kind == STRING:
            fields.append(pa.field(column, pa.dictionary(pa.int32(), pa.string())))
        elif kind == INT:
            fields.append(pa.field(column, pa.int64()))
        elif kind == BOOL:
            fields.append(pa.field(column, pa.bool_()))
        elif kind == DECIMAL:
            values, scale, digits = decimal_columns(column)
            fields += [pa.field(values, pa.int64()), pa.field(scale, pa.int8()),
                       pa.field(digits, pa.int8())]  # fmt: skip
        else:
            for values in level_columns(column):
                stem = _digit_stem(values)
                fields += [
                    pa.field(values, pa.list_(pa.int64())),
                    pa.field(f"{stem}_scale", pa.int8()),
                    pa.field(f"{stem}_digits", pa.int8()),
                ]
    return fields


TYPED_FIELDS_ARROW = typed_schema(VALUE_KINDS)
TYPED_FIELDS_ARROW_V1 = typed_schema(FIRST_FORM_KINDS)
TYPED_NAMES = [f.name for f in TYPED_FIELDS_ARROW]


@dataclass(frozen=True)
class Shape:
    """A template: the literal text around each hole, and which column fills each hole. A
    message with items has one :data:`ITEMS` hole, filled with its items joined by commas,
    each item being ``item_pieces`` around ``item_holes`` (list columns, one element per
    item)."""

    message: str
    pieces: tuple[str, ...]  # len(holes) + 1
    holes: tuple[str, ...]
    item_pieces: tuple[str, ...] = ()  # len(item_holes) + 1 where there are items
    item_holes: tuple[str, ...] = ()

    def to_json(self) -> list:
        value = [self.message, list(self.pieces), list(self.holes)]
        return [*value, list(self.item_pieces), list(self.item_holes)] if self.item_holes else value

    @classmethod
    def from_json(cls, value: list) -> Shape:
        message, pieces, holes, *items = value
        item_pieces, item_holes = items or ((), ())
        return cls(message, tuple(pieces), tuple(holes), tuple(item_pieces), tuple(item_holes))


def decimal_value(text: str) -> tuple[int, int] | None:
    """``"-12.50"`` → (-1250, 2): the text's mantissa and its digits after the point; ``None``
    when they do not fit."""
    whole, _, fraction = text.partition(".")
    if len(fraction) > MAX_SCALE:
        return None
    mantissa = int(whole + fraction)
    return (mantissa, len(fraction)) if -EXACT < mantissa < EXACT else None


def _levels_value(text: str) -> tuple[list[int], list[int], int | None, int | None] | None:
    prices: list[int] = []
    sizes: list[int] = []
    price_digits = size_digits = None
    for price_text, size_text in _PAIRS.findall(text):
        price, size = decimal_value(price_text), decimal_value(size_text)
        if price is None or size is None:
            return None
        if price_digits is None:
            price_digits, size_digits = price[1], size[1]
        elif price[1] != price_digits or size[1] != size_digits:
            return None  # one number of digits per side and message: mixed ones stay raw
        prices.append(price[0])
        sizes.append(size[0])
    return prices, sizes, price_digits, size_digits


def _time_value(text: str | None) -> tuple[int, int, int] | None:
    """An ISO-8601 UTC timestamp as (epoch ns as the codec reads it, fraction digits shown,
    length of its suffix); ``None`` for any other text."""
    found = None if text is None else _ISO.fullmatch(text)
    if found is None:
        return None
    try:
        ns = parse_iso_ns(text)
    except ValueError:  # no such day: the codec rejects the message too, so it stays raw
        return None
    return (ns, len(found.group(2) or ""), len(found.group(3))) if ns < INT64 else None


def _hole_value(kind: str, match: re.Match) -> Any:
    quoted, bare, flag, levels = match.group(2, 3, 4, 5)
    if kind == TIME:
        return _time_value(quoted)
    if kind == INT:
        if bare is None or "." in bare:
            return None
        number = int(bare)
        return number if -INT64 <= number < INT64 else None
    if kind == DECIMAL:
        text = quoted if quoted is not None else bare
        return None if text is None or not _DECIMAL.fullmatch(text) else decimal_value(text)
    if kind == STRING:
        return quoted
    if kind == BOOL:
        return None if flag is None else flag == "true"
    return None if levels is None else _levels_value(levels)


def _span(match: re.Match) -> tuple[int, int]:
    for group in (2, 3, 4, 5):
        if match.group(group) is not None:
            return match.span(group)
    raise AssertionError("a field match always has a value")


def _cut(
    text: str, fields: dict[str, str], data: dict[str, Any], start: int = 0
) -> tuple[list[str], list[str], dict[str, Any]] | None:
    """The pieces, holes and values of ``text`` with every field of ``fields`` from ``start``
    on cut out; ``None`` unless each field of ``data`` (the parsed object) the map names was
    cut out exactly once and typed."""
    pieces: list[str] = []
    holes: list[str] = []
    values: dict[str, Any] = {}
    last = 0
    for match in _FIELD.finditer(text, start):
        column = fields.get(match.group(1))
        if column is None:
            continue
        if column in values:
            return None  # a key twice (in the envelope, say): not a shape
        kind = VALUE_KINDS[column]
        value = _hole_value(ITEM_VALUE.get(kind, kind), match)
        if value is None:
            return None
        begin, end = _span(match)
        if ITEM_VALUE.get(kind, kind) == TIME:
            value, end = value[:2], end - value[2]  # the suffix stays in the shape
        pieces.append(text[last:begin])
        holes.append(column)
        values[column] = value
        last = end
    pieces.append(text[last:])
    if len(values) != sum(1 for key in data if key in fields):
        return None  # a field the codec reads was not cut out: keep the frame raw
    if not holes or any(HOLE in piece for piece in pieces):
        return None  # a shape with no value to fill is left raw: it has nothing typed
    return pieces, holes, values


def extract(payload: bytes) -> tuple[Shape, dict[str, Any]] | None:
    """The shape of one frame and its typed values; ``None`` when the frame is not a market
    message a codec knows, or some field the codec reads could not be typed."""
    record = payload[:-1] if payload.endswith(projectx.RS) else payload
    try:
        text = payload.decode("utf-8")
        parsed = orjson.loads(record)
    except (UnicodeDecodeError, orjson.JSONDecodeError):
        return None
    if record is not payload:
        return _extract_projectx(text, parsed)
    data, _ = message_data(parsed)
    if data is None:
        return None
    message = message_kind(data)
    if message is None:
        return None
    cut = _cut(text, MESSAGE_FIELDS[message], data)
    if cut is None:
        return None
    pieces, holes, values = cut
    return Shape(message, tuple(pieces), tuple(holes)), values


def _extract_projectx(text: str, message: Any) -> tuple[Shape, dict[str, Any]] | None:
    """:func:`extract` for one SignalR record (its text ends with the record separator): a
    quote's fields, or the items of a trade or depth message (a list of flat objects, or one)
    each cut by one item shape."""
    if type(message) is not dict or message.get("type") != 1:
        return None
    target, arguments = message.get("target"), message.get("arguments")
    fields = projectx.TYPED_FIELDS.get(target) if type(target) is str else None
    if fields is None or type(arguments) is not list or len(arguments) != 2:
        return None
    contract, body = arguments
    if type(contract) is not str:
        return None
    head = '"arguments":[' + orjson.dumps(contract).decode() + ","
    at = text.find(head)
    if at < 0 or text.find(head, at + 1) >= 0:
        return None
    start = at + len(head)
    if target not in projectx.ITEM_TARGETS:
        cut = _cut(text, fields, body, start) if type(body) is dict else None
        return None if cut is None else (Shape(target, tuple(cut[0]), tuple(cut[1])), cut[2])
    items = body if type(body) is list else [body]
    if not items or any(type(item) is not dict for item in items):
        return None
    listed = type(body) is list
    if not text.startswith("[{" if listed else "{", start):
        return None
    first = start + 1 if listed else start
    last = text.find("]" if listed else "}", first) + (0 if listed else 1)
    texts = text[first:last].split("},{")  # items are flat objects: checked one by one below
    if last <= first or len(texts) != len(items):
        return None
    values: dict[str, list] = {}
    template = None
    for index, (item, item_text) in enumerate(zip(items, texts, strict=True)):
        item_text = ("{" if index else "") + item_text + ("}" if index < len(items) - 1 else "")
        try:
            if orjson.loads(item_text) != item:
                return None
        except orjson.JSONDecodeError:
            return None
        cut = _cut(item_text, fields, item)
        if cut is None or (template is not None and cut[:2] != template):
            return None  # items of one message share one item shape
        template = cut[0], cut[1]
        for column, value in cut[2].items():
            values.setdefault(column, []).append(value)
    assert template is not None
    pieces, holes = template
    shape = Shape(target, (text[:first], text[last:]), (ITEMS,), tuple(pieces), tuple(holes))
    return None if HOLE in shape.pieces[0] + shape.pieces[1] else (shape, values)


def typed_columns(
    payloads: pa.Array, shapes: list[Shape] | None = None
) -> tuple[dict[str, pa.Array], list[Shape]]:
    """The typed columns (:data:`TYPED_FIELDS_ARROW`) of some frames and the shapes they use.
    A frame keeps a shape only if its shape is used at least :data:`MIN_USES` times (or holds
    depth levels or items) and renders back to exactly its bytes (checked here, column-wise);
    the caller keeps the payload of every frame whose ``shape`` is null. ``shapes``: the
    file's shapes so far, when a file is typed a block of frames at a time: a shape found
    again keeps its number, new ones are appended to it (and it is returned)."""
    rows = len(payloads)
    found = [extract(p) if p is not None else None for p in payloads.to_pylist()]
    uses = Counter(item[0] for item in found if item is not None)
    kept = [] if shapes is None else shapes
    known = set(kept)
    for shape, count in uses.most_common():
        if len(kept) >= MAX_SHAPES:
            break  # per file; the least used beyond it stay raw
        if shape not in known and (
            count >= MIN_USES or any(VALUE_KINDS[hole] in (LEVELS, ITEMS) for hole in shape.holes)
        ):
            kept.append(shape)
    number = {shape: index for index, shape in enumerate(kept)}
    lists: dict[str, list] = {name: [None] * rows for name in TYPED_NAMES}
    for row, item in enumerate(found):
        if item is None:
            continue
        shape, values = item
        lists["message"][row] = shape.message
        lists["shape"][row] = number.get(shape)
        for column, value in values.items():
            kind = VALUE_KINDS[column]
            if kind in (DECIMAL, TIME):
                lists[column][row], lists[f"{column}_digits"][row] = value
            elif kind in (ITEM_DECIMAL, ITEM_TIME):
                lists[column][row] = [integer for integer, _ in value]
                lists[f"{column}_digits"][row] = [digits for _, digits in value]
            elif kind == LEVELS:
                prices, sizes = level_columns(column)
                lists[prices][row], lists[sizes][row], digits_of_prices, digits_of_sizes = value
                lists[f"{_digit_stem(prices)}_digits"][row] = digits_of_prices
                lists[f"{_digit_stem(sizes)}_digits"][row] = digits_of_sizes
            else:
                lists[column][row] = value
    columns = {}
    for f in TYPED_FIELDS_ARROW:
        if not f.name.endswith("_scale"):
            columns[f.name] = pa.array(lists[f.name], f.type)
    for stem, values, digits in _decimal_value_columns():
        columns[values], columns[f"{stem}_scale"] = _at_least_scale(
            columns[values], columns[digits]
        )
    columns = {f.name: columns[f.name] for f in TYPED_FIELDS_ARROW}
    if kept:
        rendered = render(columns, kept, payloads)
        exact = pc.fill_null(pc.equal(rendered, payloads), False)
        columns["shape"] = pc.if_else(exact, columns["shape"], pa.scalar(None, pa.int32()))
    return columns, kept


def _decimal_value_columns() -> list[tuple[str, str, str]]:
    """(stem, values column, digits column) of every decimal field and level side."""
    found = []
    for column, kind in VALUE_KINDS.items():
        if kind in (DECIMAL, ITEM_DECIMAL):
            values, _, digits = decimal_columns(column)
            found.append((column, values, digits))
        elif kind == LEVELS:
            for values in level_columns(column):
                stem = _digit_stem(values)
                found.append((stem, values, f"{stem}_digits"))
    return found


def _at_least_scale(values: pa.Array, digits: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Text mantissas (``digits`` after the point) as integers at the least scale that holds
    every value of the column exactly: ``"2678.14000000"`` becomes 267814 at scale 2 when no
    value of the file needs more, so the integers carry no run of zeros that only the text
    had. Returns the integers (lists stay lists) and the scale of each row. Digits are per
    row, or per element where they are a list too (items)."""
    is_list = pa.types.is_list(values.type)
    flat = values.flatten() if is_list else values
    if pa.types.is_list(digits.type):
        row_digits = digits.flatten()
    else:
        row_digits = digits.take(pc.list_parent_indices(values)) if is_list else digits
    present = pc.is_valid(flat).to_numpy(zero_copy_only=False)
    mantissas = pc.fill_null(flat, 0).to_numpy(zero_copy_only=False).astype(np.int64)
    text_digits = pc.fill_null(row_digits, 0).to_numpy(zero_copy_only=False).astype(np.int64)
    zeros = np.zeros(len(mantissas), dtype=np.int64)  # trailing decimal zeros of each mantissa
    rest = mantissas.copy()
    for _ in range(MAX_SCALE):
        step = (rest % 10 == 0) & (rest != 0)
        if not step.any():
            break
        zeros += step
        rest = np.where(step, rest // 10, rest)
    needed = (text_digits - zeros)[present & (mantissas != 0)]
    scale = int(max(needed.max(), 0)) if needed.size else 0
    stored = mantissas.copy()
    for shown in np.unique(text_digits[present]):
        rows = present & (text_digits == shown)
        if shown >= scale:
            stored[rows] = mantissas[rows] // 10 ** int(shown - scale)
        else:
            stored[rows] = mantissas[rows] * 10 ** int(scale - shown)
    flat_stored = pa.array(stored, pa.int64(), mask=~present)
    if is_list:
        offsets = pc.subtract(values.offsets, values.offsets[0])
        stored_values = pa.ListArray.from_arrays(offsets, flat_stored, mask=pc.is_null(values))
    else:
        stored_values = flat_stored
    scales = pc.if_else(pc.is_null(digits), pa.scalar(None, pa.int8()), pa.scalar(scale, pa.int8()))
    return stored_values, scales


def render(
    columns: dict[str, Any],
    shapes: list[Shape],
    payloads: Any,
    order: pa.Array | None = None,
) -> pa.Array:
    """Every frame's bytes: its shape filled with its typed values where it has a shape, its
    payload where it has none (``columns`` maps names to arrays or chunked arrays); the rows
    ``order`` names, in that order, when given (a sort costs nothing extra this way)."""
    compiled = _compiled_render(columns, shapes, payloads, order)
    if compiled is not None:
        return compiled
    rendered = render_by_columns(columns, shapes, payloads)
    return rendered if order is None else rendered.take(order)


def render_by_columns(columns: dict[str, Any], shapes: list[Shape], payloads: Any) -> pa.Array:
    """:func:`render` in pyarrow kernels: the reference the compiled path is checked against."""
    shape_ids = _array(columns["shape"])
    payloads = _array(payloads)
    if shape_ids.null_count == len(shape_ids):
        return payloads
    indices = [pc.indices_nonzero(pc.is_null(shape_ids))]
    parts = [payloads.take(indices[0])]
    for shape_id in pc.unique(shape_ids.drop_null()).to_pylist():
        rows = pc.indices_nonzero(pc.fill_null(pc.equal(shape_ids, shape_id), False))
        taken = {name: _array(columns[name]).take(rows) for name in shape_columns(shapes[shape_id])}
        indices.append(rows)
        parts.append(_render_shape(shapes[shape_id], taken).cast(pa.binary()))
    order = pc.sort_indices(pa.concat_arrays(indices))
    return pa.concat_arrays(parts).take(order)


# the ops of _speedups.c's render_rows
_OP_TEXT, _OP_INT, _OP_STRING, _OP_BOOL, _OP_DECIMAL, _OP_LEVELS, _OP_TIME, _OP_ITEMS = range(8)
_OP_ITEM = {ITEM_INT: 8, ITEM_DECIMAL: 9, ITEM_TIME: 10}


def _compiled_render(
    columns: dict[str, Any], shapes: list[Shape], payloads: Any, order: pa.Array | None
) -> pa.Array | None:
    """:func:`render` by ``rtcap._speedups.render_rows``; ``None`` where it is not built or
    does not read these columns (the caller then renders them in pyarrow)."""
    if speedups is None:
        return None
    shape_ids = _array(columns["shape"])
    if order is None:
        count = len(shape_ids)
        rows: Any = np.arange(count, dtype=np.int64)
    else:
        order = _array(order)
        if order.type not in (pa.int64(), pa.uint64()) or order.null_count:
            return None  # sort_indices gives uint64: the same bits for the row numbers here
        count = len(order)
        rows = order.buffers()[1].slice(order.offset * 8, count * 8)
    names = sorted({name for shape in shapes for name in shape_columns(shape)})
    specs = [_arrow_spec(_array(columns[name])) for name in names]
    shape_spec, payload_spec = _arrow_spec(shape_ids), _arrow_spec(_array(payloads))
    if shape_spec is None or payload_spec is None or None in specs:
        return None
    number = {name: index for index, name in enumerate(names)}
    programs = [_program(shape, number) for shape in shapes]
    rendered = speedups.render_rows(rows, count, shape_spec, payload_spec, programs, specs)
    if rendered is None:
        return None
    offsets, data = rendered
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    return pa.Array.from_buffers(pa.binary(), count, buffers)


def _program(shape: Shape, number: dict[str, int]) -> list[tuple]:
    """A shape as the compiled renderer's ops: its texts, and the columns of each hole."""
    ops: list[tuple] = [(_OP_TEXT, shape.pieces[0].encode())]
    for hole, piece in zip(shape.holes, shape.pieces[1:], strict=True):
        kind = VALUE_KINDS[hole]
        if kind == ITEMS:
            item_ops: list[tuple] = [(_OP_TEXT, shape.item_pieces[0].encode())]
            for item_hole, item_piece in zip(shape.item_holes, shape.item_pieces[1:], strict=True):
                columns = _stored_columns(item_hole)
                item_ops += [
                    (_OP_ITEM[VALUE_KINDS[item_hole]], *(number[name] for name in columns)),
                    (_OP_TEXT, item_piece.encode()),
                ]
            ops += [(_OP_ITEMS, number[shape.item_holes[0]], len(item_ops)), *item_ops]
            ops.append((_OP_TEXT, piece.encode()))
            continue
        if kind == TIME:
            op: tuple = (_OP_TIME, *(number[name] for name in time_columns(hole)))
        elif kind == LEVELS:
            op = (_OP_LEVELS,)
            for values in level_columns(hole):
                stem = _digit_stem(values)
                op += (number[values], number[f"{stem}_scale"], number[f"{stem}_digits"])
        elif kind == DECIMAL:
            op = (_OP_DECIMAL, *(number[name] for name in decimal_columns(hole)))
        else:
            op = ({INT: _OP_INT, STRING: _OP_STRING, BOOL: _OP_BOOL}[kind], number[hole])
        ops += [op, (_OP_TEXT, piece.encode())]
    return ops


_INT_WIDTHS = {pa.int8(): 1, pa.int16(): 2, pa.int32(): 4, pa.int64(): 8}


def _arrow_spec(array: pa.Array) -> tuple | None:
    """How ``render_rows`` reads one column: (kind, width, offset, child offset, validity,
    values, offsets, data); ``None`` for a layout it does not read."""
    kind = array.type
    if kind in _INT_WIDTHS:
        validity, values = array.buffers()
        return 0, _INT_WIDTHS[kind], array.offset, 0, validity, values, None, None
    if pa.types.is_boolean(kind):
        validity, values = array.buffers()
        return 1, 1, array.offset, 0, validity, values, None, None
    if pa.types.is_dictionary(kind):
        words, indices = array.dictionary, array.indices
        readable = words.type in (pa.string(), pa.binary()) and not words.null_count
        if kind.index_type not in _INT_WIDTHS or not readable:
            return None
        _, offsets, data = words.buffers()
        validity, values = indices.buffers()
        width = _INT_WIDTHS[kind.index_type]
        return 2, width, indices.offset, words.offset, validity, values, offsets, data
    if kind in (pa.string(), pa.binary()):
        validity, offsets, data = array.buffers()
        return 3, 4, array.offset, 0, validity, None, offsets, data
    if pa.types.is_list(kind) and kind.value_type in _INT_WIDTHS:
        child = array.values
        if child.null_count:
            return None
        validity, offsets = array.buffers()[:2]
        values = child.buffers()[1]
        width = _INT_WIDTHS[kind.value_type]
        return 4, width, array.offset, child.offset, validity, values, offsets, None
    return None


def _array(column: Any) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    return column


def shape_columns(shape: Shape) -> list[str]:
    return [name for hole in (*shape.holes, *shape.item_holes) for name in _stored_columns(hole)]


def _render_shape(shape: Shape, columns: dict[str, pa.Array]) -> pa.Array:
    parts: list[Any] = [shape.pieces[0]]
    for hole, piece in zip(shape.holes, shape.pieces[1:], strict=True):
        text = _items_text(shape, columns) if hole == ITEMS else _hole_text(hole, columns)
        parts += [text, piece]
    return pc.binary_join_element_wise(*parts, "")


def _items_text(shape: Shape, columns: dict[str, pa.Array]) -> pa.Array:
    """Each row's items, each its item shape filled with its elements, joined by commas."""
    lists = columns[shape.item_holes[0]]
    parents = pc.list_parent_indices(lists)
    parts: list[Any] = [shape.item_pieces[0]]
    for hole, piece in zip(shape.item_holes, shape.item_pieces[1:], strict=True):
        kind = VALUE_KINDS[hole]
        if kind == ITEM_DECIMAL:
            values, scale, digits = decimal_columns(hole)
            text = decimal_text(columns[values].flatten(), columns[scale].take(parents),
                                columns[digits].flatten())  # fmt: skip
        elif kind == ITEM_TIME:
            ns, digits = time_columns(hole)
            text = time_text(columns[ns].flatten(), columns[digits].flatten())
        else:
            text = pc.cast(columns[hole].flatten(), pa.string())
        parts += [text, piece]
    items = pc.binary_join_element_wise(*parts, "")
    offsets = pc.subtract(lists.offsets, lists.offsets[0])
    return pc.binary_join(pa.ListArray.from_arrays(offsets, items), ",")


def time_text(ns: pa.Array, digits: pa.Array) -> pa.Array:
    """Epoch ns as ``YYYY-MM-DDTHH:MM:SS`` with ``digits`` fraction digits (none: no point)."""
    text = pc.strftime(pc.cast(ns, pa.timestamp("ns")), format="%Y-%m-%dT%H:%M:%S")
    result = pc.utf8_slice_codeunits(text, 0, 19)  # "…:SS.fffffffff": the first 19 are whole
    for shown in pc.unique(digits.drop_null()).to_pylist():
        if shown:
            piece = pc.utf8_slice_codeunits(text, 0, 20 + shown)
            result = pc.if_else(pc.equal(digits, shown), piece, result)
    return result


def _hole_text(hole: str, columns: dict[str, pa.Array]) -> pa.Array:
    kind = VALUE_KINDS[hole]
    if kind in (INT, STRING):
        return pc.cast(columns[hole], pa.string())
    if kind == TIME:
        return time_text(*(columns[name] for name in time_columns(hole)))
    if kind == BOOL:
        return pc.if_else(columns[hole], "true", "false")
    if kind == DECIMAL:
        values, scale, digits = decimal_columns(hole)
        return decimal_text(columns[values], columns[scale], columns[digits])
    texts = []
    for values in level_columns(hole):
        stem = _digit_stem(values)
        levels = columns[values]
        parents = pc.list_parent_indices(levels)
        scales, digits = columns[f"{stem}_scale"], columns[f"{stem}_digits"]
        texts.append(decimal_text(levels.flatten(), scales, digits, parents))
    pairs = pc.binary_join_element_wise('["', texts[0], '","', texts[1], '"]', "")
    prices = columns[level_columns(hole)[0]]
    offsets = pc.subtract(prices.offsets, prices.offsets[0])
    joined = pc.binary_join(pa.ListArray.from_arrays(offsets, pairs), ",")
    return pc.binary_join_element_wise("[", joined, "]", "")


def decimal_text(
    values: pa.Array, scales: pa.Array, digits: pa.Array, parents: pa.Array | None = None
) -> pa.Array:
    """Integers at ``scales`` back to decimal text showing ``digits`` after the point
    (``-125``, 1, 2 → ``"-12.50"``). With ``parents``, ``values`` are list elements and the
    scales and digits are their rows'. A file's column nearly always has one scale and one
    number of digits: then the whole column is converted at once."""
    pairs = _scale_digit_pairs(scales, digits)
    if len(pairs) == 1:
        return _pointed(_at_digits(values, *pairs[0]), pairs[0][1])
    if parents is not None:
        scales, digits = scales.take(parents), digits.take(parents)
    text = None
    for scale, shown in pairs:
        piece = _pointed(_at_digits(values, scale, shown), shown)
        rows = pc.and_(pc.equal(scales, scale), pc.equal(digits, shown))
        text = piece if text is None else pc.if_else(rows, piece, text)
    return text if text is not None else pc.cast(values, pa.string())


def _scale_digit_pairs(scales: pa.Array, digits: pa.Array) -> list[tuple[int, int]]:
    """The (scale, digits) pairs present (rows with no value have neither)."""
    scale_values = pc.unique(scales.drop_null()).to_pylist()
    digit_values = pc.unique(digits.drop_null()).to_pylist()
    if len(scale_values) <= 1 and len(digit_values) <= 1:
        return list(zip(scale_values, digit_values, strict=False))
    keys = pc.add(pc.multiply(scales.cast(pa.int32()), 256), digits.cast(pa.int32()))
    return [divmod(key, 256) for key in pc.unique(keys.drop_null()).to_pylist()]


def _at_digits(values: pa.Array, scale: int, shown: int) -> pa.Array:
    """Integers at ``scale`` as the mantissas of text with ``shown`` digits after the point."""
    if scale == shown:
        return values
    factor = pa.scalar(10 ** abs(shown - scale), pa.int64())
    return pc.multiply(values, factor) if shown > scale else pc.divide(values, factor)


def _pointed(mantissas: pa.Array, shown: int) -> pa.Array:
    """Mantissas as text with ``shown`` digits after the point."""
    negative = pc.any(pc.less(mantissas, 0)).as_py()
    text = pc.cast(pc.abs(mantissas) if negative else mantissas, pa.string())
    if shown > 0:
        text = pc.utf8_lpad(text, width=shown + 1, padding="0")
        text = pc.utf8_replace_slice(text, start=-shown, stop=-shown, replacement=".")
    if negative:
        signed = pc.binary_join_element_wise("-", text, "")
        text = pc.if_else(pc.less(mantissas, 0), signed, text)
    return text


def shapes_json(shapes: list[Shape]) -> bytes:
    return orjson.dumps([shape.to_json() for shape in shapes])


def shapes_from_json(text: bytes | str) -> list[Shape]:
    return [Shape.from_json(value) for value in orjson.loads(text)]


TABLE_OF_MESSAGE = {"trade": "trades", "aggTrade": "trades", "bookTicker": "quotes",
                    "depthUpdate": "depth", "depthSnapshot": "depth", projectx.TRADE: "trades",
                    projectx.QUOTE: "quotes", projectx.DEPTH: "depth"}  # fmt: skip


def column_table(column: str) -> str:
    """Which table a stored column belongs to, for sizes: ``trades``, ``quotes`` or ``depth``
    when only those messages fill it, ``shared`` when several do, ``envelope`` for the frame
    columns and ``payload`` for raw payloads."""
    if column == "payload":
        return "payload"
    owners = {
        TABLE_OF_MESSAGE[message]
        for message, fields in MESSAGE_FIELDS.items()
        for field in fields.values()
        if column in _stored_columns(field)
    }
    if not owners:
        return "envelope"
    return owners.pop() if len(owners) == 1 else "shared"


def _stored_columns(field: str) -> list[str]:
    """The columns one field of the codec's map is stored in."""
    kind = VALUE_KINDS[field]
    if kind in (DECIMAL, ITEM_DECIMAL):
        return list(decimal_columns(field))
    if kind in (TIME, ITEM_TIME):
        return list(time_columns(field))
    if kind == ITEMS:
        return []
    if kind == LEVELS:
        return [
            name
            for values in level_columns(field)
            for name in (values, f"{_digit_stem(values)}_scale", f"{_digit_stem(values)}_digits")
        ]
    return [field]
