"""Where live connections go: the public ProjectX (TopstepX) and Binance endpoints, and the
ProjectX user name and API key from the environment (rtcap's variable names first, then the
ProjectX SDK's, so a machine set up for the SDK works as is). Light on purpose: ``rtcap record
--help`` reads its option defaults from here without loading a network library."""

from __future__ import annotations

import os

TOPSTEPX_API = "https://api.topstepx.com/api"
TOPSTEPX_MARKET_HUB = "https://rtc.topstepx.com/hubs/market"
TOPSTEPX_USER_HUB = "https://rtc.topstepx.com/hubs/user"
BINANCE_URL = "wss://stream.binance.com:9443"

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


def projectx_urls(
    api_url: str | None = None,
    market_hub_url: str | None = None,
    user_hub_url: str | None = None,
) -> tuple[str, str, str]:
    """(REST base, market hub, user hub) of a ProjectX gateway: each as given, else from the
    SDK's variables (``PROJECTX_API_URL``, ``PROJECTX_MARKET_HUB_URL``, ``PROJECTX_USER_HUB_URL``),
    else following the REST base: TopstepX's hubs for TopstepX's API, and ``/hubs/market`` and
    ``/hubs/user`` beside any other (rtcap's gateway, as the SDK shim points them). A session
    token must never go to TopstepX's hubs because only the API URL was changed."""
    from rtcap.sdk_shim import gateway_urls

    api = api_url or os.environ.get("PROJECTX_API_URL") or TOPSTEPX_API
    if api.rstrip("/") == TOPSTEPX_API:
        beside = {"market_hub_url": TOPSTEPX_MARKET_HUB, "user_hub_url": TOPSTEPX_USER_HUB}
    else:
        beside = gateway_urls(api)
    return (
        api,
        market_hub_url or os.environ.get("PROJECTX_MARKET_HUB_URL") or beside["market_hub_url"],
        user_hub_url or os.environ.get("PROJECTX_USER_HUB_URL") or beside["user_hub_url"],
    )
