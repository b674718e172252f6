"""DuckDB views over captures and exports: one SQL dataset, however many folders and dates.

Views (each has a ``capture`` column naming where a row came from):

* ``frames``: every column of every sealed frame, ``recv_time``/``exch_time`` as TIMESTAMPTZ,
  ``payload_text`` decoded wherever it is text (DuckDB's JSON functions return NULL on BLOBs);
* ``lifecycle``: open/close/error/sent/clock/gap rows with their JSON fields;
* ``gaps``: every ``gap`` row (connection outages and exchange sequence jumps);
* ``trades``, ``quotes``, ``depth``: typed market data decoded from ProjectX SignalR records and
  Binance messages (prices DOUBLE, times TIMESTAMPTZ), one row per print / quote / level; in a
  compacted capture (``rtcap compact``) they read the typed columns, with no JSON to parse;
* ``typed_rows``: the typed columns of compacted captures as stored (integer mantissas with
  their ``*_scale``: value = mantissa / 10^scale), one row per market message;
* ``bars``: bars built live while recording, and bars from ``rtcap export`` CSV/Parquet files;
* ``snapshots``: ``rtcap export`` JSON snapshots;
* ``book``: order-book snapshots from ``rtcap export --book`` (``book_*.csv``/``.parquet``): one
  row per time, instrument and level (``ts_ns``, ``ts``, ``instrument``, ``level``, ``bid_px``,
  ``bid_sz``, ``ask_px``, ``ask_sz``, ``valid``).

The connection is in memory and locked down: it reads only the segment and bar files each
capture's manifest lists (each checked against its sha256 first), handed to DuckDB as Arrow
datasets, and it cannot touch the file system or load extensions at all (``COPY … TO``,
``ATTACH``, ``INSTALL``, ``read_csv('/etc/…')`` all fail, and the settings cannot be changed
back). Stray files in a capture folder are never read, and no query can write into a capture.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from rtcap import lifecycle
from rtcap.analysis.booktable import BOOK_SCHEMA
from rtcap.codecs import projectx as projectx_codec
from rtcap.instruments import sql_symbol_case
from rtcap.storage.dataset import chosen, find_captures, is_capture, label, refuse_duplicates
from rtcap.storage.errors import CaptureError
from rtcap.storage.integrity import check_file, segment_files
from rtcap.storage.reader import capture_manifest, journal_tables
from rtcap.storage.schema import (
    BAR_SCHEMA,
    COLD_SCHEMA,
    FRAME_SCHEMA,
    MESSAGES_KEY,
    MICROS_UTC,
    SHAPES_KEY,
    written_as,
)
from rtcap.storage.shapes import VENUE_OF_MESSAGE, render, shape_columns, shapes_from_json

VIEW_NAMES = (
    "frames",
    "lifecycle",
    "gaps",
    "trades",
    "quotes",
    "depth",
    "bars",
    "snapshots",
    "book",
)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


Labelled = tuple[Path, str]  # a capture and its name in the views' ``capture`` column


def discover(
    paths: list[Path], recorders: list[str] | None = None
) -> tuple[list[Labelled], list[Path]]:
    """(captures with their labels, export folders) at or below ``paths``: captures at any
    depth of a dataset root (:mod:`rtcap.storage.dataset`), export folders directly below;
    with ``recorders``, only the captures they name. Captures of one feed over the same time
    are refused (:func:`rtcap.storage.dataset.refuse_duplicates`)."""
    captures: list[Labelled] = []
    exports: list[Path] = []
    for path in paths:
        if not path.exists():
            raise CaptureError(f"no capture or export at {path}: check the path")
        found = find_captures(path)
        captures += [(capture, label(path, capture)) for capture in found]
        candidates = [path] + (
            sorted(p for p in path.iterdir() if p.is_dir()) if path.is_dir() else []
        )
        for candidate in candidates:
            if (
                candidate.is_dir()
                and not is_capture(candidate)
                and (
                    any(candidate.glob("bars_*"))
                    or any(candidate.glob("snapshot_*.json"))
                    or any(candidate.glob("book_*"))
                )
            ):
                exports.append(candidate)
        if not found and not exports and path.is_dir() and any(path.rglob("*.parquet")):
            raise CaptureError(f"{path} holds Parquet files but no manifest.json: not a capture")
    if not captures and not exports:
        raise CaptureError(
            f"nothing to query under {', '.join(map(str, paths))}: give capture "
            "directories (with manifest.json) or export folders"
        )
    names = [name for _, name in captures]
    clash = next((n for n in names if names.count(n) > 1), None)
    if clash:
        raise CaptureError(f"two captures are both named {clash!r}: query their parent folder")
    if recorders:
        captures = chosen(captures, recorders, ", ".join(map(str, paths)))
    refuse_duplicates(captures)
    return captures, exports


PAYLOAD = "\x00payload\x00"  # where a part of the frames views puts its payload expression

LOCKED_DOWN = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
}


def connect(
    paths: list[str | Path], *, include_open: bool = False, recorders: list[str] | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory, read-only DuckDB connection with every view defined over ``paths``
    (``include_open``: frames still in a recording's journal count too; ``recorders``: only
    the captures whose labels name one of them). Two captures of one feed over the same time
    are refused until ``recorders`` chooses (:func:`rtcap.storage.dataset.refuse_duplicates`)."""
    captures, exports = discover([Path(p) for p in paths], recorders)
    manifests = [capture_manifest(capture, include_open=include_open) for capture, _ in captures]
    # Every listed file is checked against its sha256 while the views are made (the digests
    # run without the GIL); no query runs before each is known whole.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        checks = [
            pool.submit(check_file, capture, entry)
            for (capture, _), manifest in zip(captures, manifests, strict=True)
            for entry in segment_files(manifest)
        ]
        try:
            con = duckdb.connect(config=LOCKED_DOWN)
            con.execute("SET TimeZone = 'UTC'")
            _market_views(con, _frames(con, captures, manifests, include_open))
        except Exception:
            _checked(checks)  # a damaged file, where there is one, is the cause to name
            raise
        _checked(checks)
    _bars(con, captures, exports, include_open)
    _snapshots(con, exports)
    _book(con, exports)
    con.execute("SET lock_configuration = true")
    return con


