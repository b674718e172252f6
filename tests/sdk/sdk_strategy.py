"""An ordinary ProjectX SDK strategy, run unmodified against rtcap by tests/sdk/test_real_sdk.py.

It loads a day of history per timeframe, counts quotes, trades and NEW_BAR events per
timeframe until every timeframe has had a new bar (or time runs out), and prints the counts as
one JSON line. Nothing in it knows about rtcap.
"""

import asyncio
import json
import os

from project_x_py import EventType, TradingSuite

TIMEFRAMES = ["15sec", "1min"]


async def main() -> None:
    # TRADE_TICK events come only with the SDK's orderbook feature; trades are counted at the
    # SDK's realtime client, where every GatewayTrade push arrives.
    seconds = float(os.environ.get("SDK_RUN_SECONDS", "80"))
    suite = await TradingSuite.create("MNQ", timeframes=TIMEFRAMES, initial_days=1)
    counts = {"quotes": 0, "trades": 0, "new_bar": {tf: 0 for tf in TIMEFRAMES}, "connected": []}
    history = {}
    for timeframe in TIMEFRAMES:
        data = await suite["MNQ"].data.get_data(timeframe)
        history[timeframe] = 0 if data is None else len(data)

    async def on_bar(event):
        timeframe = event.data.get("timeframe")
        counts["new_bar"][timeframe] = counts["new_bar"].get(timeframe, 0) + 1

    async def on_quote(event):
        counts["quotes"] += 1

    async def on_trade(
        callback_data,
    ):  # GatewayTrade pushes, as the SDK's realtime client sees them
        counts["trades"] += 1

    await suite.on(EventType.NEW_BAR, on_bar)
    await suite.on(EventType.QUOTE_UPDATE, on_quote)
    await suite.realtime.add_callback("market_trade", on_trade)
    loop = asyncio.get_running_loop()
    started = loop.time()
    at_least = min(seconds, float(os.environ.get("SDK_MIN_SECONDS", "10")))
    while loop.time() < started + seconds:
        seen_every_bar = all(counts["new_bar"][tf] for tf in TIMEFRAMES)
        if seen_every_bar and loop.time() >= started + at_least:
            break
        await asyncio.sleep(0.5)
    counts["contract"] = suite["MNQ"].instrument_info.id
    await suite.disconnect()
    print(json.dumps({"history": history, **counts}))


asyncio.run(main())
