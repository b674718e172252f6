"""Run an unmodified ProjectX SDK strategy against an rtcap gateway.

The SDK (``project-x-py``) builds its default configuration with the TopstepX URLs and reads
no URL from the environment unless it is handed a config. This shim changes exactly that,
and nothing else: every ``ProjectXConfig`` created without explicit URLs gets the gateway's
instead (REST base, market hub, user hub). Credentials, accounts, timeframes and everything the
strategy does stay as written.

    rtcap sim                      # prints its URLs and this file's path; any API key works
    rtcap sdk-shim .               # or copy this file next to the strategy
    export PROJECTX_API_URL=http://127.0.0.1:PORT/api
    export PROJECT_X_USERNAME=me PROJECT_X_API_KEY=any-key-longer-than-10
    python sdk_shim.py my_strategy.py [its arguments]     # in the SDK's environment

The gateway may also be given as ``--gateway http://127.0.0.1:PORT`` (the hubs are then
``/hubs/market`` and ``/hubs/user`` on it), or in code: ``rtcap.sdk_shim.use_gateway(url)``
before the SDK builds its client. The same works for ``rtcap replay --serve CAPTURE``, which
replays a recorded session to the strategy. The file needs only the standard library, so it
runs by its path in the SDK's environment, where rtcap is not installed (the SDK wants Python
3.12 or newer); where rtcap is installed, ``python -m rtcap.sdk_shim`` works too.
"""

from __future__ import annotations

import dataclasses
import os
import runpy
import sys
from typing import Any

URL_VARIABLES = {
    "api_url": "PROJECTX_API_URL",
    "market_hub_url": "PROJECTX_MARKET_HUB_URL",
    "user_hub_url": "PROJECTX_USER_HUB_URL",
}


def gateway_urls(gateway: str | None = None) -> dict[str, str]:
    """The SDK's URL fields for ``gateway`` (``http://host:port``), else from the SDK's own
    environment variables (``PROJECTX_API_URL``, ``…_MARKET_HUB_URL``, ``…_USER_HUB_URL``; the
    hubs default to ``/hubs/market`` and ``/hubs/user`` beside the REST base)."""
    if gateway:
        root = gateway.rstrip("/").removesuffix("/api")
        return {
            "api_url": f"{root}/api",
            "market_hub_url": f"{root}/hubs/market",
            "user_hub_url": f"{root}/hubs/user",
        }
    api = os.environ.get(URL_VARIABLES["api_url"])
    if not api:
        raise SystemExit(
            "rtcap.sdk_shim: say where the gateway is: --gateway http://127.0.0.1:PORT, or "
            "PROJECTX_API_URL (rtcap sim and rtcap replay --serve print it)"
        )
    urls = gateway_urls(api)
    for field, variable in URL_VARIABLES.items():
        urls[field] = os.environ.get(variable) or urls[field]
    return urls


def use_gateway(gateway: str | None = None, **urls: str) -> dict[str, str]:
    """Make every ``ProjectXConfig`` built without explicit URLs use the gateway's."""
    from project_x_py import models

    chosen = {**gateway_urls(gateway), **urls} if gateway or not urls else dict(urls)
    config_class = models.ProjectXConfig
    original = getattr(config_class, "_rtcap_original_init", config_class.__init__)
    positional = [f.name for f in dataclasses.fields(config_class)]

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        given = set(positional[: len(args)]) | set(kwargs)
        for field, value in chosen.items():
            if field not in given:
                kwargs[field] = value
        original(self, *args, **kwargs)

    config_class._rtcap_original_init = original
    config_class.__init__ = __init__
    return chosen


def shim_file() -> str:
    """This file's own path: what the SDK's environment, where rtcap is not installed, runs."""
    return os.path.realpath(__file__)


def main(argv: list[str] | None = None) -> None:
    """``python -m rtcap.sdk_shim [--gateway URL] SCRIPT [ARGS…]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    gateway = None
    if args[:1] == ["--gateway"] and len(args) >= 2:
        gateway, args = args[1], args[2:]
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        raise SystemExit(0 if args else 2)
    urls = use_gateway(gateway)
    print(f"rtcap.sdk_shim: the SDK connects to {urls['api_url']}", file=sys.stderr)
    script = args[0]
    sys.argv = args
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