def _by_version(files: list[str], schema: pa.Schema) -> list[tuple[bool, list[str]]]:
    """``files`` grouped by whether they are in ``schema`` (else its earlier version)."""
    groups: dict[bool, list[str]] = {}
    for file in files:
        groups.setdefault(written_as(file, schema), []).append(file)
    return sorted(groups.items())


def _register(con: duckdb.DuckDBPyConnection, name: str, data) -> str:
    con.register(name, data)
    return name


@dataclass(frozen=True)
class Sources:
    """What the market views have to read: raw frames (the JSON views parse them), and the
    venues typed rows are of (``binance``, ``projectx``). A view leaves out the parts with
    nothing to read, so neither binding nor a query pays for them."""

    raw: bool
    typed: frozenset[str]


def _checked(checks: list[Future]) -> None:
    for check in checks:
        check.result()


def _frames(
    con: duckdb.DuckDBPyConnection,
    captures: list[Labelled],
    manifests: list[dict],
    include_open: bool = False,
) -> Sources:
    # (a SELECT with PAYLOAD in it, its payload expression, whether it holds frames no typed
    # column holds: raw frames, message null)
    parts: list[tuple[str, str, bool]] = []
    typed: list[tuple[str, set[str]]] = []  # (a SELECT of typed rows, the venues they are of)
    for index, ((capture, name_of_capture), manifest) in enumerate(
        zip(captures, manifests, strict=True)
    ):
        footers = {
            path: pq.read_metadata(path)
            for path in (str(capture / entry["path"]) for entry in segment_files(manifest))
        }
        schemas = {path: footer.schema.to_arrow_schema() for path, footer in footers.items()}
        cold = [path for path, schema in schemas.items() if "shape" in schema.names]
        files = [path for path in footers if path not in cold]
        for number, file in enumerate(cold):
            name = _register(con, f"_cold_{index}_{number}", ds.dataset(file, format="parquet"))
            schema = schemas[file]
            parts.append(
                (
                    f"SELECT *, CAST(recv_time AS DATE) AS date FROM (SELECT "
                    f"{_quote(name_of_capture)} AS capture, seq, recv_ns, "
                    "make_timestamptz(recv_ns // 1000) AS recv_time, mono_ns, conn, stream, kind, "
                    f"{PAYLOAD} AS payload, target, symbol, exch_ns, "
                    f"CAST(message AS VARCHAR) AS message FROM {name})",
                    _payload_function(con, f"_render_{index}_{number}", schema),
                    _nulls(footers[file], schema, "message") > 0,
                )
            )
            typed.append(
                (
                    f"SELECT {_quote(name_of_capture)} AS capture, "
                    "make_timestamptz(recv_ns // 1000) AS recv_time, "
                    f"CAST(message AS VARCHAR) AS message, {_cold_columns(schema)} FROM {name}"
                    " WHERE message IS NOT NULL",
                    _venues(schema),
                )
            )
        for current, version_files in _by_version(files, FRAME_SCHEMA):
            name = f"_segments_{index}_{'v2' if current else 'v1'}"
            _register(con, name, ds.dataset(version_files, format="parquet"))
            # frames/1 kept the receive time as TIMESTAMP(NANOS), seq/conn unsigned
            columns = (
                "seq, recv_ns, recv_time"
                if current
                else "CAST(seq AS BIGINT) AS seq, epoch_ns(recv_ns) AS recv_ns, "
                "CAST(recv_ns AS TIMESTAMPTZ) AS recv_time"
            )
            conn = "conn" if current else "CAST(conn AS INTEGER) AS conn"
            parts.append(
                (
                    f"SELECT *, CAST(recv_time AS DATE) AS date FROM (SELECT "
                    f"{_quote(name_of_capture)} AS capture, {columns}, mono_ns, {conn}, stream, kind, "
                    f"payload, target, symbol, exch_ns, NULL::VARCHAR AS message FROM {name})",
                    "payload",
                    True,
                )
            )  # the UTC date of the receive time is the date=… partition the row is in
        journaled = list(journal_tables(capture, manifest.get("last_seq"))) if include_open else []
        if journaled:
            name = f"_journal_{index}"
            _register(con, name, pa.concat_tables(journaled))
            parts.append(
                (
                    f"SELECT *, CAST(recv_time AS DATE) AS date FROM (SELECT "
                    f"{_quote(name_of_capture)} AS capture, seq, recv_ns, recv_time, mono_ns, conn, "
                    f"stream, kind, payload, target, symbol, exch_ns, NULL::VARCHAR AS message "
                    f"FROM {name})",
                    "payload",
                    True,
                )
            )
    empty = (
        "SELECT NULL::VARCHAR AS capture, NULL::BIGINT AS seq, NULL::BIGINT AS recv_ns, "
        "NULL::TIMESTAMPTZ AS recv_time, NULL::BIGINT AS mono_ns, NULL::INTEGER AS conn, "
        "NULL::VARCHAR AS stream, NULL::VARCHAR AS kind, NULL::BLOB AS payload, "
        "NULL::VARCHAR AS target, NULL::VARCHAR AS symbol, NULL::BIGINT AS exch_ns, "
        "NULL::DATE AS date, NULL::VARCHAR AS message WHERE false"
    )
    # Two unions of the same files: one with every payload (compacted frames rendered from their
    # shapes, for the frames view), one with the payloads as stored (null where a shape renders
    # it), which the JSON views parse: typed frames are read from their columns (typed_rows),
    # never rendered to JSON to be parsed again, and those views never bind the rendering.
    rendered = [part.replace(PAYLOAD, payload) for part, payload, _ in parts]
    # a compacted file whose every frame is typed has nothing for the JSON views
    stored = [part.replace(PAYLOAD, "payload") for part, _, raw in parts if raw]
    con.execute(f"CREATE VIEW frames_raw AS {' UNION ALL BY NAME '.join(rendered) or empty}")
    con.execute(f"CREATE VIEW frames_stored AS {' UNION ALL BY NAME '.join(stored) or empty}")
    venues = _typed(con, typed)
    con.execute("""
        CREATE VIEW frames AS
        SELECT capture, seq, recv_time, recv_ns, mono_ns, conn, stream, kind, target, symbol,
               CASE WHEN exch_ns IS NOT NULL THEN make_timestamptz(exch_ns // 1000) END AS exch_time,
               exch_ns, octet_length(payload) AS bytes,
               CASE WHEN kind <> 'binary' THEN try(decode(payload)) END AS payload_text,
               payload, date, message
        FROM frames_raw
    """)
    con.execute("""
        CREATE VIEW stored_frames AS
        SELECT capture, seq, recv_time, stream, conn, kind,
               CASE WHEN kind <> 'binary' THEN try(decode(payload)) END AS payload_text
        FROM frames_stored WHERE message IS NULL
    """)
    kinds = ", ".join(f"'{kind}'" for kind in lifecycle.ROW_KINDS)
    con.execute(f"""
        CREATE VIEW lifecycle AS
        SELECT capture, seq, recv_time, stream, conn, kind,
               {_json_columns("j", lifecycle.LIFECYCLE_COLUMNS)}, detail
        FROM (SELECT *, rtrim(payload_text, chr(30)) AS detail,
                     CASE WHEN json_valid(rtrim(payload_text, chr(30)))
                          THEN rtrim(payload_text, chr(30))::JSON END AS j
              FROM stored_frames WHERE kind IN ({kinds}))
    """)
    con.execute(f"""
        CREATE VIEW gaps AS
        SELECT capture, seq, recv_time, stream, conn,
               coalesce(payload_text ->> '$.kind', 'connection') AS gap_kind,
               make_timestamptz(TRY_CAST(payload_text ->> '$.from_ns' AS BIGINT) // 1000) AS gap_from,
               make_timestamptz(TRY_CAST(payload_text ->> '$.to_ns' AS BIGINT) // 1000) AS gap_to,
               {_json_columns("payload_text", lifecycle.GAP_COLUMNS)}
        FROM stored_frames WHERE kind = 'gap'
    """)
    return Sources(raw=bool(stored), typed=venues)


