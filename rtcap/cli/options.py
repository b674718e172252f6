"""Option parsing shared by commands: comma lists of timeframes, instruments, indicators."""

from __future__ import annotations

import math
from pathlib import Path

import click

from rtcap.timeframes import parse_timeframe


def split_list(value: str | None) -> list[str]:
    """``"a, b,,c"`` → ``["a", "b", "c"]``."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


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
    """A capture directory, or a URI (``s3://bucket/prefix``) kept as text."""

    name = "capture"

    def convert(self, value, param, ctx) -> Path | str:
        from rtcap.storage.remote import is_uri

        if isinstance(value, Path) or not is_uri(value):
            return Path(value)
        return str(value)


CAPTURE = CaptureLocation()


def readable(location: Path | str) -> Path:
    """A local capture to read: the path itself, or the pulled mirror of a URI."""
    from rtcap.storage.remote import pull

    return location if isinstance(location, Path) else pull(location)
