"""Book snapshots as a table: the portable schema that ``export --book`` writes and the SQL
``book`` view reads.

Signed integers, ``ts_ns`` (int64 epoch ns) beside a ``ts`` column of ``TIMESTAMP(MICROS, UTC)``
that any engine reads; one row per time, instrument and level (:meth:`BookSnapshot.rows`).
"""

from __future__ import annotations

import pyarrow as pa

from rtcap.booksnap import BookSnapshot
from rtcap.storage.schema import MICROS_UTC, rows_table

BOOK_SCHEMA = pa.schema(
    [
        ("ts_ns", pa.int64()),
        ("ts", MICROS_UTC),
        ("instrument", pa.string()),
        ("level", pa.int32()),
        ("bid_px", pa.float64()),
        ("bid_sz", pa.float64()),
        ("ask_px", pa.float64()),
        ("ask_sz", pa.float64()),
        ("valid", pa.bool_()),
    ]
)


def snapshots_table(snapshots: list[BookSnapshot]) -> pa.Table:
    """Snapshots as a BOOK_SCHEMA table, one row per instrument, time and level."""
    return rows_table([row for snapshot in snapshots for row in snapshot.rows()], BOOK_SCHEMA)