def _venues(schema: pa.Schema) -> set[str]:
    """The venues a cold file holds typed rows of (``typed/1`` typed Binance messages only)."""
    written = (schema.metadata or {}).get(MESSAGES_KEY)
    if written is None:
        return {"binance"} if "item_price" not in schema.names else set(VENUE_OF_MESSAGE.values())
    return {VENUE_OF_MESSAGE[message] for message in orjson.loads(written)}


def _cold_columns(schema: pa.Schema) -> str:
    """Every column of the cold form but payload and message, as a file of any typed/N form
    reads: a column its form did not have yet is NULL."""
    present = set(schema.names)
    return ", ".join(
        f.name if f.name in present else f"NULL::{_sql_type(f.type)} AS {f.name}"
        for f in COLD_SCHEMA
        if f.name not in ("payload", "message")
    )


def _nulls(metadata: pq.FileMetaData, schema: pa.Schema, column: str) -> int:
    """The nulls of ``column`` in a Parquet file, from its footer's statistics (every row
    when a row group has none)."""
    index = schema.get_field_index(column)
    nulls = 0
    for group in range(metadata.num_row_groups):
        chunk = metadata.row_group(group)
        stats = chunk.column(index).statistics
        nulls += stats.null_count if stats is not None and stats.has_null_count else chunk.num_rows
    return nulls


