"""TradingSuite on a live source: the embedded simulated market, recorded as it streams."""

import asyncio
from datetime import timedelta

import orjson
import polars as pl
import pytest

from rtcap import EventType, TradingSuite
from rtcap.storage.integrity import open_capture, read_frames


async def test_suite_without_source_streams_the_embedded_market_with_history_and_records(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("PROJECTX_API_KEY", raising=False)
    suite = await TradingSuite.create(
        ["MNQ"], timeframes=["1sec", "1min"], initial_days=1, record_to=str(tmp_path / "today")
    )
    # as the SDK's: create() returns with the connection open, and is_connected says so
    assert suite.is_connected and suite.pipeline.stream_connected == {"market": True}
    ticks, bars = [], []
    await suite["MNQ"].on(EventType.TRADE_TICK, ticks.append)
    await suite["MNQ"].on(EventType.BAR_CLOSED, bars.append)
    history = await suite["MNQ"].data.get_data("1min")
    assert history.height > 500  # a day of seeded minute history (CME hours only)
    await suite["MNQ"].wait_for(EventType.BAR_CLOSED, timeout=10)
    for _ in range(500):  # a few more prints (the market streams ~20 a second)
        if len(ticks) > 5:
            break
        await asyncio.sleep(0.02)
    assert suite.is_connected
    await suite.disconnect()
    assert len(ticks) > 5 and all(t.data["symbol"] == "MNQ" for t in ticks)
    # a 1min bar closes too when the run crosses a wall-clock minute
    assert "1sec" in {b.data["timeframe"] for b in bars} <= {"1sec", "1min"}
    manifest = open_capture(tmp_path / "today")
    frames = list(read_frames(tmp_path / "today"))
    assert manifest["status"] == "closed" and manifest["source"]["kind"] == "sim"
    trades = sum(
        f.payload.count(b'"price"')
        for f in frames
        if f.kind == "text" and b"GatewayTrade" in f.payload
    )
    assert trades >= len(ticks)  # the capture holds at least what the suite saw
    opened = next(f for f in frames if f.kind == "open")  # a clock row may come first
    assert orjson.loads(opened.payload)["url"].endswith("access_token=REDACTED")


async def test_suite_loads_history_for_every_timeframe_seconds_included(monkeypatch):
    monkeypatch.delenv("PROJECTX_API_KEY", raising=False)
    monkeypatch.delenv("PROJECT_X_API_KEY", raising=False)
    suite = await TradingSuite.create(
        ["MNQ"], timeframes=["15sec", "1min"], initial_days=1, auto_connect=False
    )
    assert not suite.is_connected  # nothing is open before connect()
    seconds = await suite["MNQ"].data.get_data("15sec")
    minutes = await suite["MNQ"].data.get_data("1min")
    assert minutes.height > 500 and seconds.height > 2 * minutes.height
    # Both end with the gateway's forming bar (asked with includePartialBar, as the SDK does;
    # the walk goes on between the two requests). Up to the minute the first request's forming
    # bar was in, the 15-second history folds exactly into the minute history.
    cutoff = seconds["timestamp"][-1].replace(second=0)
    assert minutes["timestamp"][-1] >= cutoff
    last_second_bars = seconds.filter(
        (pl.col("timestamp") < cutoff) & (pl.col("timestamp") >= cutoff - timedelta(minutes=1))
    )
    last_minute = minutes.filter(pl.col("timestamp") < cutoff)[-1]
    assert last_minute["timestamp"][0] == cutoff - timedelta(minutes=1)
    assert last_second_bars["close"][-1] == last_minute["close"][0]
    assert last_second_bars["volume"].sum() == last_minute["volume"][0]
    await suite.connect()
    first_bar = []

    async def on_new_bar(event):
        if event.data["timeframe"] == "15sec" and not first_bar:
            data = await suite["MNQ"].data.get_data("15sec")
            first_bar.append(data[-2])  # what SDK-style scripts do on the first NEW_BAR

    await suite["MNQ"].on(EventType.NEW_BAR, on_new_bar)
    await suite["MNQ"].wait_for(EventType.NEW_BAR, timeout=30)
    await suite.disconnect()
    assert first_bar and first_bar[0]["volume"][0] > 0


async def test_create_raises_when_a_live_feed_never_connects(tmp_path):
    """A gateway that accepts TCP and never answers the websocket handshake: create() raises
    within its connect_timeout (the SDK's create() fails too) and leaves nothing running."""
    from rtcap.capture.feeds import GenericFeed
    from rtcap.capture.live import Live

    silent = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    source = Live([GenericFeed(f"ws://127.0.0.1:{port}/", [])])
    started = asyncio.get_running_loop().time()
    try:
        with pytest.raises(TimeoutError, match="did not connect within 1 s"):
            await TradingSuite.create(["X"], source=source, initial_days=0, connect_timeout=1)
    finally:
        silent.close()
    assert asyncio.get_running_loop().time() - started < 15
