import pytest

from rtcap.codecs import ProjectXCodec
from rtcap.models import DepthUpdate, Quote, Trade
from rtcap.simulator import DEFAULT_START_NS, MarketSimulator
from rtcap.timeutil import NS


def take(seed, count=3000, **options):
    return list(MarketSimulator(seed, ["MNQ", "ES"], **options).frames(max_frames=count))


def test_same_seed_same_frames_and_different_seed_differs():
    first, again, other = take(3), take(3), take(4)
    assert [(f.seq, f.recv_ns, f.payload) for f in first] == [
        (f.seq, f.recv_ns, f.payload) for f in again
    ]
    assert [f.payload for f in first] != [f.payload for f in other]


def test_frames_decode_cleanly_on_the_tick_grid_in_time_order():
    frames = take(5)
    codec = ProjectXCodec()
    items = [item for frame in frames for item in codec.decode(frame)]
    kinds = {type(item) for item in items}
    assert kinds == {Trade, Quote, DepthUpdate}
    trades = [i for i in items if isinstance(i, Trade)]
    assert all(round(t.price / 0.25) * 0.25 == t.price for t in trades)
    assert {t.symbol for t in trades} == {"MNQ", "ES"}
    recv = [f.recv_ns for f in frames]
    assert recv == sorted(recv) and [f.seq for f in frames] == list(range(len(frames)))
    assert all(f.recv_ns >= f.exch_ns for f in frames)
    multi = [f for f in frames if f.target == "GatewayTrade" and f.payload.count(b'"price"') > 1]
    assert len(multi) > 50  # some messages hold several trades


def test_duration_limit_rate_and_regimes():
    market = MarketSimulator(1, "MNQ", rate=50)
    frames = list(market.frames(duration_s=120))
    assert all(f.exch_ns < DEFAULT_START_NS + 120 * NS for f in frames)
    per_second = len(frames) / 120
    assert 10 < per_second < 200  # bursts and quiet spells around the mean of 50
    assert market.contracts == {"MNQ": "CON.F.US.MNQ.U25"}


def test_bad_options_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="unknown instrument"):
        MarketSimulator(1, ["DOGE"])
    with pytest.raises(ValueError, match="rate"):
        MarketSimulator(1, ["MNQ"], rate=0)
    with pytest.raises(ValueError, match="never ends"):
        next(MarketSimulator(1, ["MNQ"]).frames())
