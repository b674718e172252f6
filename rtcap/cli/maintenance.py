"""``rtcap recover``, ``import``, ``migrate``, ``compact``, ``push`` and ``pull``: making captures
whole, bringing others' in, keeping them small, and moving them between disk and a store."""

from __future__ import annotations

from pathlib import Path

import click

from rtcap.cli import summary
from rtcap.cli.options import CAPTURE, on_each_capture
from rtcap.storage.compact import compact_capture
from rtcap.storage.errors import CaptureError
from rtcap.storage.importer import FORMATS, TS_UNITS, import_lines
from rtcap.storage.integrity import open_capture
from rtcap.storage.migrate import migrate
from rtcap.storage.recovery import recover
from rtcap.storage.remote import push_all, staging_path


@click.command("recover", short_help=summary("recover"))
@click.argument("capture", type=CAPTURE)
@click.option(
    "--journal-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="For a CAPTURE URI: where it was recorded from (rtcap record --journal-dir).",
)
def recover_command(capture: Path | str, journal_dir: Path | None) -> None:
    """Seal what a crashed recording left in CAPTURE's journal, and report what was found.

    Sealed segments are never rewritten and only rtcap's own files are touched. A damaged
    journal block costs only itself: every intact block is sealed, the journal is kept in
    journal/damaged/ and the lost seq range is listed. Unknown files are reported, not removed.
    """
    uri = capture if isinstance(capture, str) else None
    if uri is not None:
        capture = staging_path(uri, journal_dir)
        if not capture.exists():
            raise click.ClickException(
                f"nothing of {uri} is staged at {capture}: give --journal-dir where it was "
                "recorded from"
            )
    try:
        report = recover(capture)
        if uri is not None:
            uploader = push_all(uri, capture)
    except CaptureError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"recovered {uri or capture}: {report.journals} journal(s), {report.frames_recovered} "
        f"frames sealed into segments {report.segments_sealed or 'none'}"
    )
    if report.already_sealed:
        click.echo(f"  {report.already_sealed} journal frames were already sealed (kept once)")
    if report.bars_recovered:
        click.echo(f"  {report.bars_recovered} live bars sealed from their journal")
    if report.bars_dropped:
        click.echo(
            f"  {report.bars_dropped} live bars dropped: the rows that closed them never reached "
            "the journal (the recorder stopped between the two writes)"
        )
    if report.manifest_rebuilt:
        click.echo("  manifest.json was unreadable: kept as manifest.json.damaged and rebuilt")
    for problem in report.problems:
        click.echo(f"  damaged: {problem}")
    for path in report.damaged_kept:
        click.echo(f"  kept damaged journal as {path}")
    for path in report.orphans_adopted:
        click.echo(f"  adopted a complete file missing from the manifest: {path}")
    for line in report.ignored:
        click.echo(f"  ignored {line}")
    for path in report.temporaries_removed:
        click.echo(f"  removed unfinished temporary file: {path}")
    if uri is not None:
        click.echo(f"  uploaded {len(uploader.uploaded)} file(s) and the manifest to {uri}")


@click.command("push", short_help=summary("push"))
@click.argument("capture", type=click.Path(file_okay=False, path_type=Path))
@click.argument("uri")
def push_command(capture: Path, uri: str) -> None:
    """Upload the local CAPTURE to URI (s3://bucket/prefix …): every file is checked against
    the manifest first, the manifest goes last, and a push that stopped half-way goes on where
    it stopped. A URI holding another capture is refused."""
    from rtcap.storage.lease import this_process
    from rtcap.storage.remote import is_uri, push_capture

    if not is_uri(uri):
        raise click.UsageError(f"URI must be a store URI such as s3://bucket/prefix, not {uri!r}")
    try:
        uploader = push_capture(capture, uri, this_process())
    except CaptureError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"pushed {capture} to {uri}: {len(uploader.uploaded)} file(s) there, "
        f"{uploader.bytes_sent / 1e6:,.2f} MB sent now"
    )


@click.command("pull", short_help=summary("pull"))
@click.argument("uri")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def pull_command(uri: str, directory: Path) -> None:
    """Copy the capture (or every capture of the dataset root) at URI into DIRECTORY, each
    file checked against its manifest; pulling again fetches only what changed. A folder
    already holding another capture is refused."""
    from rtcap.cli.output import refuse_output_inside_captures
    from rtcap.storage.dataset import find_captures
    from rtcap.storage.integrity import check_file
    from rtcap.storage.manifest import listed_files
    from rtcap.storage.remote import is_uri, pull

    if not is_uri(uri):
        raise click.UsageError(f"URI must be a store URI such as s3://bucket/prefix, not {uri!r}")
    refuse_output_inside_captures(directory.parent, "DIRECTORY")
    try:
        local = pull(uri, into=directory)
        captures = find_captures(local)
        files = 0
        for capture in captures:
            for entry in listed_files(open_capture(capture)):
                check_file(capture, entry)
                files += 1
    except CaptureError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"pulled {uri} into {local}: {len(captures)} capture(s), {files} file(s) checked")


