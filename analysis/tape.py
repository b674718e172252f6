"""``rtcap.open(path)``: captures, dataset roots and export folders as Polars LazyFrames.

Each table is the DuckDB view of the same name (:mod:`rtcap.analysis.views`), so a trade, a
quote or a depth level means the same here as in ``rtcap sql``: one definition. Frames are
handed to Polars lazily: nothing is read until one is collected, and Polars' filters and column
selections go down to DuckDB, which reads the typed columns of compacted captures (``rtcap
compact``) and skips what a query does not need::

    import polars as pl
    import rtcap

    tape = rtcap.open("captures/eth")
    minute = (tape.trades()
              .group_by_dynamic("recv_time", every="1m")
              .agg(pl.col("price").first().alias("open"), pl.col("volume").sum())
              .collect())
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from rtcap.analysis.views import VIEW_NAMES, connect


class Tape:
    """The views over some captures and exports, as LazyFrames (see the module's docstring)."""

    def __init__(
        self,
        *paths: str | Path,
        recorders: list[str] | None = None,
        include_open: bool = False,
    ) -> None:
        self.connection = connect(list(paths), include_open=include_open, recorders=recorders)

    def table(self, name: str) -> pl.LazyFrame:
        """One view by name: ``frames``, ``trades``, ``quotes``, ``depth``, ``bars``, … ."""
        if name not in (*VIEW_NAMES, "typed_rows"):
            raise ValueError(
                f"no table {name!r}: choose one of {', '.join(VIEW_NAMES)}, typed_rows"
            )
        return self.connection.sql(f"select * from {name}").pl(lazy=True)

    def sql(self, query: str) -> pl.LazyFrame:
        """Any DuckDB query over the views, as a LazyFrame."""
        return self.connection.sql(query).pl(lazy=True)

    def trades(self) -> pl.LazyFrame:
        return self.table("trades")

    def quotes(self) -> pl.LazyFrame:
        return self.table("quotes")

    def depth(self) -> pl.LazyFrame:
        return self.table("depth")

    def frames(self) -> pl.LazyFrame:
        return self.table("frames")

    def bars(self) -> pl.LazyFrame:
        return self.table("bars")

    def typed_rows(self) -> pl.LazyFrame:
        """Compacted captures' typed columns as stored (mantissas with their ``*_scale``)."""
        return self.table("typed_rows")


def open_tape(
    *paths: str | Path, recorders: list[str] | None = None, include_open: bool = False
) -> Tape:
    """``rtcap.open``: the captures, dataset roots or export folders at ``paths``."""
    return Tape(*paths, recorders=recorders, include_open=include_open)
