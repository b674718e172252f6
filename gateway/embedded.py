"""The embedded simulated market: a ProjectX-compatible gateway started in-process on
loopback, which ``rtcap record`` and ``TradingSuite`` use when no real feed is configured, so
rtcap runs with no account and no internet (``rtcap.capture.feeds.local_gateway_feed`` points a
ProjectX feed at it)."""

from __future__ import annotations

from dataclasses import dataclass

from rtcap.gateway.build import simulated_gateway
from rtcap.gateway.faults import FaultPlan
from rtcap.gateway.server import GatewayServer
from rtcap.gateway.simfeed import SimulatedFeed


@dataclass
class EmbeddedMarket:
    server: GatewayServer
    feed: SimulatedFeed

    @property
    def api_url(self) -> str:
        return self.server.urls["api"]

    @property
    def market_hub_url(self) -> str:
        return self.server.urls["market_hub"]

    def source_info(self) -> dict:
        return {
            "kind": "sim",
            "seed": self.feed.seed,
            "rate": self.feed.rate,
            "instruments": [spec.symbol for spec in self.feed.market.specs],
            "start_ns": self.feed.start_ns,  # where the seeded history ends (replay --serve)
            "contracts": self.feed.contracts,
            "api_url": self.api_url,
            "market_hub_url": self.market_hub_url,
        }

    async def stop(self) -> None:
        await self.server.stop()


async def start_embedded_market(
    seed: int = 7,
    instruments: list[str] | tuple[str, ...] = ("MNQ", "ES"),
    rate: float = 40.0,
    *,
    faults: FaultPlan | None = None,
    history_days: float = 5.0,
) -> EmbeddedMarket:
    server, feed = simulated_gateway(
        seed, instruments, rate, faults=faults, history_days=history_days
    )
    await server.start()
    return EmbeddedMarket(server, feed)