@click.command("migrate", short_help=summary("migrate"))
@click.argument("capture", type=click.Path(file_okay=False, path_type=Path))
def migrate_command(capture: Path) -> None:
    """Rewrite CAPTURE's frames/1 segments and bars files in the portable frames/2 schema
    (signed integers, int64 nanoseconds beside TIMESTAMP(MICROS, UTC) columns) that Spark,
    Trino and DuckDB read with no flags; CAPTURE may be a dataset root: each capture in turn,
    and captures keeping their files in their own folders move them into the root's tables
    (ROOT/frames, ROOT/bars), which other engines read.

    Each file is rewritten and compared row by row (payload bytes included) before the
    manifest switches to it; every rtcap command reads both schemas and both layouts."""
    on_each_capture(capture, lambda name, local: _migrate_one(name, local))


def _migrate_one(name: str, capture: Path) -> None:
    try:
        report = migrate(capture)
    except CaptureError as exc:
        raise click.ClickException(str(exc)) from None
    if not report.files_rewritten:
        click.echo(f"{name} is already frames/2 ({report.already_current} files): nothing to do")
        return
    click.echo(
        f"migrated {name} to frames/2{' in the tables' if report.to_tables else ''}: "
        f"{len(report.files_rewritten)} file(s) rewritten, "
        f"{report.rows:,} frames identical (content sha256 {report.digest[:16]}…)"
    )
    for old, new in report.files_rewritten:
        click.echo(f"  {old} -> {new}")


@click.command("compact", short_help=summary("compact"))
@click.argument("capture", type=click.Path(file_okay=False, path_type=Path))
def compact_command(capture: Path) -> None:
    """Rewrite CAPTURE's sealed files in the cold form: every market message the codec knows
    (Binance trades, book tickers, depth diffs and snapshots) becomes typed columns (ids and
    times as integers, prices and sizes as integer mantissas with their scale, depth levels as
    lists) plus a shape that renders its exact bytes; its raw payload is kept only where that
    rendering is not byte for byte. CAPTURE may be a dataset root: each closed capture in turn.

    Live sealing stays fast; compact a capture once it is closed. Each file is rewritten, read
    back and compared frame by frame (payload bytes included) before the manifest switches to
    it. Every command reads compacted captures as before (replay, verify and --serve see the
    same bytes), and `rtcap sql`'s trades, quotes and depth views read the typed columns."""
    on_each_capture(capture, lambda name, local: _compact_one(name, local))


def _compact_one(name: str, capture: Path) -> None:
    try:
        report = compact_capture(capture)
    except CaptureError as exc:
        raise click.ClickException(str(exc)) from None
    if report.skipped:
        click.echo(f"{name} was left as it is: {report.skipped}")
        return
    if not report.files_rewritten:
        click.echo(f"{name} is already compacted ({report.already_cold} files): nothing to do")
        return
    click.echo(
        f"compacted {name}: {report.files_rewritten} file(s) rewritten in {report.seconds:.1f} s, "
        f"{report.frames:,} frames identical byte for byte; {report.typed:,} typed, "
        f"{report.raw:,} kept raw"
    )
    click.echo(
        f"  {report.hot_bytes / 1e6:,.2f} MB -> {report.cold_bytes / 1e6:,.2f} MB "
        f"({report.ratio:.2f} of the hot size)"
    )


@click.command("import", short_help=summary("import"))
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("capture", type=CAPTURE)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    required=True,
    help="hftbacktest: '<ns> <json>'; tardis: '<ISO time> <json>'; jsonl: objects.",
)
@click.option(
    "--ts-unit",
    type=click.Choice(["auto", *TS_UNITS]),
    default="auto",
    show_default=True,
    help="Unit of numeric times (auto: told apart by magnitude).",
)
def import_command(file: Path, capture: Path | str, fmt: str, ts_unit: str) -> None:
    """Turn FILE, a line-oriented capture made by another tool, into the rtcap capture CAPTURE
    (a directory, or a URI it is uploaded to)."""
    uri = capture if isinstance(capture, str) else None
    try:
        if uri is not None:
            capture = staging_path(uri)
        report = import_lines(file, capture, fmt, ts_unit=ts_unit)
        if uri is not None:
            push_all(uri, capture)
    except (ValueError, CaptureError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"imported {report.frames} frames from {file} into {uri or capture}")
    if report.sequence_gaps:
        click.echo(f"  {report.sequence_gaps} exchange sequence gaps found (see the gaps view)")
    if report.skipped_count:
        click.echo(f"  skipped {report.skipped_count} unreadable lines, e.g.:")
        for line in report.skipped:
            click.echo(f"    {line}")