def _payload_function(con: duckdb.DuckDBPyConnection, name: str, schema: pa.Schema) -> str:
    """Define ``name``, a DuckDB function giving the payloads of the cold ``file``: its shapes
    filled with its typed columns by :func:`rtcap.storage.shapes.render`, the rendering every
    other reader uses; return its call. DuckDB calls it only for rows whose payload a query
    reads, a vector of rows at a time."""
    shapes = shapes_from_json((schema.metadata or {})[SHAPES_KEY])
    filled = sorted({column for shape in shapes for column in shape_columns(shape)})
    columns = ["shape", "payload", *filled]

    def payloads(rows: pa.StructArray) -> pa.Array:
        if isinstance(rows, pa.ChunkedArray):
            rows = rows.combine_chunks()
        values = {column: rows.field(column) for column in columns}
        return render(values, shapes, values["payload"])

    fields = ", ".join(f"{column} {_sql_type(schema.field(column).type)}" for column in columns)
    con.create_function(
        name,
        payloads,
        [f"STRUCT({fields})"],
        "BLOB",
        type="arrow",
        null_handling="special",  # a row's unfilled columns are null, its payload too
    )
    return f"{name}(struct_pack({', '.join(columns)}))"


def _typed(con: duckdb.DuckDBPyConnection, parts: list[tuple[str, set[str]]]) -> frozenset[str]:
    """Views over the typed columns of compacted captures (``rtcap compact``): what the codec
    read from each market message, as numbers, with no JSON to parse. ``trades``, ``quotes``
    and ``depth`` add them to what they decode from raw frames. Returns the venues present;
    each venue's part of a view reads only the files holding that venue's rows."""
    empty = (
        "SELECT NULL::VARCHAR AS capture, NULL::TIMESTAMPTZ AS recv_time, "
        "NULL::VARCHAR AS message, "
        + ", ".join(
            f"NULL::{_sql_type(f.type)} AS {f.name}"
            for f in COLD_SCHEMA
            if f.name not in ("payload", "message")
        )
        + " WHERE false"
    )
    union = " UNION ALL BY NAME "
    con.execute(f"CREATE VIEW typed_rows AS {union.join(sql for sql, _ in parts) or empty}")
    present = frozenset(venue for _, venues in parts for venue in venues)
    for venue in set(VENUE_OF_MESSAGE.values()):
        of_venue = [sql for sql, venues in parts if venue in venues]
        con.execute(f"CREATE VIEW _typed_{venue} AS {union.join(of_venue) or empty}")
    common = """capture, seq, recv_time, 'binance' AS source,
               CAST(instrument AS VARCHAR) AS instrument,
               CASE WHEN target IS NOT NULL THEN lower(symbol) || '@' || target END AS contract"""
    # a ProjectX frame's symbol column is its contract id; items are one row each
    projectx = f"""capture, seq, recv_time, 'projectx' AS source,
               {sql_symbol_case("symbol")} AS instrument, symbol AS contract"""
    item_time = "make_timestamptz(unnest(item_ns) // 1000)"
    side = """{common}, '{side}' AS side,
               unnest({side}_prices) / pow(10, {side}_price_scale) AS price,
               unnest({side}_sizes) / pow(10, {side}_size_scale) AS volume,
               CASE WHEN event_ms IS NOT NULL THEN make_timestamptz(event_ms * 1000) END
                   AS exch_time,
               first_update_id, update_id, message = 'depthSnapshot' AS snapshot
        FROM _typed_binance WHERE message IN ('depthUpdate', 'depthSnapshot')"""
    views = {
        "typed_trades": {
            "binance": f"""
                SELECT {common}, 1::BIGINT AS print_index, price / pow(10, price_scale) AS price,
                       qty / pow(10, qty_scale) AS volume,
                       CASE WHEN maker THEN 'sell' ELSE 'buy' END AS side,
                       make_timestamptz(time_ms * 1000) AS exch_time, trade_id
                FROM _typed_binance WHERE message IN ('trade', 'aggTrade')""",
            "projectx": f"""
                SELECT {projectx}, generate_subscripts(item_price, 1) AS print_index,
                       unnest(item_price) / pow(10, item_price_scale) AS price,
                       CAST(unnest(item_volume) AS DOUBLE) AS volume,
                       {_sides("unnest(item_type)", projectx_codec.TRADE_SIDES)} AS side,
                       {item_time} AS exch_time, NULL::BIGINT AS trade_id
                FROM _typed_projectx WHERE message = '{projectx_codec.TRADE}'""",
        },
        "typed_quotes": {
            "binance": f"""
                SELECT {common}, bid / pow(10, bid_scale) AS bid, ask / pow(10, ask_scale) AS ask,
                       bid_qty / pow(10, bid_qty_scale) AS bid_size,
                       ask_qty / pow(10, ask_qty_scale) AS ask_size, NULL::DOUBLE AS last,
                       NULL::DOUBLE AS session_volume,
                       CASE WHEN time_ms IS NOT NULL THEN make_timestamptz(time_ms * 1000) END
                           AS exch_time
                FROM _typed_binance WHERE message = 'bookTicker'""",
            "projectx": f"""
                SELECT {projectx}, bid / pow(10, bid_scale) AS bid, ask / pow(10, ask_scale) AS ask,
                       NULL::DOUBLE AS bid_size, NULL::DOUBLE AS ask_size,
                       last / pow(10, last_scale) AS last,
                       CAST(session_volume AS DOUBLE) AS session_volume,
                       make_timestamptz(coalesce(quote_ns, updated_ns) // 1000) AS exch_time
                FROM _typed_projectx WHERE message = '{projectx_codec.QUOTE}'""",
        },
        "typed_depth": {
            "binance": f"""
                SELECT {side.format(common=common, side="bid")}
                UNION ALL
                SELECT {side.format(common=common, side="ask")}""",
            "projectx": f"""
                SELECT {projectx},
                       {_sides("unnest(item_type)", projectx_codec.DEPTH_SIDES, "'other'")} AS side,
                       unnest(item_price) / pow(10, item_price_scale) AS price,
                       CAST(unnest(item_volume) AS DOUBLE) AS volume, {item_time} AS exch_time,
                       NULL::BIGINT AS first_update_id, NULL::BIGINT AS update_id,
                       false AS snapshot
                FROM _typed_projectx WHERE message = '{projectx_codec.DEPTH}'""",
        },
    }
    for name, by_venue in views.items():
        chosen = [sql for venue, sql in by_venue.items() if venue in present] or list(
            by_venue.values()
        )
        con.execute(f"CREATE VIEW {name} AS {' UNION ALL '.join(chosen)}")
    return present


