import math

import polars as pl
import pytest

from rtcap.indicators import ATR, BBANDS, EMA, MACD, OBV, RSI, SMA, VWAP, apply_indicator

CLOSE = [10.0, 11.0, 12.0, 11.0, 13.0, 14.0]


def frame(close=CLOSE):
    return pl.DataFrame(
        {
            "close": close,
            "high": [c + 1 for c in close],
            "low": [c - 1 for c in close],
            "volume": [100, 200, 300, 400, 500, 600][: len(close)],
        }
    )


def approx(values):
    return [None if v is None else pytest.approx(v) for v in values]


def test_sma():
    assert frame().pipe(SMA, period=3)["sma_3"].to_list() == approx(
        [None, None, 11.0, 34 / 3, 12.0, 38 / 3]
    )


def test_ema_is_seeded_with_the_simple_mean():
    # alpha = 0.5; seed mean(10, 11, 12) = 11; then 11 + .5(11-11) = 11; 11 + .5(13-11) = 12;
    # 12 + .5(14-12) = 13
    assert frame().pipe(EMA, period=3)["ema_3"].to_list() == approx([None, None, 11, 11, 12, 13])


def test_rsi_wilder_by_hand():
    # changes: +1 +1 -1 +2 +1. Period 3: avg gain seed (1+1+0)/3 = 2/3, loss 1/3 (rows 1-3)
    # row 4: gain (2/3*2 + 2)/3 = 10/9, loss (1/3*2)/3 = 2/9 → RS 5 → RSI 83.333
    # row 5: gain (10/9*2 + 1)/3 = 29/27, loss (2/9*2)/3 = 4/27 → RS 7.25 → RSI 87.879
    rsi = frame().pipe(RSI, period=3)["rsi_3"].to_list()
    assert rsi == approx([None, None, None, 100 - 100 / 3, 100 - 100 / 6, 100 - 100 / 8.25])


def test_rsi_is_100_without_losses():
    assert frame([1.0, 2, 3, 4, 5]).pipe(RSI, period=2)["rsi_2"].to_list()[2:] == [100.0] * 3


def test_macd_line_signal_histogram():
    out = frame().pipe(MACD, fast_period=2, slow_period=3, signal_period=2)
    # fast EMA(2): seed 10.5 at row 1, then 11.5, 11.1667, 12.3889, 13.4630
    # slow EMA(3): seed 11 at row 2, then 11, 12, 13
    fast = [None, 10.5, 10.5 + 2 / 3 * 1.5, None, None, None]
    fast[3] = fast[2] + 2 / 3 * (11 - fast[2])
    fast[4] = fast[3] + 2 / 3 * (13 - fast[3])
    fast[5] = fast[4] + 2 / 3 * (14 - fast[4])
    slow = [None, None, 11.0, 11.0, 12.0, 13.0]
    line = [None, None] + [f - s for f, s in zip(fast[2:], slow[2:], strict=True)]
    signal = [None, None, None, (line[2] + line[3]) / 2, None, None]
    signal[4] = signal[3] + 2 / 3 * (line[4] - signal[3])
    signal[5] = signal[4] + 2 / 3 * (line[5] - signal[4])
    assert out["macd"].to_list() == approx(line)
    assert out["macd_signal"].to_list() == approx(signal)
    assert out["macd_histogram"].to_list()[5] == pytest.approx(line[5] - signal[5])
    with pytest.raises(ValueError, match="fast_period"):
        frame().pipe(MACD, fast_period=5, slow_period=3)


def test_bollinger_uses_population_std():
    out = frame().pipe(BBANDS, period=3, std_dev=2)
    std = math.sqrt(((10 - 11) ** 2 + 0 + (12 - 11) ** 2) / 3)
    assert out["bb_middle_3"][2] == pytest.approx(11.0)
    assert out["bb_upper_3"][2] == pytest.approx(11 + 2 * std)
    assert out["bb_lower_3"][2] == pytest.approx(11 - 2 * std)


def test_atr_wilder_of_true_range():
    # TR: 2, max(2, |12-10|, |10-10|)=2, 2, max(2, |12-12|, |10-12|)=2, max(2, |14-11|, ..)=3, 2
    assert frame().pipe(ATR, period=3)["atr_3"].to_list() == approx(
        [None, None, 2.0, 2.0, 7 / 3, (7 / 3 * 2 + 2) / 3]
    )


def test_vwap_and_obv():
    out = frame().pipe(VWAP).pipe(OBV)
    typical = CLOSE  # (h + l + c) / 3 == c here
    volume = [100, 200, 300, 400, 500, 600]
    expect = [
        sum(t * v for t, v in zip(typical[: i + 1], volume[: i + 1], strict=True))
        / sum(volume[: i + 1])
        for i in range(6)
    ]
    assert out["vwap"].to_list() == approx(expect)
    assert out["obv"].to_list() == [100, 300, 600, 200, 700, 1300]
    assert out["obv"].dtype == pl.Int64


def test_anchored_vwap_restarts_each_day():
    df = frame().with_columns(
        pl.datetime_range(
            pl.datetime(2025, 9, 1, 22), pl.datetime(2025, 9, 2, 3), "1h", time_zone="UTC"
        ).alias("timestamp")
    )
    out = df.pipe(VWAP, anchor="1d")
    assert out["vwap"][2] == pytest.approx(12.0)  # 00:00 on the 2nd starts afresh


def test_indicator_specs_and_lazy_frames():
    lazy = frame().lazy().pipe(SMA, period=2).collect()
    assert lazy["sma_2"][1] == pytest.approx(10.5)
    assert apply_indicator(frame(), "ema:2")["ema_2"][1] == pytest.approx(10.5)
    with pytest.raises(ValueError, match="unknown indicator"):
        apply_indicator(frame(), "foo:3")
    with pytest.raises(ValueError, match="positive integer"):
        frame().pipe(SMA, period=0)
