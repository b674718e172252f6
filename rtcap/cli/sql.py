"""``rtcap sql``: DuckDB over captures and exports, as a one-shot query or a prompt."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
import orjson

from rtcap.cli import summary
from rtcap.cli.options import CAPTURE, readable, recorders_option
from rtcap.cli.output import refuse_output_inside_captures, table_text
from rtcap.storage.errors import CaptureError

if TYPE_CHECKING:
    import duckdb


@click.command(short_help=summary("sql"))
@click.argument("paths", nargs=-1, type=CAPTURE)
@click.option("-c", "--command", "query", help="SQL to run; without it, a prompt opens.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json", "parquet"]),
    default="table",
    show_default=True,
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the result to this file (needed for parquet).",
)
@click.option("--max-rows", default=40, show_default=True, help="Rows shown by --format table.")
@click.option(
    "--include-open",
    is_flag=True,
    help="Also read frames still in a recording's journal (while a recorder runs).",
)
@recorders_option
def sql(paths, query, fmt, out, max_rows, include_open, recorders) -> None:
    """Query captures and exports with DuckDB.

    PATHS are capture directories, folders of captures, or export folders (default:
    ./captures). Views: frames, lifecycle, gaps, trades, quotes, depth, bars, snapshots,
    typed_rows (the typed columns of compacted captures).
    Nothing is ever written into a capture.

        rtcap sql captures/today -c "select symbol, count(*) from trades group by 1"
    """
    from rtcap.analysis.views import connect

    if fmt == "parquet" and out is None:
        raise click.UsageError("--format parquet needs --out FILE")
    try:
        sources = [readable(p) for p in paths] or [Path("captures")]
    except CaptureError as exc:
        raise click.ClickException(str(exc)) from None
    if out is not None:
        refuse_output_inside_captures(out)
    try:
        con = connect(sources, include_open=include_open, recorders=recorders)
    except CaptureError as exc:
        raise click.ClickException(str(exc)) from None
    if query is not None:
        _run_script(con, query, fmt, out, max_rows)
        return
    if not sys.stdin.isatty():
        _run_script(con, sys.stdin.read(), fmt, out, max_rows)
        return
    _prompt(con, fmt, max_rows)


def _run_script(
    con: duckdb.DuckDBPyConnection, script: str, fmt: str, out: Path | None, max_rows: int
) -> None:
    """Every statement of ``script`` in order, each result printed (one file takes one)."""
    import duckdb

    try:
        statements = [statement.query for statement in duckdb.extract_statements(script)]
    except duckdb.Error as exc:
        raise click.ClickException(_one_line(exc)) from None
    if out is not None and len(statements) > 1:
        raise click.UsageError(
            f"--out takes the result of one statement, and {len(statements)} were given: "
            "run them one at a time, or drop --out"
        )
    for index, statement in enumerate(statements):
        if index:
            click.echo()
        _run(con, statement, fmt, out, max_rows)


def _one_line(exc: Exception) -> str:
    """DuckDB's error in one line, with the views a query can name."""
    from rtcap.analysis.views import VIEW_NAMES

    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return f"{first} (views: {', '.join(VIEW_NAMES)})"


def _run(
    con: duckdb.DuckDBPyConnection, query: str, fmt: str, out: Path | None, max_rows: int
) -> None:
    import duckdb
    import pyarrow.parquet as pq

    try:
        relation = con.sql(query)
        if relation is None:
            return
        if fmt == "parquet":
            # The connection cannot write files (views.LOCKED_DOWN): Arrow writes the result.
            pq.write_table(relation.to_arrow_table(), out, compression="zstd")
            click.echo(f"wrote {out}")
            return
        text = _render(relation, fmt, max_rows)
    except duckdb.Error as exc:
        raise click.ClickException(_one_line(exc)) from None
    if out is not None:
        out.write_text(text)
        click.echo(f"wrote {out}")
    else:
        click.echo(text, nl=not text.endswith("\n"))


def _render(relation: duckdb.DuckDBPyRelation, fmt: str, max_rows: int) -> str:
    if fmt == "table":
        return _box(relation, max_rows)
    frame = _blobs_as_text(relation).pl()
    if fmt == "csv":
        return frame.write_csv()
    rows = frame.to_dicts()
    return orjson.dumps(rows, default=str, option=orjson.OPT_INDENT_2).decode() + "\n"


def _blobs_as_text(relation: duckdb.DuckDBPyRelation) -> duckdb.DuckDBPyRelation:
    """BLOB columns (``payload``) as DuckDB's own text of a blob (printable bytes as they are,
    others as ``\\xNN``), which CSV and JSON can hold."""
    types = [str(t) for t in relation.types]
    if "BLOB" not in types:
        return relation
    quoted = ['"' + c.replace('"', '""') + '"' for c in relation.columns]
    return relation.project(
        ", ".join(
            f"CAST({q} AS VARCHAR) AS {q}" if t == "BLOB" else q
            for q, t in zip(quoted, types, strict=True)
        )
    )


def _box(relation: duckdb.DuckDBPyRelation, max_rows: int) -> str:
    frame = relation.limit(max_rows + 1).pl()
    more = frame.height > max_rows
    text = table_text(frame, max_rows)
    return text + ("\n… more rows (use --max-rows or --format csv)" if more else "")


def _prompt(con: duckdb.DuckDBPyConnection, fmt: str, max_rows: int) -> None:
    from rtcap.analysis.views import VIEW_NAMES

    click.echo(
        f"rtcap sql — views: {', '.join(VIEW_NAMES)}. End statements with ';', "
        "quit with .quit or Ctrl+D."
    )
    buffer = ""
    while True:
        try:
            line = input("rtcap> " if not buffer else "   ...> ")
        except (EOFError, KeyboardInterrupt):
            click.echo()
            return
        if line.strip() in (".quit", ".exit", "\\q"):
            return
        buffer += line + "\n"
        if buffer.strip().endswith(";"):
            try:
                _run_script(con, buffer, fmt, None, max_rows)
            except click.ClickException as exc:
                click.echo(f"Error: {exc.message}", err=True)
            buffer = ""
