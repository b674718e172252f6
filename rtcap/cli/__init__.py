"""The ``rtcap`` command group (a face: it parses options and calls one subsystem each).

Each command lives in its own module of this package, named here and imported only when it
runs: ``rtcap record`` must be journaling within moments of starting, not after loading DuckDB,
plotly and pandas for commands it never calls.
"""

from __future__ import annotations

import importlib
import os

import click

from rtcap import __version__
from rtcap.storage.errors import CaptureError

# command name -> "module:attribute" of its click command
COMMANDS = {
    "record": "rtcap.cli.record:record",
    "replay": "rtcap.cli.replay:replay",
    "verify": "rtcap.cli.replay:verify",
    "recover": "rtcap.cli.maintenance:recover_command",
    "import": "rtcap.cli.maintenance:import_command",
    "migrate": "rtcap.cli.maintenance:migrate_command",
    "spark-sql": "rtcap.cli.spark:spark_sql",
    "spark-bars": "rtcap.cli.spark:spark_bars",
    "sim": "rtcap.cli.sim:sim",
    "sql": "rtcap.cli.sql:sql",
    "export": "rtcap.cli.analysis:export_command",
    "info": "rtcap.cli.analysis:info_command",
    "plot": "rtcap.cli.analysis:plot_command",
    "simulate": "rtcap.cli.simulate:simulate",
}


class OneLineErrors(click.Group):
    """Every failure is one line naming the cause, with a non-zero exit, never a traceback.

    Commands raise ``click.ClickException`` for what they expect; this is the net under them
    for what they did not (set ``RTCAP_DEBUG=1`` to see the traceback instead)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort, KeyboardInterrupt):
            raise
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

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attribute = target.split(":")
        command = getattr(importlib.import_module(module), attribute)
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
