"""One strategy, two libraries: the order in which a TradingSuite starts, streams and stops.

Run with ``STRATEGY_LIBRARY=project_x_py`` (the real SDK, through the SDK shim) or
``STRATEGY_LIBRARY=rtcap`` (rtcap's suite, live from the same gateway through the same
environment variables). It prints one JSON list: each step of the script and the first event of
each type, in the order they happened, each with what ``suite.is_connected`` said then.
tests/sdk/test_real_sdk.py runs it both ways and compares the lists.
"""

import asyncio
import importlib
import json
import os

library = importlib.import_module(os.environ.get("STRATEGY_LIBRARY", "project_x_py"))
EventType, TradingSuite = library.EventType, library.TradingSuite
WATCHED = ("CONNECTED", "DISCONNECTED", "QUOTE_UPDATE", "NEW_BAR")


async def main() -> None:
    seconds = float(os.environ.get("SDK_RUN_SECONDS", "40"))
    trace: list[list] = []
    suite = await TradingSuite.create("MNQ", timeframes=["15sec"], initial_days=1)
    trace.append(["created", suite.is_connected])
    seen: set[str] = set()

    async def first_of_each(event) -> None:
        name = getattr(event.type, "value", event.type)
        if name not in seen:
            seen.add(name)
            trace.append([f"event {name}", suite.is_connected])

    for name in WATCHED:
        await suite.on(getattr(EventType, name), first_of_each)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while "new_bar" not in seen and loop.time() < deadline:
        await asyncio.sleep(0.1)
    trace.append(["disconnecting", suite.is_connected])
    await suite.disconnect()
    trace.append(["disconnected", suite.is_connected])
    await asyncio.sleep(1.0)  # an event fired late by the disconnect would show here
    trace.append(["end", suite.is_connected])
    print(json.dumps(trace))


asyncio.run(main())