def _sides(number: str, sides: dict[int, str], otherwise: str = "NULL") -> str:
    """The side a ProjectX ``type`` number means (the codec's table), in SQL."""
    cases = " ".join(f"WHEN {value} THEN '{side}'" for value, side in sides.items())
    return f"CASE {number} {cases} ELSE {otherwise} END"


def _sql_type(kind: pa.DataType) -> str:
    """The DuckDB type a typed column reads as (for the empty view's columns)."""
    if pa.types.is_dictionary(kind):
        return "VARCHAR"
    if pa.types.is_list(kind):
        return f"{_sql_type(kind.value_type)}[]"
    if pa.types.is_boolean(kind):
        return "BOOLEAN"
    if pa.types.is_binary(kind):
        return "BLOB"
    return "BIGINT"


_DUCKDB_TYPES = {"int32": "INTEGER", "int64": "BIGINT", "float64": "DOUBLE"}


def _json_columns(source: str, columns: tuple[tuple[str, str, str], ...]) -> str:
    """``source ->> '$.field'`` for each lifecycle column, cast to its type."""
    extract = source + " ->> '$.{field}'"
    return lifecycle.view_columns(columns, extract, "TRY_CAST({value} AS {type})", _DUCKDB_TYPES)


def _union_view(
    con: duckdb.DuckDBPyConnection, name: str, sources: Sources, raw: str, typed: str
) -> None:
    """A market view: what it decodes from raw frames and what it reads of typed rows, each
    only where the captures have some (the raw part alone binds the columns of an empty one)."""
    parts = ([raw] if sources.raw or not sources.typed else []) + ([typed] if sources.typed else [])
    con.execute(f"CREATE VIEW {name} AS {' UNION ALL '.join(parts)}")


