"""``rtcap spark-sql`` and ``rtcap spark-bars``: rtcap.analysis.spark as commands."""

from __future__ import annotations

from pathlib import Path

import click
import orjson

from rtcap.cli import summary
from rtcap.cli.options import CAPTURE, recorders_option, timeframes_option
from rtcap.cli.output import refuse_output_inside_captures, table_text
from rtcap.storage.errors import CaptureError


def _spark(master: str):
    from rtcap.analysis import spark as rtcap_spark  # imports pyspark: only for these commands

    session = rtcap_spark.session(master=master)
    session.sparkContext.setLogLevel("ERROR")
    return rtcap_spark, session


def _failed(module, exc: Exception) -> click.ClickException:
    """A Spark failure as one line: rtcap's own cause when a task gave one (a damaged file,
    executors without rtcap), else the first line of Spark's message."""
    known = module.explain(exc) if module is not None else None
    return click.ClickException(known or str(exc).strip().splitlines()[0])


@click.command("spark-sql", short_help=summary("spark-sql"))
@click.argument("root", type=CAPTURE)
@click.option("-c", "--command", "query", required=True, help="Spark SQL to run.")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
    show_default=True,
)  # fmt: skip
@click.option("--max-rows", default=40, show_default=True, help="Rows shown by --format table.")
@click.option("--master", default="local[*]", show_default=True, help="Spark master URL.")
@recorders_option
def spark_sql(root, query, fmt, max_rows, master, recorders) -> None:
    """Run Spark SQL over the captures under ROOT (a folder or a store URI such as
    s3://bucket/tapes), with the views rtcap sql has (frames, lifecycle, gaps, trades, quotes,
    bars), trades and quotes decoded by rtcap's codecs on the executors.

        rtcap spark-sql captures/ -c "select symbol, count(*) from trades group by 1"
    """
    import polars as pl

    module = None
    try:
        module, spark = _spark(master)
        module.register_views(spark, str(root), recorders=recorders)
        result = spark.sql(query)
        rows = result.limit(max_rows + 1).collect() if fmt == "table" else result.collect()
    except CaptureError as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:  # Spark's errors: one line, not a JVM trace
        if type(exc).__module__.startswith(("pyspark", "py4j")):
            raise _failed(module, exc) from None
        raise
    frame = pl.DataFrame([r.asDict() for r in rows], infer_schema_length=None)
    if fmt == "table":
        text = table_text(frame, max_rows) if rows else "(no rows)"
        click.echo(text + ("\n… more rows (use --max-rows)" if len(rows) > max_rows else ""))
    elif fmt == "csv":
        click.echo(frame.write_csv(), nl=False)
    else:
        click.echo(orjson.dumps(frame.to_dicts(), default=str, option=orjson.OPT_INDENT_2))


@click.command("spark-bars", short_help=summary("spark-bars"))
@click.argument("root", type=CAPTURE)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Parquet folder.")
@click.option("--timeframes", default="1min,5min", show_default=True, callback=timeframes_option)
@click.option("--master", default="local[*]", show_default=True, help="Spark master URL.")
@recorders_option
def spark_bars(root, out, timeframes, master, recorders) -> None:
    """Bars of the dataset under ROOT (a folder or a store URI) built by rtcap's kernel on
    Spark executors, one piece of a segment per task, written to OUT as Parquet: the bars
    rtcap export ROOT writes, bar for bar."""
    refuse_output_inside_captures(out)
    module = None
    try:
        module, spark = _spark(master)
        module.bars_job(spark, str(root), timeframes, out, recorders=recorders)
        count = spark.read.parquet(str(out)).count()
    except CaptureError as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:
        if type(exc).__module__.startswith(("pyspark", "py4j")):
            raise _failed(module, exc) from None
        raise
    click.echo(f"wrote {count:,} bars ({', '.join(timeframes)}) to {out}")
