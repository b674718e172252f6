"""The central promise: the same events live, at 1x, at 10x and at max speed, and however the
capture is cut into segments. The live session runs against the simulated gateway with faults
injected (drops and malformed records), so reconnects and decode errors are part of the stream."""

import asyncio

from helpers import write_capture

from rtcap import EventType, TradingSuite
from rtcap.bars import bar_line
from rtcap.capture.feeds import local_gateway_feed
from rtcap.capture.live import Live
from rtcap.capture.session import Backoff
from rtcap.gateway.embedded import start_embedded_market
from rtcap.gateway.faults import FaultPlan
from rtcap.replay.source import Replay
from rtcap.replay.verify import live_bar_lines
from rtcap.storage.integrity import read_frames

TIMEFRAMES = ["1sec", "5sec"]
SYMBOLS = ["MNQ", "ES"]


def signature(event):
    return (event.type.value, event.instrument, event.timestamp, repr(event.data))


async def collect(source, **options):
    suite = await TradingSuite.create(
        SYMBOLS,
        TIMEFRAMES,
        source=source,
        auto_connect=False,
        initial_days=0,
        fill_flat=True,
        **options,
    )
    events = []
    await suite.on_any(lambda event: events.append(signature(event)))
    await suite.connect()
    return suite, events


async def live_session(path, seconds):
    market = await start_embedded_market(
        7, SYMBOLS, 300, history_days=0, faults=FaultPlan(drop_after_s=1.3, malformed_every=97)
    )
    live = Live(
        [local_gateway_feed(market, SYMBOLS)],
        record_to=path,
        bar_timeframes=TIMEFRAMES,
        source_info=market.source_info(),
        on_close=market.stop,
        backoff=Backoff(initial_s=0.05, max_s=0.2),
        clock_interval_s=0.05,
    )
    suite, events = await collect(live)
    await asyncio.sleep(seconds)
    live.recorder.stop.set()  # end the recording, then let the suite take everything in
    await suite.wait_until_done(timeout=30)
    await suite.disconnect()
    return events


async def test_live_1x_10x_max_and_resegmented_replays_give_identical_events(tmp_path):
    live = await live_session(tmp_path / "cap", 4.0)
    kinds = {event[0] for event in live}
    assert {"connected", "disconnected", "gap", "error", "bar_closed", "trade_tick"} <= kinds
    assert sum(event[0] == "disconnected" for event in live) >= 3  # faults were in play
    for speed in ("max", "10x", "1x"):
        suite, replayed = await collect(Replay(tmp_path / "cap", speed))
        await suite.wait_until_done(timeout=60)
        assert replayed == live, speed
    frames = list(read_frames(tmp_path / "cap"))
    for rows, segment in ((97, 20_000), (1000, 150_000)):
        copy = tmp_path / f"copy-{rows}"
        write_capture(copy, frames, row_group_rows=rows, segment_max_bytes=segment).close()
        suite, replayed = await collect(Replay(copy, "max"))
        await suite.wait_until_done(timeout=60)
        assert replayed == live, copy.name
    live_bars = live_bar_lines(tmp_path / "cap")
    replay_bars = []
    suite = await TradingSuite.create(
        SYMBOLS, TIMEFRAMES, source=Replay(tmp_path / "cap"), auto_connect=False, initial_days=0
    )
    await suite.on(
        EventType.BAR_CLOSED, lambda e: replay_bars.append(bar_line(e.instrument, e.data["bar"]))
    )
    await suite.connect()
    await suite.wait_until_done(timeout=60)
    assert live_bars and replay_bars == live_bars  # the recorder's own live bars agree too
