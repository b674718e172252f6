"""The one place a gateway is put together: the simulated market (``rtcap sim`` and the
embedded source) or a capture (``rtcap replay --serve``), with the history each one serves.
"""

from __future__ import annotations

import shlex
from typing import Any

from rtcap import sdk_shim
from rtcap.gateway.faults import FaultPlan
from rtcap.gateway.server import GatewayServer, simulated_history
from rtcap.gateway.simfeed import SimulatedFeed
from rtcap.gateway.tokens import TokenIssuer
from rtcap.simulator import MarketSimulator
from rtcap.storage.manifest import subscribed_contracts

HISTORY_DAYS = 5.0  # days of seeded minute history before the live start, by default


def simulated_gateway(
    seed: int = 7,
    instruments: list[str] | tuple[str, ...] = ("MNQ", "ES"),
    rate: float = 40.0,
    *,
    faults: FaultPlan | None = None,
    history_days: float = HISTORY_DAYS,
    host: str = "127.0.0.1",
    port: int = 0,
    tokens: TokenIssuer | None = None,
    keepalive_s: float = 15.0,
    start_ns: int | None = None,
) -> tuple[GatewayServer, SimulatedFeed]:
    """The seeded simulated market paced in real time, with history ending where it starts.

    ``ValueError`` names an instrument the simulator does not know."""
    feed = SimulatedFeed(seed, list(instruments), rate, faults=faults, start_ns=start_ns)
    server = GatewayServer(
        feed,
        feed.contracts,
        host=host,
        port=port,
        faults=faults,
        tokens=tokens,
        history=simulated_history(feed.market, history_days, feed.start_ns, seed),
        keepalive_s=keepalive_s,
    )
    return server, feed


def capture_gateway(source: Any, *, host: str = "127.0.0.1", port: int = 0) -> GatewayServer:
    """A capture replayed to whoever connects (it starts when the first client subscribes)."""
    manifest = source.manifest
    return GatewayServer(
        source,
        subscribed_contracts(manifest),
        host=host,
        port=port,
        history=_recorded_simulator_history(manifest, source.reader.span[0]),
        wait_for_client=True,
    )


def _recorded_simulator_history(manifest: dict, first_ns: int) -> dict:
    """For a capture of rtcap's simulated market, the same seeded history the live gateway
    served (it ends where the recorded walk began), so SDK clients load history on replay too.
    Captures of real feeds have no history before their first frame."""
    info = manifest.get("source") or {}
    if info.get("kind") != "sim" or not isinstance(info.get("seed"), int):
        return {}
    instruments = info.get("instruments") or list(info.get("contracts") or {})
    start_ns = info.get("start_ns") or first_ns
    try:
        market = MarketSimulator(info["seed"], instruments, start_ns=start_ns)
    except (KeyError, ValueError):
        return {}
    return simulated_history(market, HISTORY_DAYS, start_ns, info["seed"])


def sdk_shim_command() -> str:
    """The shim as the SDK's own environment runs it: by the path of its file, which needs only
    the standard library (``python -m rtcap.sdk_shim`` fails where rtcap is not installed)."""
    return shlex.quote(sdk_shim.shim_file())


def endpoint_lines(server: GatewayServer) -> list[str]:
    """What a person needs to point a client at ``server``, one line each."""
    urls = server.urls
    return [
        f"  REST base   {urls['api']}",
        f"  market hub  {urls['market_hub']}",
        f"  user hub    {urls['user_hub']}",
        f"  raw frames  ws://{server.host}:{server.port}/ws",
        f"  SDK         PROJECTX_API_URL={urls['api']} python {sdk_shim_command()} strategy.py",
    ]
