import asyncio

import polars as pl
import pytest
from helpers import ES, Tape

from rtcap import EventType, ListSource, TradingSuite
from rtcap.models import Bar
from rtcap.simulator import MarketSimulator


def two_instrument_tape() -> Tape:
    tape = Tape()
    tape.lifecycle("2025-09-02T14:59:59Z", "open")
    tape.trade("2025-09-02T15:00:05Z", 21000.0, 2)
    tape.trade("2025-09-02T15:00:06Z", 6000.0, 1, contract=ES)
    tape.trade("2025-09-02T15:01:05Z", 21001.0, 3)
    tape.trade("2025-09-02T15:01:06Z", 6001.0, 4, contract=ES)
    return tape


async def test_create_subscribe_and_read_bars_per_instrument():
    suite = await TradingSuite.create(
        ["MNQ", "ES"], timeframes=["1min"], source=ListSource(two_instrument_tape().frames)
    )
    mnq_bars, all_bars, connected = [], [], []
    await suite["mnq"].on(EventType.NEW_BAR, mnq_bars.append)
    await suite.on(EventType.NEW_BAR, all_bars.append)
    await suite.on(EventType.CONNECTED, connected.append)
    await suite.wait_until_done(timeout=5)
    assert [e.instrument for e in mnq_bars] == ["MNQ", "MNQ"]
    assert [e.instrument for e in all_bars] == ["MNQ", "ES", "MNQ", "ES"]
    assert len(connected) == 1
    data = await suite["MNQ"].data.get_data("1min")
    assert isinstance(data, pl.DataFrame)
    assert data["close"].to_list() == [21000.0, 21001.0]
    assert str(data["timestamp"].dtype) == "Datetime(time_unit='ns', time_zone='America/Chicago')"
    assert await suite["ES"].data.get_current_price() == 6001.0
    assert "MNQ" in suite and len(suite) == 2 and list(suite) == ["ES", "MNQ"]
    assert suite["MNQ"].instrument_info.tick_size == 0.25
    stats = await suite.get_stats()
    assert stats["instruments"]["ES"]["trades"] == 2
    await suite.disconnect()
    assert not suite.is_connected


async def test_wait_for_on_an_instrument_context():
    tape = two_instrument_tape()
    suite = await TradingSuite.create(
        ["MNQ", "ES"], ["1min"], source=ListSource(tape.frames), auto_connect=False
    )
    waiter = asyncio.create_task(suite["ES"].wait_for(EventType.BAR_CLOSED, timeout=5))
    await asyncio.sleep(0)
    await suite.connect()
    event = await waiter
    assert event.instrument == "ES" and event.data["bar"].close == 6000.0
    await suite.disconnect()


async def test_history_from_the_source_warms_up_bars():
    start = 1_756_825_080_000_000_000  # 2025-09-02T14:58:00Z
    history = {
        ("MNQ", "1min"): [
            Bar(
                "1min",
                start + i * 60 * 10**9,
                start + (i + 1) * 60 * 10**9,
                1.0,
                2.0,
                0.5,
                1.5,
                10,
                2,
            )
            for i in range(2)
        ]
    }
    async with await TradingSuite.create(
        "MNQ",
        ["1min"],
        source=ListSource(two_instrument_tape().frames, history=history),
        initial_days=1,
    ) as suite:
        await suite.wait_until_done(timeout=5)
        data = await suite["MNQ"].data.get_data("1min")
        assert data["volume"].to_list() == [10, 10, 2, 3]


async def test_batch_size_does_not_change_handler_calls():
    frames = list(MarketSimulator(2, ["MNQ", "ES"]).frames(duration_s=240))

    async def calls(batch):
        seen = []
        suite = await TradingSuite.create(
            ["MNQ", "ES"],
            ["15sec", "1min"],
            auto_connect=False,
            source=ListSource(frames, yield_every=batch),
        )

        async def record(event):
            data = await suite[event.instrument].data.get_data("15sec")
            seen.append((event.type, event.instrument, event.timestamp, data.height))

        await suite.on(EventType.NEW_BAR, record)
        await suite.on(EventType.BAR_CLOSED, record)
        await suite.connect()
        await suite.wait_until_done(timeout=20)
        await suite.disconnect()
        return seen

    reference = await calls(1)
    assert len(reference) > 30
    for batch in (7, 1000, 10**6):
        assert await calls(batch) == reference


async def test_handler_errors_are_reported_and_the_feed_goes_on():
    suite = await TradingSuite.create(
        "MNQ", ["1min"], source=ListSource(two_instrument_tape().frames), auto_connect=False
    )
    errors, bars = [], []

    async def boom(event):
        raise RuntimeError("strategy bug")

    await suite.on(EventType.NEW_BAR, boom)
    await suite.on(EventType.NEW_BAR, bars.append)
    await suite.on(EventType.ERROR, errors.append)
    await suite.connect()
    await suite.wait_until_done(timeout=5)
    assert len(bars) == 2 and len(errors) == 2
    assert str(errors[0].data["error"]) == "strategy bug"


async def test_create_refuses_missing_or_bad_sources_and_unknown_keys():
    with pytest.raises(ValueError, match="record_to= applies to live sources"):
        await TradingSuite.create("MNQ", source=ListSource([]), record_to="x")
    with pytest.raises(TypeError, match="async iterable"):
        await TradingSuite.create("MNQ", source=[1, 2])
    suite = await TradingSuite.create("MNQ", source=ListSource([]), auto_connect=False)
    with pytest.raises(KeyError, match="not in this suite"):
        suite["ES"]
    with pytest.raises(RuntimeError, match="connect"):
        await suite.wait_until_done()
