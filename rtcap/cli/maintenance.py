"""``rtcap recover`` and ``rtcap import``: making captures whole, and bringing others' in."""

from __future__ import annotations

from pathlib import Path

import click

from rtcap.storage.capture import CaptureError
from rtcap.storage.importer import FORMATS, TS_UNITS, import_lines
from rtcap.storage.recovery import recover


@click.command("recover")
@click.argument("capture", type=click.Path(file_okay=False, path_type=Path))
def recover_command(capture: Path) -> None:
    """Seal what a crashed recording left in CAPTURE's journal, and report what was found.

    Sealed segments are never rewritten and only rtcap's own files are touched. A damaged
    journal block costs only itself: every intact block is sealed, the journal is kept in
    journal/damaged/ and the lost seq range is listed. Unknown files are reported, not removed.
    """
    try:
        report = recover(capture)
    except CaptureError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"recovered {capture}: {report.journals} journal(s), {report.frames_recovered} "
        f"frames sealed into segments {report.segments_sealed or 'none'}"
    )
    if report.already_sealed:
        click.echo(f"  {report.already_sealed} journal frames were already sealed (kept once)")
    if report.bars_recovered:
        click.echo(f"  {report.bars_recovered} live bars sealed from their journal")
    if report.manifest_rebuilt:
        click.echo("  manifest.json was unreadable: kept as manifest.json.damaged and rebuilt")
    for problem in report.problems:
        click.echo(f"  damaged: {problem}")
    for path in report.damaged_kept:
        click.echo(f"  kept damaged journal as {path}")
    for path in report.orphans_adopted:
        click.echo(f"  adopted complete segment missing from the manifest: {path}")
    for line in report.ignored:
        click.echo(f"  ignored {line}")
    for path in report.temporaries_removed:
        click.echo(f"  removed unfinished temporary file: {path}")


@click.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("capture", type=click.Path(file_okay=False, path_type=Path))
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
def import_command(file: Path, capture: Path, fmt: str, ts_unit: str) -> None:
    """Turn FILE, a line-oriented capture made by another tool, into the rtcap capture CAPTURE."""
    try:
        report = import_lines(file, capture, fmt, ts_unit=ts_unit)
    except (ValueError, CaptureError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"imported {report.frames} frames from {file} into {capture}")
    if report.sequence_gaps:
        click.echo(f"  {report.sequence_gaps} exchange sequence gaps found (see the gaps view)")
    if report.skipped_count:
        click.echo(f"  skipped {report.skipped_count} unreadable lines, e.g.:")
        for line in report.skipped:
            click.echo(f"    {line}")
