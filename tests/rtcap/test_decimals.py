"""Decimal amounts sum exactly: a bar's volume is the exact decimal sum of its prints, in the
bar builder, the instrument's running volume, resampled bars and the canonical bar text."""

import asyncio
import time
from decimal import Decimal

import orjson
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from rtcap.bars import bar_line, resample
from rtcap.cli import main
from rtcap.decimals import add, format_amount, places_of
from rtcap.models import Bar, Frame
from rtcap.pipeline import Pipeline
from rtcap.timeframes import Grid
from rtcap.timeutil import zone

T0 = 1_723_161_600_000_000_000  # 2024-08-09T00:00:00Z, a minute boundary
MS = 1_000_000


def trade_frame(seq: int, quantity: str, at_ms: int) -> Frame:
    data = {"e": "trade", "E": at_ms, "s": "ETHUSDT", "t": seq + 1, "p": "2600.01",
            "q": quantity, "T": at_ms, "m": False}  # fmt: skip
    payload = orjson.dumps({"stream": "ethusdt@trade", "data": data})
    return Frame(seq, at_ms * MS, 0, 1, "market", "text", payload)


def quantities_within_a_float(max_places: int):
    """Up to 200 decimals with up to ``max_places`` places whose sum needs at most the 15
    significant digits a float holds exactly (each below 10**(12 - max_places))."""

    def one(places: int):
        limit = 10 ** (12 - max_places + places)
        return st.integers(1, limit - 1).map(lambda units: Decimal(units).scaleb(-places))

    quantity = st.integers(0, max_places).flatmap(one)
    return st.lists(quantity, min_size=1, max_size=200)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 8).flatmap(quantities_within_a_float))
def test_a_bars_volume_is_the_exact_decimal_sum_of_its_prints(quantities):
    pipeline = Pipeline(None, ["1min", "5min"], codec="binance", timezone="UTC")
    frames = [trade_frame(i, str(q), T0 // MS + i) for i, q in enumerate(quantities)]
    frames.append(trade_frame(len(frames), "1", T0 // MS + 600_000))  # closes them
    pipeline.feed_many(frames)
    exact = sum(quantities, Decimal(0))
    for label in ("1min", "5min"):
        (bar,) = pipeline.instruments["ETHUSDT"].builder.bars(label, include_forming=False)
        assert bar.volume == float(exact), (label, bar.volume, exact)
    assert pipeline.instruments["ETHUSDT"].volume == float(exact + 1)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["0.25", "0.5", "0.125", "0.75"]), min_size=1, max_size=64))
def test_fractions_that_sum_to_a_whole_number_give_it_exactly(quantities):
    total = sum(map(Decimal, quantities), Decimal(0))
    pipeline = Pipeline(None, ["1min"], codec="binance", timezone="UTC")
    pipeline.feed_many([trade_frame(i, q, T0 // MS + i) for i, q in enumerate(quantities)])
    (bar,) = pipeline.instruments["ETHUSDT"].builder.bars("1min")
    assert bar.volume == float(total)
    assert format_amount(bar.volume) == format(total.normalize(), "f")


def test_resampled_bars_add_volumes_exactly():
    bars = [Bar("1min", T0 + i * 60 * 10**9, T0 + (i + 1) * 60 * 10**9, 1.0, 1.0, 1.0, 1.0,
                v, 1) for i, v in enumerate((0.1, 0.2, 165.5851))]  # fmt: skip
    (five,) = resample(bars, Grid("5min", zone("UTC"), "00:00"))
    assert five.volume == 165.8851 and 0.1 + 0.2 + 165.5851 != 165.8851


def test_places_add_and_the_canonical_text():
    assert [places_of(x) for x in (3, 3.0, 0.25, 1e-05, 1.5e-07, 165.5851)] == [0, 0, 2, 5, 8, 4]
    assert add(0.1, 0.2, 1) == 0.3 and add(2, 3, 0) == 5 and type(add(2, 3, 0)) is int
    assert format_amount(1) == format_amount(1.0) == "1"
    assert format_amount(0.25) == "0.25"
    as_int = Bar("1sec", T0, T0 + 10**9, 1.0, 1.0, 1.0, 1.0, 1, 4)
    as_float = Bar("1sec", T0, T0 + 10**9, 1.0, 1.0, 1.0, 1.0, 1.0, 4)
    assert bar_line("X", as_int) == bar_line("X", as_float)
    assert b",1,4,0,0" in bar_line("X", as_float)


def test_record_then_verify_quarter_prints_with_one_second_bars(tmp_path):
    """Binance trades of 0.25 x 4 per second, recorded with --bars 1sec: each second's bar has
    volume 1, live and in replay alike, and verify says so."""
    import websockets

    async def handler(ws):
        start = time.time_ns() // MS
        for i in range(4 * 6):
            at = start + i * 250
            await asyncio.sleep(max(0.0, at / 1000 - time.time()))
            await ws.send(trade_frame(i, "0.25", at).payload.decode())
        await ws.wait_closed()

    async def scenario():
        server = await websockets.serve(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            return await asyncio.to_thread(
                CliRunner().invoke,
                main,
                ["record", str(tmp_path / "q"), "--source", "binance", "--symbols", "ethusdt",
                 "--binance-url", f"ws://127.0.0.1:{port}", "--bars", "1sec", "--max-frames",
                 "24", "--quiet"],
            )  # fmt: skip
        finally:
            server.close()

    result = asyncio.run(scenario())
    assert result.exit_code == 0, result.output
    verified = CliRunner().invoke(main, ["verify", str(tmp_path / "q"), "--speed", "20x"])
    assert verified.exit_code == 0, verified.output
    assert "DIFFERENT" not in verified.output
