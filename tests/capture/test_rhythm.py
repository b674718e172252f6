"""The silence rule (rtcap.capture.rhythm): a busy stream's silence is judged by its own
rhythm, a quiet stream's by the fixed upper bound, and neither below the floor."""

from hypothesis import given
from hypothesis import strategies as st

from rtcap.capture.rhythm import FACTOR, FLOOR_S, WARM_UP, Rhythm

S = 1_000_000_000
UPPER = 5 * S


def fed(gaps_ns, rhythm=None):
    rhythm = rhythm or Rhythm(UPPER)
    at = 1_700_000_000 * S
    rhythm.arrived(at)
    for gap in gaps_ns:
        at += gap
        rhythm.arrived(at)
    return rhythm


def test_a_busy_stream_is_judged_by_its_rhythm_with_the_floor_under_it():
    busy = fed([700_000] * 1000)  # 1,500 messages a second
    assert busy.threshold_ns() == int(FLOOR_S * S)
    assert busy.is_silence(2 * S) and not busy.is_silence(int(0.4 * S))


def test_a_quiet_stream_keeps_the_upper_bound_and_so_does_a_new_one():
    assert fed([]).threshold_ns() == UPPER  # nothing known yet
    assert fed([S] * (WARM_UP - 1)).threshold_ns() == UPPER  # still warming up
    quiet = fed([2 * S] * 1000)  # a message every 2 s overnight
    assert quiet.threshold_ns() == UPPER and not quiet.is_silence(4 * S)


def test_a_silence_does_not_raise_the_threshold_it_broke():
    rhythm = fed([700_000] * 1000)
    at = 1_700_000_000 * S + 1000 * 700_000  # the last arrival
    rhythm.arrived(at + 3 * S, after_silence=True)  # the stall, judged as a silence
    for step in range(1, 200):
        rhythm.arrived(at + 3 * S + step * 700_000)
    assert rhythm.threshold_ns() == int(FLOOR_S * S)


@given(st.lists(st.integers(min_value=1, max_value=20 * S), min_size=WARM_UP, max_size=600))
def test_the_threshold_always_lies_between_the_floor_and_the_upper_bound(gaps):
    rhythm = fed(gaps)
    assert int(FLOOR_S * S) <= rhythm.threshold_ns() <= UPPER
    if len(gaps) % 64 == 0 or len(gaps) == WARM_UP:  # just refreshed: exactly the rule
        window = gaps[-512:]
        expected = max(int(FLOOR_S * S), min(UPPER, int(FACTOR * max(window))))
        assert rhythm.threshold_ns() == expected
