"""Lifecycle rows: one typed vocabulary that writes each row and reads it back, tolerant of
damaged or older payloads."""

import orjson
import pytest

from rtcap.lifecycle import (
    GAP_COLUMNS,
    LIFECYCLE_COLUMNS,
    ROW_KINDS,
    ClockRow,
    Closed,
    ConnectionGap,
    ErrorRow,
    Opened,
    RowKind,
    SequenceGapRow,
    SilenceGap,
    error_row,
    parse,
    payload_detail,
)
from rtcap.models import Frame

ROWS = [
    Opened("wss://x/hubs/market?access_token=REDACTED", 16 << 20),
    Closed(1006, "", "server"),
    ConnectionGap(1, 2_000_000_001, 2.0, False),
    SilenceGap(5, 6_000_000_005, 6.0),
    SequenceGapRow("depth_update_id", "ETHUSDT", 111, 115, 4),
    SequenceGapRow("book", "ETHUSDT", 10, 20, 10, 9),
    error_row("connect_failed", "refused"),
    error_row("reconnecting", attempt=2, delay_s=0.5),
    ClockRow(),
]


@pytest.mark.parametrize("row", ROWS, ids=lambda row: type(row).__name__)
def test_every_row_reads_back_as_written(row):
    frame = row.to_frame(1_000, 2_000, 3, "market")
    assert (frame.recv_ns, frame.mono_ns, frame.conn, frame.stream) == (1_000, 2_000, 3, "market")
    assert frame.kind == row.KIND
    assert parse(frame) == row


def test_payloads_are_the_json_written_before():
    assert orjson.loads(Opened("u", 5).payload()) == {"url": "u", "max_message_bytes": 5}
    assert list(orjson.loads(ConnectionGap(1, 2, 0.5, True).payload())) == [
        "kind", "from_ns", "to_ns", "seconds", "final",
    ]  # fmt: skip
    assert orjson.loads(error_row("stale", silent_s=30.0).payload()) == {
        "event": "stale",
        "silent_s": 30.0,
    }
    assert ClockRow().payload() == b""


def test_damaged_or_older_payloads_still_parse():
    assert payload_detail(b"not json") == {"raw": "not json"}
    assert payload_detail(b"[1, 2]") == {"value": [1, 2]}
    gap = parse(Frame(0, 1, kind="gap", payload=b'{"from_ns": "x", "to_ns": 5}'))
    assert gap == ConnectionGap(None, 5, None, None)  # an older row: no kind means connection
    error = parse(Frame(0, 1, kind="error", payload=b"\xff"))
    assert isinstance(error, ErrorRow) and error.event is None
    assert parse(Frame(0, 1, kind="text", payload=b"{}")) is None
    assert parse(Frame(0, 1, kind="sent", payload=b"{}")) is None


def test_the_views_vocabulary_covers_every_field_the_rows_write():
    assert set(ROW_KINDS) == {k.value for k in RowKind} - {"text", "binary"}
    gap_fields = {field for _, field, _ in GAP_COLUMNS} | {"kind", "from_ns", "to_ns", "final"}
    for row in (ConnectionGap(1, 2, 3.0, True), SilenceGap(1, 2, 3.0), ROWS[5]):
        assert set(orjson.loads(row.payload())) <= gap_fields | {"last_applied"}
    life_fields = {field for _, field, _ in LIFECYCLE_COLUMNS}
    assert {"url", "code", "reason", "event"} <= life_fields