def _market_views(con: duckdb.DuckDBPyConnection, sources: Sources) -> None:
    # Every SignalR record of every text frame (one frame may hold several), and every
    # Binance message (unwrapped from combined-stream envelopes).
    con.execute("""
        CREATE VIEW signalr_records AS
        SELECT f.capture, f.seq, r.record_index, f.recv_time, f.stream, r.record,
               r.record ->> '$.target' AS target,
               r.record ->> '$.arguments[0]' AS contract,
               json_extract(r.record, '$.arguments[1]') AS body
        FROM stored_frames f,
             unnest(string_split(rtrim(f.payload_text, chr(30)), chr(30))) WITH ORDINALITY AS r(record, record_index)
        WHERE f.kind = 'text' AND ends_with(f.payload_text, chr(30))
          AND r.record <> '' AND (r.record ->> '$.type') = '1'
    """)
    con.execute("""
        CREATE VIEW binance_messages AS
        SELECT capture, seq, recv_time, stream,
               payload_text ->> '$.stream' AS binance_stream,
               CASE WHEN json_exists(payload_text, '$.data') THEN json_extract(payload_text, '$.data')
                    ELSE payload_text::JSON END AS data
        FROM stored_frames
        WHERE kind = 'text' AND NOT ends_with(payload_text, chr(30))
          AND starts_with(ltrim(payload_text), '{') AND json_valid(payload_text)
    """)
    instrument = sql_symbol_case("contract")
    _union_view(
        con,
        "trades",
        sources,
        f"""
        SELECT capture, seq, record_index, print_index, recv_time, 'projectx' AS source,
               {instrument} AS symbol, contract,
               CAST(t ->> '$.price' AS DOUBLE) AS price, CAST(t ->> '$.volume' AS DOUBLE) AS volume,
               {_sides("TRY_CAST(t ->> '$.type' AS INTEGER)", projectx_codec.TRADE_SIDES)} AS side,
               CAST(t ->> '$.timestamp' AS TIMESTAMPTZ) AS exch_time, NULL::BIGINT AS trade_id
        FROM (SELECT s.*, p.t, p.print_index FROM signalr_records s,
                     unnest(from_json(CASE WHEN json_type(body) = 'ARRAY' THEN body ELSE json_array(body) END, '["JSON"]'))
                     WITH ORDINALITY AS p(t, print_index)
              WHERE s.target = 'GatewayTrade')
        UNION ALL
        SELECT capture, seq, 1, 1, recv_time, 'binance', data ->> '$.s', binance_stream,
               CAST(data ->> '$.p' AS DOUBLE), CAST(data ->> '$.q' AS DOUBLE),
               CASE WHEN CAST(data ->> '$.m' AS BOOLEAN) THEN 'sell' ELSE 'buy' END,
               make_timestamptz(CAST(data ->> '$.T' AS BIGINT) * 1000),
               CAST(coalesce(data ->> '$.t', data ->> '$.a') AS BIGINT)
        FROM binance_messages WHERE (data ->> '$.e') IN ('trade', 'aggTrade')
""",
        """
        SELECT capture, seq, 1::BIGINT AS record_index, print_index, recv_time, source,
               instrument AS symbol, contract, price, volume, side, exch_time, trade_id
        FROM typed_trades
    """,
    )
    _union_view(
        con,
        "quotes",
        sources,
        f"""
        SELECT capture, seq, recv_time, 'projectx' AS source, {instrument} AS symbol, contract,
               CAST(body ->> '$.bestBid' AS DOUBLE) AS bid, CAST(body ->> '$.bestAsk' AS DOUBLE) AS ask,
               NULL::DOUBLE AS bid_size, NULL::DOUBLE AS ask_size,
               CAST(body ->> '$.lastPrice' AS DOUBLE) AS last,
               CAST(body ->> '$.volume' AS DOUBLE) AS session_volume,
               CAST(coalesce(body ->> '$.timestamp', body ->> '$.lastUpdated') AS TIMESTAMPTZ) AS exch_time
        FROM signalr_records WHERE target = 'GatewayQuote'
        UNION ALL
        SELECT capture, seq, recv_time, 'binance', data ->> '$.s', binance_stream,
               CAST(data ->> '$.b' AS DOUBLE), CAST(data ->> '$.a' AS DOUBLE),
               CAST(data ->> '$.B' AS DOUBLE), CAST(data ->> '$.A' AS DOUBLE), NULL, NULL,
               CASE WHEN data ->> '$.T' IS NOT NULL
                    THEN make_timestamptz(CAST(data ->> '$.T' AS BIGINT) * 1000) END
        FROM binance_messages
        WHERE ((data ->> '$.e') = 'bookTicker'
               OR ((data ->> '$.e') IS NULL AND json_exists(data, '$.u') AND json_exists(data, '$.b')))
""",
        """
        SELECT capture, seq, recv_time, source, instrument AS symbol, contract, bid, ask,
               bid_size, ask_size, last, session_volume, exch_time
        FROM typed_quotes
    """,
    )
    _union_view(
        con,
        "depth",
        sources,
        f"""
        SELECT capture, seq, recv_time, 'projectx' AS source, {instrument} AS symbol, contract,
               {_sides("TRY_CAST(l ->> '$.type' AS INTEGER)", projectx_codec.DEPTH_SIDES, "'other'")}
                   AS side,
               CAST(l ->> '$.price' AS DOUBLE) AS price,
               CAST(coalesce(l ->> '$.volume', l ->> '$.size') AS DOUBLE) AS volume,
               CAST(l ->> '$.timestamp' AS TIMESTAMPTZ) AS exch_time,
               NULL::BIGINT AS first_update_id, NULL::BIGINT AS last_update_id, false AS snapshot
        FROM (SELECT *, unnest(from_json(CASE WHEN json_type(body) = 'ARRAY' THEN body
                                              ELSE json_array(body) END, '["JSON"]')) AS l
              FROM signalr_records WHERE target = 'GatewayDepth')
        UNION ALL
        SELECT capture, seq, recv_time, 'binance', symbol, binance_stream, side,
               CAST(level ->> '$[0]' AS DOUBLE), CAST(level ->> '$[1]' AS DOUBLE), exch_time,
               first_id, last_id, snapshot
        FROM (
            SELECT capture, seq, recv_time, binance_stream,
                   coalesce(data ->> '$.s', upper(split_part(binance_stream, '@', 1))) AS symbol,
                   CASE WHEN data ->> '$.E' IS NOT NULL
                        THEN make_timestamptz(CAST(data ->> '$.E' AS BIGINT) * 1000) END AS exch_time,
                   CAST(data ->> '$.U' AS BIGINT) AS first_id,
                   CAST(coalesce(data ->> '$.u', data ->> '$.lastUpdateId') AS BIGINT) AS last_id,
                   json_exists(data, '$.lastUpdateId') AS snapshot,
                   unnest(from_json(coalesce(json_extract(data, '$.b'), json_extract(data, '$.bids')), '["JSON"]')) AS level,
                   'bid' AS side
            FROM binance_messages WHERE (data ->> '$.e') = 'depthUpdate' OR json_exists(data, '$.lastUpdateId')
            UNION ALL
            SELECT capture, seq, recv_time, binance_stream,
                   coalesce(data ->> '$.s', upper(split_part(binance_stream, '@', 1))),
                   CASE WHEN data ->> '$.E' IS NOT NULL
                        THEN make_timestamptz(CAST(data ->> '$.E' AS BIGINT) * 1000) END,
                   CAST(data ->> '$.U' AS BIGINT),
                   CAST(coalesce(data ->> '$.u', data ->> '$.lastUpdateId') AS BIGINT),
                   json_exists(data, '$.lastUpdateId'),
                   unnest(from_json(coalesce(json_extract(data, '$.a'), json_extract(data, '$.asks')), '["JSON"]')),
                   'ask'
            FROM binance_messages WHERE (data ->> '$.e') = 'depthUpdate' OR json_exists(data, '$.lastUpdateId')
        )
""",
        """
        SELECT capture, seq, recv_time, source, instrument AS symbol, contract, side, price,
               volume, exch_time, first_update_id, update_id AS last_update_id, snapshot
        FROM typed_depth
    """,
    )


