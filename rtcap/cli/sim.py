"""``rtcap sim``: serve the seeded simulated market over a ProjectX-compatible gateway."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from rtcap.cli import summary
from rtcap.cli.options import DURATION, Duration, instruments_option
from rtcap.cli.serving import stop_on_signals

if TYPE_CHECKING:
    from rtcap.gateway.server import GatewayServer
    from rtcap.gateway.simfeed import SimulatedFeed


@click.command(short_help=summary("sim"))
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to bind (loopback unless you ask otherwise).",
)
@click.option(
    "--port",
    default=0,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port; 0 picks a free one (printed at start).",
)
@click.option("--seed", default=7, show_default=True, help="Random seed of the market.")
@click.option(
    "--instruments",
    default="MNQ,ES",
    show_default=True,
    callback=instruments_option,
    help="Comma-separated futures symbols to simulate.",
)
@click.option(
    "--rate",
    default=40.0,
    show_default=True,
    type=click.FloatRange(min=0.01),
    help="Mean messages per second over all instruments.",
)
@click.option(
    "--api-key",
    envvar="RTCAP_SIM_API_KEY",
    default=None,
    help="Accept only this API key at /api/Auth/loginKey (default: any key).",
)
@click.option(
    "--history-days",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Days of seeded minute history before the live start.",
)
@click.option(
    "--keepalive",
    default="15s",
    show_default=True,
    type=Duration(minimum_s=1.0),
    help="Interval of SignalR pings to clients.",
)
@click.option(
    "--start-at",
    help="Where the market's clock starts (it runs at real speed from there): an ISO time such "
    "as 2026-12-09T22:59:50Z or a date; default now. Contracts roll on CME's calendar, so a "
    "start just before a roll date shows a roll.",
)
@click.option("--drop-after", type=DURATION, help="Fault: abort every connection after this.")
@click.option("--stall-after", type=DURATION, help="Fault: go silent on every connection after…")
@click.option(
    "--stall-for",
    type=DURATION,
    default="5s",
    show_default=True,
    help="…for this long (socket stays open, nothing is sent).",
)
@click.option(
    "--malformed-every",
    type=click.IntRange(min=1),
    help="Fault: a malformed record after every N-th market record.",
)
@click.option(
    "--oversized-after",
    type=DURATION,
    help="Fault: one oversized frame on every connection after this.",
)
@click.option(
    "--oversized-bytes",
    default=2 * 1024 * 1024,
    show_default=True,
    type=click.IntRange(min=1024),
    help="Size of the oversized frame.",
)
@click.option(
    "--error-close-after",
    type=DURATION,
    help="Fault: close every connection with a SignalR error after this.",
)
@click.option(
    "--burst-rate", type=click.FloatRange(min=0.01), help="Fault: message rate during bursts."
)
@click.option(
    "--burst-every",
    type=Duration(minimum_s=1.0),
    default="10s",
    show_default=True,
    help="A burst starts this often…",
)
@click.option(
    "--burst-for", type=DURATION, default="2s", show_default=True, help="…and lasts this long."
)
def sim(
    host,
    port,
    seed,
    instruments,
    rate,
    api_key,
    history_days,
    keepalive,
    start_at,
    drop_after,
    stall_after,
    stall_for,
    malformed_every,
    oversized_after,
    oversized_bytes,
    error_close_after,
    burst_rate,
    burst_every,
    burst_for,
) -> None:
    """Serve the simulated market on a ProjectX-compatible gateway until Ctrl+C.

    REST under /api (Auth/loginKey, Contract/search, History/retrieveBars …) and the SignalR
    hubs /hubs/market and /hubs/user on one port, so unmodified ProjectX clients can connect.
    The fault options make every connection misbehave on a schedule, to harden clients.
    """
    from rtcap.gateway.build import simulated_gateway
    from rtcap.gateway.faults import FaultPlan
    from rtcap.gateway.tokens import TokenIssuer
    from rtcap.storage.reader import resolve_time

    try:
        now = time.time_ns()
        start_ns = resolve_time(start_at, now, now) if start_at else None
        faults = FaultPlan(
            drop_after_s=drop_after,
            stall_after_s=stall_after,
            stall_for_s=stall_for,
            malformed_every=malformed_every,
            oversized_after_s=oversized_after,
            oversized_bytes=oversized_bytes,
            error_close_after_s=error_close_after,
            burst_rate=burst_rate,
            burst_every_s=burst_every,
            burst_for_s=burst_for,
        )
        server, feed = simulated_gateway(
            seed,
            instruments,
            rate,
            faults=faults,
            history_days=history_days,
            host=host,
            port=port,
            tokens=TokenIssuer(api_key),
            keepalive_s=keepalive,
            start_ns=start_ns,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        asyncio.run(_serve(server, feed, api_key is not None))
    except OSError as exc:
        reason = exc.strerror or exc
        raise click.ClickException(f"cannot serve on {host}:{port}: {reason}") from None


async def _serve(server: GatewayServer, feed: SimulatedFeed, key_required: bool) -> None:
    from rtcap.gateway.build import endpoint_lines

    await server.start()
    stop = asyncio.Event()
    stop_on_signals(stop)
    contracts = " ".join(f"{symbol}={cid}" for symbol, cid in feed.contracts.items())
    click.echo(f"rtcap sim: {feed.describe()} on {server.host}:{server.port}")
    for line in endpoint_lines(server):
        click.echo(line)
    click.echo(f"  contracts   {contracts}")
    click.echo(f"  API key     {'the one given with --api-key' if key_required else 'any'}")
    if server.faults.any:
        click.echo(f"  faults      {server.faults}")
    click.echo("Ctrl+C to stop.", nl=True)
    try:
        await stop.wait()
    finally:
        await server.stop()
        click.echo(
            f"stopped after serving {server.stats['records_routed']} records to "
            f"{server.stats['connections']} connections"
        )


@click.command("sdk-shim", short_help=summary("sdk-shim"))
@click.argument("destination", required=False, type=click.Path(path_type=Path))
def sdk_shim_command(destination: Path | None) -> None:
    """Print the path of rtcap's SDK shim, or copy it to DESTINATION (a file or a folder).

    The shim is one file that needs only Python's standard library: run an unmodified
    project-x-py strategy with it in the SDK's own environment, where rtcap is not installed,
    and the SDK connects to the gateway that `rtcap sim` or `rtcap replay --serve` printed:

        rtcap sdk-shim ~/strategies/
        PROJECTX_API_URL=http://127.0.0.1:PORT/api python ~/strategies/sdk_shim.py strategy.py
    """
    from rtcap import sdk_shim

    source = Path(sdk_shim.shim_file())
    if destination is None:
        click.echo(source)
        return
    target = destination / source.name if destination.is_dir() else destination
    try:
        shutil.copyfile(source, target)
    except OSError as exc:
        raise click.ClickException(
            f"cannot write {target}: {exc.strerror or exc}; choose a writable place"
        ) from None
    click.echo(f"wrote {target}; in the SDK's environment run: python {target} strategy.py")
