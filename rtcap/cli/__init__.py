"""The ``rtcap`` command group (a face: it parses options and calls one subsystem each).

Each command lives in its own module of this package and registers itself here.
"""

from __future__ import annotations

import os

import click

from rtcap import __version__
from rtcap.cli.analysis import export_command, info_command, plot_command
from rtcap.cli.maintenance import import_command, migrate_command, recover_command
from rtcap.cli.record import record
from rtcap.cli.replay import replay, verify
from rtcap.cli.sim import sim
from rtcap.cli.simulate import simulate
from rtcap.cli.spark import spark_bars, spark_sql
from rtcap.cli.sql import sql
from rtcap.storage.errors import CaptureError


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


main.add_command(record)
main.add_command(replay)
main.add_command(verify)
main.add_command(recover_command)
main.add_command(import_command)
main.add_command(migrate_command)
main.add_command(spark_sql)
main.add_command(spark_bars)
main.add_command(sim)
main.add_command(sql)
main.add_command(export_command)
main.add_command(info_command)
main.add_command(plot_command)
main.add_command(simulate)
