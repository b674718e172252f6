"""How commands print tables: Markdown-style text a terminal and a pager both read well."""

from __future__ import annotations

import polars as pl


def table_text(frame: pl.DataFrame, max_rows: int) -> str:
    """``frame`` (at most ``max_rows`` rows of it) as a Markdown table, no dtype row."""
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
