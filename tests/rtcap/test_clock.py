from rtcap.clock import VirtualClock


def test_virtual_clock_fires_due_timers_in_deadline_then_scheduling_order():
    clock, fired = VirtualClock(0), []
    clock.call_at(30, lambda: fired.append(("c", clock.now_ns())))
    clock.call_at(10, lambda: fired.append(("a", clock.now_ns())))
    clock.call_at(10, lambda: fired.append(("b", clock.now_ns())))
    late = clock.call_at(50, lambda: fired.append(("late", clock.now_ns())))
    cancelled = clock.call_at(20, lambda: fired.append(("cancelled", 0)))
    cancelled.cancel()
    assert clock.advance_to(40) == 3
    assert fired == [("a", 10), ("b", 10), ("c", 30)]
    assert clock.now_ns() == 40 and clock.next_deadline() == 50
    late.cancel()
    assert clock.next_deadline() is None


def test_timers_scheduled_by_callbacks_fire_in_the_same_advance_when_due():
    clock, fired = VirtualClock(0), []

    def chain():
        fired.append(clock.now_ns())
        if clock.now_ns() < 30:
            clock.call_at(clock.now_ns() + 10, chain)

    clock.call_at(10, chain)
    clock.advance_to(100)
    assert fired == [10, 20, 30]


def test_virtual_clock_never_goes_backwards():
    clock = VirtualClock(100)
    clock.advance_to(50)
    assert clock.now_ns() == 100
