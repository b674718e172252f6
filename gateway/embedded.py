"""The embedded simulated market, a ProjectX-compatible gateway started in-process on
loopback, with ProjectX feeds pointed at it. What ``rtcap record`` and ``TradingSuite`` use when
no real feed is configured, so rtcap runs with no account and no internet."""

from __future__ import annotations

import os
from dataclasses import dataclass

from rtcap.capture.feeds import (
    TOPSTEPX_API,
    TOPSTEPX_MARKET_HUB,
    ProjectXAuth,
    ProjectXMarketFeed,
)
from rtcap.gateway.build import simulated_gateway
from rtcap.gateway.faults import FaultPlan
from rtcap.gateway.server import GatewayServer
from rtcap.gateway.simfeed import SimulatedFeed

EMBEDDED_USER = "rtcap-embedded"
EMBEDDED_KEY = "embedded-simulated-market"


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

    def market_feed(self, symbols: list[str], channels=("quotes", "trades", "depth")):
        auth = ProjectXAuth(self.api_url, EMBEDDED_USER, EMBEDDED_KEY)
        return ProjectXMarketFeed(auth, self.market_hub_url, symbols, tuple(channels))

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


# rtcap's names first, then the ProjectX SDK's, so a machine set up for the SDK works as is.
USERNAME_VARS = ("PROJECTX_USERNAME", "PROJECT_X_USERNAME")
API_KEY_VARS = ("PROJECTX_API_KEY", "PROJECT_X_API_KEY")


def first_env(names: tuple[str, ...]) -> str | None:
    """The value of the first of ``names`` set (and not empty) in the environment."""
    return next((os.environ[n] for n in names if os.environ.get(n)), None)


def projectx_credentials() -> tuple[str, str] | None:
    """(user name, API key) from the environment, if both are set (either spelling)."""
    user, key = first_env(USERNAME_VARS), first_env(API_KEY_VARS)
    return (user, key) if user and key else None


def projectx_urls() -> tuple[str, str]:
    return (
        os.environ.get("PROJECTX_API_URL", TOPSTEPX_API),
        os.environ.get("PROJECTX_MARKET_HUB_URL", TOPSTEPX_MARKET_HUB),
    )
