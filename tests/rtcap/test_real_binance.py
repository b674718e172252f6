"""The Binance codec on a real capture (hftbacktest collector format: ../shared/data, or the
slice in fixtures/)."""

import gzip

from rtcap.codecs import BinanceCodec, DecodeError
from rtcap.events import EventType
from rtcap.models import DepthUpdate, Frame, Quote, Trade
from rtcap.pipeline import Pipeline


def frames(path):
    with gzip.open(path, "rb") as lines:
        for seq, line in enumerate(lines):
            stamp, _, payload = line.rstrip(b"\n").partition(b" ")
            yield Frame(seq, int(stamp), payload=payload)


def test_every_line_of_the_real_capture_decodes(binance_capture, binance_counts):
    codec = BinanceCodec()
    counts = {Trade: 0, Quote: 0, DepthUpdate: 0, DecodeError: 0}
    snapshots = 0
    for frame in frames(binance_capture):
        for item in codec.decode(frame):
            counts[type(item)] += 1
            snapshots += isinstance(item, DepthUpdate) and item.snapshot
    assert counts == {
        Trade: binance_counts["trade"],
        Quote: binance_counts["bookTicker"],
        DepthUpdate: binance_counts["depth@100ms"] + 1,  # and the REST snapshot
        DecodeError: 0,
    }
    assert snapshots == 1


def test_real_trades_have_contiguous_ids_and_clock_skew_is_visible(binance_capture, binance_counts):
    pipeline = Pipeline(None, ["1min"], codec="binance", timezone="UTC")
    events = pipeline.feed_many(frames(binance_capture))
    state = pipeline.instrument("ETHUSDT")
    assert state.trades == binance_counts["trade"] and state.sequence_gaps == 0
    assert not [e for e in events if e.type is EventType.GAP and e.data["kind"] == "trade_id"]
    # The README: the recorder's clock ran ~1.27 s behind Binance's trade times.
    codec = BinanceCodec()
    skews = sorted(
        item.exch_ns - item.recv_ns
        for frame in frames(binance_capture)
        for item in codec.decode(frame)
        if isinstance(item, Trade)
    )
    median = skews[len(skews) // 2] / 1e9
    assert 1.0 < median < 1.6
    closed = [e.data["bar"] for e in events if e.type is EventType.BAR_CLOSED]
    assert len(closed) == binance_counts["trade_minutes"] - 1  # the last one is still forming
    assert all(bar.volume > 0 for bar in closed)
    assert (
        abs(
            sum(bar.volume for bar in pipeline.instrument("ETHUSDT").builder.bars("1min"))
            - state.volume
        )
        < 1e-6
    )