BAR_COLUMNS = (
    "CAST(timestamp AS TIMESTAMPTZ) AS timestamp, instrument, timeframe, "
    "CAST(open AS DOUBLE) AS open, CAST(high AS DOUBLE) AS high, "
    "CAST(low AS DOUBLE) AS low, CAST(close AS DOUBLE) AS close, "
    "CAST(volume AS DOUBLE) AS volume"
)


EXPORT_CSV_TYPES = {
    "timestamp": MICROS_UTC,
    "timeframe": pa.string(),
    "open": pa.float64(),
    "high": pa.float64(),
    "low": pa.float64(),
    "close": pa.float64(),
    "volume": pa.float64(),
}


def _bars(
    con: duckdb.DuckDBPyConnection,
    captures: list[Labelled],
    exports: list[Path],
    include_open: bool = False,
) -> None:
    parts = []
    for index, (capture, name_of_capture) in enumerate(captures):
        entry = capture_manifest(capture, include_open=include_open).get("live_bars") or {}
        files = [str(check_file(capture, f)) for f in entry.get("files") or []]
        # bars/2 keep start_time; bars/1 had start_ns as a timestamp
        for current, version_files in _by_version(files, BAR_SCHEMA):
            dataset = ds.dataset(version_files, format="parquet")
            name = _register(con, f"_live_bars_{index}_{int(current)}", dataset)
            start = "start_time" if current else "start_ns"
            parts.append(
                f"SELECT {_quote(name_of_capture)} AS capture, 'live' AS origin, "
                f"{start} AS timestamp, instrument, timeframe, open, high, low, close, "
                f"volume FROM {name}"
            )
    for index, folder in enumerate(exports):
        csvs = sorted(folder.glob("bars_*.csv"))
        if csvs:
            tables = [_read_export_csv(csv) for csv in csvs]
            name = _register(con, f"_export_csv_{index}", pa.concat_tables(tables))
            parts.append(
                f"SELECT {_quote(folder.name)} AS capture, 'export' AS origin, timestamp, "
                f"instrument, timeframe, open, high, low, close, volume FROM {name}"
            )
        parquets = sorted(folder.glob("bars_*.parquet"))
        if parquets:
            dataset = ds.dataset([str(p) for p in parquets], format="parquet")
            name = _register(con, f"_export_parquet_{index}", dataset)
            parts.append(
                f"SELECT {_quote(folder.name)} AS capture, 'export' AS origin, timestamp, "
                f"instrument, timeframe, open, high, low, close, volume FROM {name}"
            )
    body = " UNION ALL BY NAME ".join(
        f"SELECT capture, origin, {BAR_COLUMNS} FROM ({p})" for p in parts
    )
    empty = (
        f"SELECT NULL::VARCHAR AS capture, NULL::VARCHAR AS origin, {BAR_COLUMNS} FROM "
        "(SELECT NULL AS timestamp, NULL AS instrument, NULL AS timeframe, NULL AS open, "
        "NULL AS high, NULL AS low, NULL AS close, NULL AS volume) WHERE false"
    )
    con.execute(f"CREATE VIEW bars AS {body or empty}")


