"""Option parsing shared by commands: comma lists of timeframes, instruments, indicators."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import click

from rtcap.timeframes import parse_timeframe


def split_list(value: str | None) -> list[str]:
    """``"a, b,,c"`` → ``["a", "b", "c"]``."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _recorders(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    return split_list(value) or None


# Every reader of dataset roots chooses captures the same way (rtcap.storage.dataset.named).
recorders_option = click.option(
    "--recorders",
    callback=_recorders,
    help="A dataset root: only these recorders' captures (ids or labels, comma-separated). "
    "Needed when two captures hold the same feed over the same time.",
)


def timeframes_option(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    """Validate ``--timeframes 15sec,1min`` into canonical labels."""
    try:
        labels = [parse_timeframe(part).label for part in split_list(value)]
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if not labels:
        raise click.BadParameter("give at least one timeframe, e.g. '1min,5min'")
    return labels


def instruments_option(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    """``--instruments MNQ,ES`` upper-cased; at least one."""
    symbols = [part.upper() for part in split_list(value)]
    if not symbols:
        raise click.BadParameter("give at least one instrument, e.g. 'MNQ'")
    return symbols


def indicators_option(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    """``--indicators sma:20,rsi:14`` checked for known names and integer parameters."""
    from rtcap.indicators import parse_indicator_spec  # polars: only where indicators are asked

    specs = split_list(value)
    for spec in specs:
        try:
            parse_indicator_spec(spec)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    return specs


_DURATION_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
}


def parse_duration(text: str) -> float:
    """``"30s"``, ``"1.5m"``, ``"500ms"``, ``"2h"`` or a bare number of seconds → seconds."""
    value = str(text).strip().lower()
    for unit in sorted(_DURATION_UNITS, key=len, reverse=True):
        if value.endswith(unit):
            number = value[: -len(unit)].strip()
            break
    else:
        unit, number = "s", value
    try:
        seconds = float(number) * _DURATION_UNITS[unit]
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds):
        raise ValueError(
            f"invalid duration {text!r}: write a number with a unit, e.g. 30s, 1.5m, 500ms, 2h"
        )
    if seconds < 0:
        raise ValueError(f"duration {text!r} must not be negative")
    return seconds


class Duration(click.ParamType):
    """A click parameter taking :func:`parse_duration` forms, giving seconds, at least
    ``minimum_s`` (a zero duration would mean "forever" or "spin" to most options)."""

    name = "duration"

    def __init__(self, minimum_s: float = 0.001) -> None:
        self.minimum_s = minimum_s

    def convert(self, value, param, ctx) -> float:
        try:
            seconds = float(value) if isinstance(value, int | float) else parse_duration(value)
            if not math.isfinite(seconds):
                raise ValueError(f"invalid duration {value!r}: give a finite time, e.g. 30s")
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if seconds < self.minimum_s:
            self.fail(f"{value!r} is too short: give at least {self.minimum_s:g}s", param, ctx)
        return seconds


DURATION = Duration()


def book_options(book_help: str):
    """``--book N`` and ``--every DURATION`` (order-book snapshots), shared by commands."""

    def decorate(command):
        command = click.option(
            "--every",
            type=DURATION,
            default="1s",
            show_default=True,
            help="With --book: one snapshot per this much receive time.",
        )(command)
        return click.option("--book", type=click.IntRange(1, 1000), metavar="N", help=book_help)(
            command
        )

    return decorate


def book_sampling(book: int | None, every_s: float) -> tuple[int, int] | None:
    """(levels, interval ns) for the kernel's book sampler, or ``None`` without --book."""
    return (book, int(every_s * 1e9)) if book else None


class CaptureLocation(click.ParamType):
    """A capture directory (a ``file://`` URI names one too), or a store URI
    (``s3://bucket/prefix``) kept as text."""

    name = "capture"

    def convert(self, value, param, ctx) -> Path | str:
        from rtcap.storage.remote import is_uri

        if isinstance(value, Path):
            return value
        if str(value).startswith("file://"):
            return Path(str(value).removeprefix("file://"))
        return str(value) if is_uri(value) else Path(value)


CAPTURE = CaptureLocation()


def readable(location: Path | str) -> Path:
    """A local capture (or dataset root) to read: the path itself, or the pulled mirror of a
    URI (a root's mirror holds each of its captures)."""
    from rtcap.storage.remote import pull

    return location if isinstance(location, Path) else pull(location)


def on_each_capture(location: Path | str, action: Callable[[str, Path], None]) -> None:
    """Run ``action(name, local path)`` on the capture ``location`` names or, for a dataset
    root, on each of its captures in turn under a ``== <name>`` heading; one that fails is
    reported and the others still run, then the command fails naming them."""
    from rtcap.storage.errors import CaptureError

    try:
        captures = each_capture(location)
    except CaptureError as exc:
        raise click.ClickException(str(exc)) from None
    if len(captures) == 1:
        action(*captures[0])
        return
    failed = []
    for name, local in captures:
        click.echo(f"== {name}")
        try:
            action(name, local)
        except click.ClickException as exc:
            click.echo(f"error: {exc.message}")
            failed.append(name)
    if failed:
        raise click.ClickException(f"{len(failed)} of {len(captures)} captures failed: {failed}")


def each_capture(location: Path | str) -> list[tuple[str, Path]]:
    """(name to show, local path) of the capture ``location`` names, or of every capture of the
    dataset root it names (local or on a store), in label order."""
    from rtcap.storage.dataset import find_captures, is_capture, label

    local = readable(location)
    if is_capture(local) or not local.is_dir():
        return [(str(location), local)]
    found = find_captures(local)
    if not found:
        return [(str(location), local)]  # the reader's own error names what is missing
    return [(f"{str(location).rstrip('/')}/{label(local, c)}", c) for c in found]
