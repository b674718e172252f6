"""``rtcap export`` and ``rtcap info``: bars out of a capture, and what a capture holds."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from rtcap.cli import summary
from rtcap.cli.options import (
    CAPTURE,
    book_options,
    book_sampling,
    indicators_option,
    on_each_capture,
    readable,
    recorders_option,
    timeframes_option,
)
from rtcap.cli.output import refuse_output_inside_captures
from rtcap.storage.errors import CaptureError
from rtcap.storage.integrity import check_file, open_capture
from rtcap.timeutil import ns_to_datetime


@click.command("export", short_help=summary("export"))
@click.argument("capture", type=CAPTURE)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder to write bars_*.csv and snapshot_*.json into.",
)
@click.option("--timeframes", default="1min,5min", show_default=True, callback=timeframes_option)
@click.option("--from", "start", help="Start: +5m, -30s or an ISO time.")
@click.option("--to", "end", help="End (exclusive).")
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True
)
@book_options("Also write top-N order-book snapshots (book_*.csv/.parquet, the sql 'book' view).")
@recorders_option
def export_command(capture, out, timeframes, start, end, fmt, book, every, recorders) -> None:
    """Replay CAPTURE at max speed and write its completed bars and a JSON snapshot to OUT
    (and, with --book, order-book snapshots).

    Then query them: rtcap sql OUT -c "select timeframe, count(*) from bars group by 1"
    """
    from rtcap.analysis.export import export_bars

    capture = readable(capture)
    refuse_output_inside_captures(out)
    sampling = book_sampling(book, every)
    try:
        result = asyncio.run(
            export_bars(
                capture,
                out,
                timeframes,
                start=start,
                end=end,
                fmt=fmt,
                book=sampling,
                recorders=recorders,
            )
        )
    except (CaptureError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    for path in result.files:
        click.echo(f"wrote {path}")
    for symbol, counts in result.bars.items():
        click.echo(f"  {symbol}: " + ", ".join(f"{n} {tf} bars" for tf, n in counts.items()))
    if result.book_rows is not None:
        click.echo(f"  book: {result.book_rows:,} rows (top {book} levels every {every:g}s)")


@click.command("info", short_help=summary("info"))
@click.argument("capture", type=CAPTURE)
@click.option(
    "--verify-checksums",
    is_flag=True,
    help="Print every file's check (files are always checked before their contents are read).",
)
def info_command(capture: Path, verify_checksums: bool) -> None:
    """What CAPTURE holds: span, frames and bytes by stream and kind, compression, connections
    and gaps, receive-vs-exchange clock skew, and its segments. CAPTURE may be a dataset root
    (local or a URI): each of its captures is described in turn.

    Every segment and bar file is checked against the manifest (size, sha256, Parquet) first;
    damaged files are listed and the command exits 1."""
    on_each_capture(capture, lambda name, local: _info(name, local, verify_checksums))


def _info(location: str, capture: Path, verify_checksums: bool) -> None:
    """``rtcap info`` of one capture (``location`` is what the user named it by: a URI is
    shown as itself, with its mirror beside it)."""
    from rtcap.analysis.views import connect

    try:
        manifest = open_capture(capture)
    except CaptureError as exc:
        raise click.ClickException(str(exc)) from None
    segments = manifest["segments"]
    files = [f for s in segments for f in s["files"]]
    on_disk = sum(f.get("bytes") or 0 for f in files)
    first = min((s["first_ns"] for s in segments), default=None)
    last = max((s["last_ns"] for s in segments), default=None)
    source = manifest.get("source") or {}
    click.echo(f"capture   {location}  ({manifest['status']}, {source.get('kind', '?')} source)")
    if location != str(capture):
        click.echo(f"mirror    {capture}")
    if first is not None:
        click.echo(f"span      {_iso(first)} → {_iso(last)}  ({(last - first) / 1e9:,.1f} s)")
    payload = manifest["payload_bytes"]
    ratio = f"{payload / on_disk:.2f}x" if on_disk else "-"
    click.echo(
        f"frames    {manifest['frames']:,} rows, {payload / 1e6:,.2f} MB payload, "
        f"{on_disk / 1e6:,.2f} MB on disk, compression {ratio}"
    )
    _cold(capture, manifest, files)
    live = manifest.get("live_bars") or {}
    bar_files = list(live.get("files") or [])
    problems = {}
    for entry in [*files, *bar_files]:
        try:
            check_file(capture, entry)
        except CaptureError as exc:
            problems[entry if isinstance(entry, str) else entry["path"]] = str(exc)
    if not problems:
        _feeds(capture, manifest)
        _frame_statistics(connect([capture]), manifest)
    else:
        click.echo(f"contents  not read: {len(problems)} damaged file(s), listed below")
    if live:
        click.echo(
            f"live bars {live.get('count', 0)} ({', '.join(live.get('timeframes') or [])}),"
            f" sha256 {str(live.get('stream_hash', ''))[:16]}…"
        )
    sessions = manifest.get("sessions") or []
    if len(sessions) > 1:
        click.echo(f"sessions  {len(sessions)} (recorded with --append; verify checks each)")
    for damage in manifest.get("damage") or []:
        click.echo(f"damage    {damage.get('journal')}: {damage.get('problem')}")
    click.echo(f"segments  {len(segments)} ({len(files)} files)")
    for file in files:
        problem = problems.get(file["path"])
        mark = "  DAMAGED" if problem else ("  ok" if verify_checksums else "")
        click.echo(
            f"  {file['path']}  {file['rows']:,} rows  {file.get('bytes') or 0:,} B  "
            f"sha256 {file['sha256'][:16]}…{mark}"
        )
    for problem in problems.values():
        click.echo(f"  {problem}")
    if problems:
        raise click.ClickException(
            f"{len(problems)} file(s) of {capture} are missing or damaged (listed above)"
        )


def _feeds(capture: Path, manifest: dict) -> None:
    """What the capture holds, as the overlap rule of datasets sees it (storage.identity)."""
    from rtcap.storage.identity import capture_feeds

    feeds = capture_feeds(manifest, lambda entry: check_file(capture, entry))
    by_symbol: dict[tuple[str, str], list[str]] = {}
    for venue, symbol, channel in sorted(feeds):
        by_symbol.setdefault((venue, symbol), []).append(channel)
    for (venue, symbol), channels in by_symbol.items():
        click.echo(f"feed      {venue}: {symbol or '(no symbol)'} {', '.join(channels)}")


def _cold(capture: Path, manifest: dict, files: list[dict]) -> None:
    """The compacted part of a capture (``rtcap compact``): sizes per table and against the
    hot files it replaced."""
    from rtcap.storage.compact import table_sizes

    cold = [f for f in files if f.get("form")]
    if not cold:
        return
    choice = manifest.get("cold") or {}
    size = sum(f["bytes"] for f in cold)
    hot = sum(f.get("hot_bytes") or 0 for f in cold)
    typed = sum(f.get("typed") or 0 for f in cold)
    raw = sum(f.get("raw") or 0 for f in cold)
    click.echo(
        f"cold  {cold[0]['form']}, {choice.get('compression', '?')}: {len(cold)} of {len(files)} "
        f"file(s), {size / 1e6:,.2f} MB ({size / hot if hot else 1:.2f} of the hot "
        f"{hot / 1e6:,.2f} MB); {typed:,} frames typed, {raw:,} kept raw"
    )
    try:
        sizes = table_sizes([check_file(capture, f) for f in cold])
    except CaptureError:
        return  # the damaged file is listed below
    for table, nbytes in sorted(sizes.items(), key=lambda item: -item[1]):
        click.echo(f"  {table:<9} {nbytes / 1e6:>9.3f} MB  {nbytes / size:6.1%}")


def _frame_statistics(con, manifest) -> None:
    rows = con.execute(
        "select stream, kind, count(*), sum(bytes) from frames group by all order by 1, 3 desc, 2"
    ).fetchall()
    for stream, kind, count, size in rows:
        click.echo(f"  {stream:<10} {kind:<7} {count:>10,} rows {(size or 0) / 1e6:>10.3f} MB")
    connections = manifest.get("connections") or []
    gaps = con.execute(
        "select gap_kind, count(*), coalesce(sum(seconds), 0), coalesce(sum(missing), 0) "
        "from gaps group by 1 order by 1"
    ).fetchall()
    click.echo(
        f"conns     {len(connections)} connections, "
        f"{sum(1 for c in connections if c.get('closed_ns'))} closed"
    )
    described = {
        "connection": "{seconds:.1f} s without a connection",
        "silence": "{seconds:.1f} s connected but silent",
    }
    for kind, count, seconds, missing in gaps:
        extra = described.get(kind, "{missing} ids missing").format(
            seconds=seconds, missing=missing
        )
        click.echo(f"gaps      {count} {kind} gap{'s' if count != 1 else ''} ({extra})")
    skew = con.execute("""
        select quantile_cont(s, 0.5), quantile_cont(s, 0.99), count(*) from (
            select (epoch_ns(recv_time) - epoch_ns(exch_time)) / 1e6 as s
            from trades where exch_time is not null)
    """).fetchone()
    if skew[2]:
        click.echo(
            f"skew      receive − exchange time: median {skew[0]:+.3f} ms, "
            f"p99 {skew[1]:+.3f} ms over {skew[2]:,} frames"
        )


def _iso(ns: int) -> str:
    return ns_to_datetime(ns).isoformat()


@click.command("plot", short_help=summary("plot"))
@click.argument("source", type=CAPTURE)
@click.option("--timeframe", default="1min", show_default=True)
@click.option(
    "--indicators",
    default="",
    callback=indicators_option,
    metavar="SPECS",
    help="e.g. sma:20,ema:9,rsi:14,macd,bbands:20,atr:14,vwap,obv.",
)
@click.option("--instrument", help="Which instrument of a multi-instrument capture.")
@click.option(
    "--book",
    "book_levels",
    type=click.IntRange(1, 1000),
    is_flag=False,
    flag_value=20,
    default=None,
    metavar="[N]",
    help="Draw the order book (top N levels, default 20) as a heat map under the candles.",
)
@click.option(
    "-o",
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default="chart.html",
    show_default=True,
)
def plot_command(source, timeframe, indicators, instrument, book_levels, out) -> None:
    """Candlestick chart of SOURCE (a capture, or a bars CSV from rtcap export) with volume,
    indicator panels and connection gaps shaded, as a self-contained HTML file; with --book,
    a depth heat map under the candles."""
    from rtcap.analysis.charts import write_chart

    try:
        source = readable(source)
        if not source.exists():
            raise CaptureError(f"no capture or bars CSV at {source}: check the path")
        data = write_chart(source, out, timeframe, indicators, instrument, book_levels)
    except (CaptureError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"wrote {out}: {data.instrument} {data.timeframe}, {data.bars.height} bars, "
        f"{len(data.gaps)} gaps shaded"
        + (f", book heat map of {len(data.book)} snapshots" if data.book is not None else "")
    )