def _read_export_csv(path: Path) -> pa.Table:
    """A bars CSV with its instrument: its own column (exports since it had one), else the
    symbol its file name carries."""
    try:
        table = pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(column_types=EXPORT_CSV_TYPES),
        )
        table = table.select(
            [*EXPORT_CSV_TYPES, *(["instrument"] if "instrument" in table.column_names else [])]
        )
    except (OSError, pa.ArrowException) as exc:
        raise CaptureError(
            f"{path} is not a bars CSV written by rtcap export ({str(exc).splitlines()[0]})"
        ) from None
    if "instrument" not in table.column_names:
        instrument = _export_instrument(path.name)
        table = table.append_column(
            "instrument", pa.array([instrument] * table.num_rows, pa.string())
        )
    return table


def _export_instrument(name: str) -> str | None:
    match = re.match(r"bars_([A-Za-z0-9.]+)_\d{8}T", name)
    return match.group(1) if match else None


def _snapshots(con: duckdb.DuckDBPyConnection, exports: list[Path]) -> None:
    rows = []
    for path in (f for folder in exports for f in sorted(folder.glob("snapshot_*.json"))):
        try:
            data = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise CaptureError(
                f"{path} is not a snapshot written by rtcap export ({exc})"
            ) from None
        if not isinstance(data, dict):
            raise CaptureError(f"{path} is not a snapshot written by rtcap export")
        rows.append(
            {
                "file": path.name,
                "export_timestamp": data.get("export_timestamp"),
                "data_summary": orjson.dumps(data.get("data_summary")).decode(),
                "recent_data": orjson.dumps(data.get("recent_data")).decode(),
            }
        )
    schema = pa.schema(
        [
            (name, pa.string())
            for name in ("file", "export_timestamp", "data_summary", "recent_data")
        ]
    )
    name = _register(con, "_snapshots", pa.Table.from_pylist(rows, schema=schema))
    con.execute(
        "CREATE VIEW snapshots AS SELECT file, CAST(export_timestamp AS TIMESTAMPTZ) AS "
        "export_timestamp, CAST(data_summary AS JSON) AS data_summary, "
        f"CAST(recent_data AS JSON) AS recent_data FROM {name}"
    )


def _book(con: duckdb.DuckDBPyConnection, exports: list[Path]) -> None:
    tables = [pa.Table.from_pylist([], schema=BOOK_SCHEMA)]
    parquets: list[str] = []
    for folder in exports:
        for path in sorted(folder.glob("book_*.csv")):
            try:
                table = pacsv.read_csv(
                    path,
                    convert_options=pacsv.ConvertOptions(
                        column_types=BOOK_SCHEMA, include_columns=BOOK_SCHEMA.names
                    ),
                )
            except (OSError, pa.ArrowException) as exc:
                raise CaptureError(
                    f"{path} is not a book CSV written by rtcap export --book "
                    f"({str(exc).splitlines()[0]})"
                ) from None
            tables.append(table.select(BOOK_SCHEMA.names).cast(BOOK_SCHEMA))
        parquets += [str(p) for p in sorted(folder.glob("book_*.parquet"))]
    name = _register(con, "_book_csv", pa.concat_tables(tables))
    body = f"SELECT * FROM {name}"
    if parquets:
        try:
            dataset = ds.dataset(parquets, format="parquet", schema=BOOK_SCHEMA)
        except (OSError, pa.ArrowException) as exc:
            raise CaptureError(
                f"book Parquet files under an export are unreadable: {exc}"
            ) from None
        body += f" UNION ALL BY NAME SELECT * FROM {_register(con, '_book_parquet', dataset)}"
    con.execute(f"CREATE VIEW book AS {body}")
