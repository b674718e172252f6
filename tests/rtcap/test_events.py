import asyncio

import pytest

from rtcap.events import Event, EventBus, EventType, as_event_type


def bar_event(instrument="MNQ", kind=EventType.NEW_BAR, ts=1):
    return Event(kind, {"n": ts}, "test", ts, instrument)


async def test_handlers_run_in_registration_order_sync_and_async_mixed():
    bus, calls = EventBus(), []

    async def first(event):
        await asyncio.sleep(0)
        calls.append(("first", event.data["n"]))

    def second(event):
        calls.append(("second", event.data["n"]))

    await bus.on(EventType.NEW_BAR, first)
    await bus.on_any(second)
    await bus.on("new_bar", lambda e: calls.append(("third", e.data["n"])))
    await bus.dispatch([bar_event(ts=1), bar_event(ts=2)])
    assert calls == [
        ("first", 1),
        ("second", 1),
        ("third", 1),
        ("first", 2),
        ("second", 2),
        ("third", 2),
    ]


async def test_failing_handler_is_isolated_and_reported_as_error_event():
    bus, seen, errors = EventBus(), [], []

    def broken(event):
        raise RuntimeError("handler bug")

    await bus.on(EventType.NEW_BAR, broken)
    await bus.on(EventType.NEW_BAR, lambda e: seen.append(e.timestamp))
    await bus.on(EventType.ERROR, errors.append)
    await bus.emit(bar_event(ts=5))
    assert seen == [5]
    (error,) = errors
    assert error.data["handler"].endswith("broken")
    assert isinstance(error.data["error"], RuntimeError)
    assert error.data["original_event"].timestamp == 5 and error.instrument == "MNQ"


async def test_failing_error_handler_does_not_recurse():
    bus, count = EventBus(), []

    def bad(event):
        count.append(1)
        raise ValueError("again")

    await bus.on(EventType.ERROR, bad)
    await bus.emit(EventType.ERROR, {"x": 1})
    assert count == [1]


async def test_once_off_and_instrument_scoping():
    bus, calls = EventBus(), []
    await bus.once(EventType.NEW_BAR, lambda e: calls.append("once"))
    await bus.on(EventType.NEW_BAR, lambda e: calls.append("es"), instrument="ES")
    handler = lambda e: calls.append("all")  # noqa: E731
    await bus.on(EventType.NEW_BAR, handler)
    await bus.emit(bar_event("MNQ"))
    await bus.emit(bar_event("ES"))
    await bus.emit(Event(EventType.NEW_BAR, {}, None, 0, None))  # feed-wide: every scope sees it
    assert calls == ["once", "all", "es", "all", "es", "all"]
    await bus.off(EventType.NEW_BAR, handler)
    calls.clear()
    await bus.emit(bar_event("ES"))
    assert calls == ["es"]
    await bus.off()
    assert bus.handler_count() == 0 and not bus.wanted


async def test_wait_for_returns_next_event_and_times_out_cleanly():
    bus = EventBus()
    waiter = asyncio.create_task(bus.wait_for(EventType.BAR_CLOSED, timeout=2))
    await asyncio.sleep(0)
    await bus.emit(bar_event(kind=EventType.BAR_CLOSED, ts=9))
    assert (await waiter).timestamp == 9
    with pytest.raises(TimeoutError):
        await bus.wait_for(EventType.GAP, timeout=0.01)
    assert bus.handler_count(EventType.GAP) == 0


async def test_wanted_tracks_subscribed_types():
    bus = EventBus()
    await bus.on(EventType.TRADE_TICK, print)
    assert bus.wanted == {EventType.TRADE_TICK}
    await bus.on_any(print)
    assert bus.wanted == set(EventType)


def test_event_type_names_and_values_are_accepted_and_unknown_ones_listed():
    assert as_event_type("NEW_BAR") is EventType.NEW_BAR
    assert as_event_type("quote_update") is EventType.QUOTE_UPDATE
    with pytest.raises(ValueError, match="NEW_BAR"):
        as_event_type("custom")


async def test_non_callable_handler_is_refused():
    with pytest.raises(TypeError):
        await EventBus().on(EventType.NEW_BAR, "not a function")
