"""Option parsing shared by commands: comma lists of timeframes, instruments, indicators."""

from __future__ import annotations

import click

from rtcap.indicators import parse_indicator_spec
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
    specs = split_list(value)
    for spec in specs:
        try:
            parse_indicator_spec(spec)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    return specs
