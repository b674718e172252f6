"""How commands print results: Markdown-style tables a terminal and a pager both read well,
and the guard that keeps every output file out of the captures being read."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    import polars as pl


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


def refuse_output_inside_captures(out: Path, sources: list[Path]) -> None:
    """No command writes into a capture: ``--out`` must lie outside every capture read."""
    target = out.resolve()
    for source in sources:
        for capture in [source, *(source.iterdir() if source.is_dir() else [])]:
            if (capture / "manifest.json").exists() and target.is_relative_to(capture.resolve()):
                raise click.UsageError(
                    f"--out {out} lies inside the capture {capture}: captures are read-only, "
                    "write the result somewhere else"
                )
