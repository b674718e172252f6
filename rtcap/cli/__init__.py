"""The ``rtcap`` command group (a face: it parses options and calls one subsystem each).

Each command lives in its own module of this package, named here and imported only when it
runs: ``rtcap record`` must be journaling within moments of starting, not after loading DuckDB,
plotly and pandas for commands it never calls.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import click

from rtcap import __version__
from rtcap.storage.errors import CaptureError

# command name -> ("module:attribute" of its click command, its one-line summary). `rtcap
# --help` lists them from here, importing no command's module (each pulls in its subsystem).
COMMANDS = {
    "record": (
        "rtcap.cli.record:record",
        "Record a live websocket feed into CAPTURE, byte for byte.",
    ),
    "replay": (
        "rtcap.cli.replay:replay",
        "Replay CAPTURE through the live codec, bar builder and event bus.",
    ),
    "verify": (
        "rtcap.cli.replay:verify",
        "Check that replays of CAPTURE give the bars recorded live.",
    ),
    "recover": (
        "rtcap.cli.maintenance:recover_command",
        "Seal what a crashed recording left in CAPTURE's journal.",
    ),
    "import": (
        "rtcap.cli.maintenance:import_command",
        "Turn another tool's line-oriented capture into an rtcap capture.",
    ),
    "push": (
        "rtcap.cli.maintenance:push_command",
        "Upload a local capture to a store URI (checked, resumable).",
    ),
    "pull": (
        "rtcap.cli.maintenance:pull_command",
        "Copy a capture or dataset root from a store URI into a folder.",
    ),
    "migrate": (
        "rtcap.cli.maintenance:migrate_command",
        "Rewrite old files in the current format and layout.",
    ),
    "compact": (
        "rtcap.cli.maintenance:compact_command",
        "Rewrite closed captures as typed columns, lossless to the byte.",
    ),
    "spark-sql": (
        "rtcap.cli.spark:spark_sql",
        "Run Spark SQL over the captures under ROOT.",
    ),
    "spark-bars": (
        "rtcap.cli.spark:spark_bars",
        "Build the bars of export ROOT on Spark executors.",
    ),
    "sim": (
        "rtcap.cli.sim:sim",
        "Serve the simulated market on a ProjectX-compatible gateway.",
    ),
    "sql": (
        "rtcap.cli.sql:sql",
        "Query captures and exports with DuckDB.",
    ),
    "export": (
        "rtcap.cli.analysis:export_command",
        "Write CAPTURE's completed bars and a snapshot as CSV and JSON.",
    ),
    "info": (
        "rtcap.cli.analysis:info_command",
        "What CAPTURE holds: span, frames, bytes, gaps and checks.",
    ),
    "plot": (
        "rtcap.cli.analysis:plot_command",
        "Candlestick chart of a capture or a bars CSV, as HTML.",
    ),
    "sdk-shim": (
        "rtcap.cli.sim:sdk_shim_command",
        "Print or copy the file that points the ProjectX SDK at rtcap.",
    ),
    "status": (
        "rtcap.cli.status:status_command",
        "Each running recorder's state: streams, rate, gaps, backlog, health.",
    ),
    "simulate": (
        "rtcap.cli.simulate:simulate",
        "Run the seeded simulated market through the kernel.",
    ),
}


def summary(name: str) -> str:
    """The one-line help of command ``name`` (its ``short_help``)."""
    return COMMANDS[name][1]


class OneLineErrors(click.Group):
    """Every failure is one line naming the cause, with a non-zero exit, never a traceback.

    Commands raise ``click.ClickException`` for what they expect; this is the net under them
    for what they did not (set ``RTCAP_DEBUG=1`` to see the traceback instead)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort, KeyboardInterrupt):
            raise
        except BrokenPipeError:
            from rtcap.cli.output import reader_gone

            reader_gone()
        except CaptureError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            raise click.ClickException(f"{exc.strerror or exc}{where}") from None
        except Exception as exc:
            if os.environ.get("RTCAP_DEBUG"):
                raise
            message = (str(exc).strip().splitlines() or [""])[0]
            raise click.ClickException(
                f"unexpected {type(exc).__name__}: {message} (set RTCAP_DEBUG=1 for details)"
            ) from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][1]) for name in self.list_commands(ctx)])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        entry = COMMANDS.get(name)
        if entry is None:
            return None
        target = entry[0]
        module, attribute = target.split(":")
        command: click.Command = getattr(importlib.import_module(module), attribute)
        if command.name != name:
            raise RuntimeError(f"{target} is the command {command.name!r}, listed as {name!r}")
        return command


@click.group(
    cls=OneLineErrors,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="rtcap")
@click.option(
    "--endpoint-url",
    metavar="URL",
    help="S3-compatible endpoint for s3:// captures (default: AWS_ENDPOINT_URL, else AWS).",
)
def main(endpoint_url: str | None) -> None:
    """Record real-time market-data feeds byte for byte and replay them through the same
    codec, bar builder and event bus that live code uses.

    Any CAPTURE may be a URI such as s3://bucket/prefix: credentials come from the standard AWS
    environment or profile and are never written anywhere."""
    if endpoint_url:
        os.environ["AWS_ENDPOINT_URL"] = endpoint_url
