"""Every product of the instrument registry round-trips: the simulated gateway serves it,
``rtcap record --symbols X`` finds its contract, replay builds its bars under ``X`` in its own
session, the SQL trades view names it ``X``, and ``TradingSuite.create(["X"])`` gets bars."""

import orjson
import pytest
from click.testing import CliRunner

from rtcap import TradingSuite
from rtcap.cli import main
from rtcap.instruments import CME_FUTURES, spec_of_root, symbol_of
from rtcap.pipeline import Pipeline
from rtcap.storage.integrity import open_capture, read_frames
from rtcap.timeutil import ns_to_datetime

SYMBOLS = sorted(CME_FUTURES)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def every_product(tmp_path_factory):
    path = tmp_path_factory.mktemp("every") / "cap"
    result = run(
        "record", path, "--symbols", ",".join(SYMBOLS), "--duration", "4s", "--rate", "3000",
        "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return path


def test_the_registry_covers_every_sector_and_its_roots_are_unique():
    sectors = {spec.sector for spec in CME_FUTURES.values()}
    assert sectors == {"equity", "energy", "metals", "currencies", "rates", "agriculture"}
    assert {"ES", "MES", "NQ", "MNQ", "YM", "MYM", "RTY", "M2K", "CL", "MCL", "NG", "QM", "GC",
            "MGC", "SI", "HG", "6E", "6J", "6B", "6A", "ZN", "ZB", "ZF", "ZT", "ZC", "ZS",
            "ZW"} <= set(SYMBOLS)  # fmt: skip
    for spec in CME_FUTURES.values():
        assert spec_of_root(spec.root) is spec
        assert symbol_of(spec.contract_id(1_767_225_600 * 10**9)) == spec.symbol
        assert symbol_of(spec.symbol_id) == spec.symbol
        assert spec.price(round(spec.base_price / spec.tick_size)) == pytest.approx(
            spec.base_price, abs=spec.tick_size
        )


def test_record_subscribes_every_product_by_its_gateway_contract(every_product):
    manifest = open_capture(every_product)
    (stream,) = manifest["subscriptions"]
    subscribed = {entry["symbol"]: entry for entry in stream["subscriptions"]}
    assert sorted(subscribed) == SYMBOLS
    for symbol, entry in subscribed.items():
        spec = CME_FUTURES[symbol]
        assert entry["contract"].startswith(f"CON.F.US.{spec.root}.")
        assert entry["symbolId"] == spec.symbol_id  # the gateway's own answer, recorded


def test_replay_builds_each_products_bars_under_its_symbol_in_its_session(every_product):
    pipeline = Pipeline(SYMBOLS, ["1sec", "1day"], codec="auto")
    pipeline.feed_many(read_frames(every_product))
    assert sorted(pipeline.instruments) == SYMBOLS
    for symbol in SYMBOLS:
        spec = CME_FUTURES[symbol]
        builder = pipeline.instruments[symbol].builder
        assert builder.bars("1sec"), symbol
        day = builder.forming("1day")
        opened = ns_to_datetime(day.start_ns, spec.timezone)
        assert opened.strftime("%H:%M") == spec.session_start, symbol


def test_the_sql_trades_view_names_every_product_by_its_symbol(every_product):
    result = run(
        "sql", every_product, "--format", "json",
        "-c", "select symbol, count(*) as n, min(contract) as contract from trades group by 1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = {row["symbol"]: row for row in orjson.loads(result.output)}
    assert sorted(rows) == SYMBOLS
    for symbol, row in rows.items():
        assert row["contract"].startswith(f"CON.F.US.{CME_FUTURES[symbol].root}.")


async def test_trading_suite_gets_bars_for_every_product(monkeypatch):
    monkeypatch.delenv("PROJECTX_API_KEY", raising=False)
    monkeypatch.delenv("PROJECT_X_API_KEY", raising=False)
    suite = await TradingSuite.create(SYMBOLS, timeframes=["1hr"], initial_days=1)
    try:
        for symbol in SYMBOLS:
            bars = await suite[symbol].data.get_data("1hr")
            assert bars.height > 5, symbol
            spec = CME_FUTURES[symbol]
            low, high = bars["low"].min(), bars["high"].max()
            assert spec.base_price * 0.2 < low <= high < spec.base_price * 5, symbol
    finally:
        await suite.disconnect()
