"""How commands print results: Markdown-style tables a terminal and a pager both read well,
stdout that ends quietly when its reader goes away, and the guard that keeps every output file
out of the captures being read."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

if TYPE_CHECKING:
    import polars as pl


READER_GONE_EXIT = 141  # what a shell shows for a Unix tool stopped by SIGPIPE (`| head`)


def reader_gone() -> NoReturn:
    """Our output's reader went away (``rtcap replay --ticks | head -1``): stop at once and
    quietly, as Unix tools do. ``SystemExit`` passes through event handlers' isolation, and
    stdout goes to /dev/null so nothing is flushed into the closed pipe at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise SystemExit(READER_GONE_EXIT)


class ResultsOut:
    """``sys.stdout`` for a command's results, ending the command quietly on a closed pipe."""

    def write(self, text: str) -> None:
        try:
            sys.stdout.write(text)
        except BrokenPipeError:
            reader_gone()

    def flush(self) -> None:
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            reader_gone()


def table_text(frame: pl.DataFrame, max_rows: int) -> str:
    """``frame`` (at most ``max_rows`` rows of it) as a Markdown table, no dtype row."""
    import polars as pl

    with pl.Config(
        tbl_rows=max_rows,
        tbl_cols=-1,
        tbl_hide_dataframe_shape=True,
        tbl_formatting="ASCII_MARKDOWN",
        tbl_hide_column_data_types=True,
        fmt_str_lengths=60,
        tbl_width_chars=250,
    ):
        return str(frame.head(max_rows))


def refuse_output_inside_captures(out: Path, what: str = "--out") -> None:
    """No command writes into a capture: ``--out`` must not lie in any folder that holds a
    manifest or a journal (any capture, read by this command or not, at any depth of the path)."""
    from rtcap.storage.integrity import journal_files

    target = out.resolve()
    for folder in [target, *target.parents]:
        if (folder / "manifest.json").is_file() or journal_files(folder):
            raise click.UsageError(
                f"{what} {out} lies inside the capture {folder}: captures are read-only, write "
                "the result somewhere else"
            )
