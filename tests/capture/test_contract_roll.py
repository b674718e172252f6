"""Contract roll: CME's calendar names the front contract; the simulator rolls its contracts on
it; a recorder asked for a root (MNQ) re-resolves the front contract at each session open and
moves its subscription over, writing a row; replay by symbol continues across the roll, with an
event at the row and the old contract's late frames kept apart from the symbol's bars."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import aiohttp
import orjson
from chaos import harness
from chaos.harness import manifest as read_manifest
from click.testing import CliRunner
from helpers import replayed

from rtcap.capture.feeds import local_gateway_feed
from rtcap.capture.recorder import Recorder
from rtcap.capture.roll import RollSchedule
from rtcap.cli import main
from rtcap.codecs import projectx, signalr
from rtcap.events import EventType
from rtcap.gateway.build import simulated_gateway
from rtcap.gateway.embedded import start_embedded_market
from rtcap.instruments import spec_for
from rtcap.replay.source import Replay
from rtcap.simulator import MarketSimulator
from rtcap.storage.integrity import read_frames
from rtcap.storage.writer import CaptureWriter
from rtcap.timeutil import format_iso_ns, parse_iso_ns

S = 1_000_000_000
ROLL = parse_iso_ns("2026-12-09T23:00:00Z")  # 17:00 CST on the eve of Dec 2026's roll date


def test_the_front_contract_follows_cmes_roll_calendar():
    es = spec_for("ES")
    # CME's equity index roll dates: the Thursday eight days before the third Friday.
    rolls = [es.roll_date(code, year) for year in (2025, 2026) for code in "HMUZ"]
    assert [d.isoformat() for d in rolls] == [
        "2025-03-13", "2025-06-12", "2025-09-11", "2025-12-11",
        "2026-03-12", "2026-06-11", "2026-09-10", "2026-12-10",
    ]  # fmt: skip
    mnq = spec_for("MNQ")
    assert mnq.contract_id(ROLL - 1) == "CON.F.US.MNQ.Z26"
    assert mnq.contract_id(ROLL) == "CON.F.US.MNQ.H27"  # the roll date's session has opened
    assert es.contract_id(ROLL) == "CON.F.US.EP.H27"
    assert mnq.next_roll_ns(ROLL - 1) == ROLL
    assert mnq.next_roll_ns(ROLL) == parse_iso_ns("2027-03-10T23:00:00Z")  # CST till Mar 14
    # Others keep their own rule: crude rolls mid-month before its contract month.
    cl = spec_for("CL")
    assert cl.contract_id(parse_iso_ns("2026-12-05T00:00:00Z")) == "CON.F.US.CLE.F27"
    assert cl.contract_id(parse_iso_ns("2026-12-15T00:00:00Z")) == "CON.F.US.CLE.G27"


def test_the_simulator_rolls_its_contracts_on_the_calendar():
    def frames():
        market = MarketSimulator(3, ["MNQ", "ES"], start_ns=ROLL - 3 * S, rate=60)
        return list(market.frames(duration_s=8)), market

    seen, market = frames()
    assert [f.payload for f in seen] == [f.payload for f in frames()[0]]  # still seeded
    kinds = Counter((f.symbol, f.exch_ns >= ROLL, f.target) for f in seen)
    before = {symbol for symbol, after, _ in kinds if not after}
    assert before == {"CON.F.US.MNQ.Z26", "CON.F.US.EP.Z26"}
    # After the roll the new contracts take the walk, with the whole book ...
    for new in ("CON.F.US.MNQ.H27", "CON.F.US.EP.H27"):
        assert kinds[(new, True, projectx.DEPTH)] > 0 and kinds[(new, True, projectx.TRADE)] > 0
        assert not any(symbol == new and not after for symbol, after, _ in kinds)
    # ... while the old ones still print and quote (no book) until their session ends.
    assert kinds[("CON.F.US.MNQ.Z26", True, projectx.TRADE)] > 0
    assert kinds[("CON.F.US.MNQ.Z26", True, projectx.DEPTH)] == 0
    assert market.contracts == {"MNQ": "CON.F.US.MNQ.H27", "ES": "CON.F.US.EP.H27"}
    assert market.expiring == {"MNQ": "CON.F.US.MNQ.Z26", "ES": "CON.F.US.EP.Z26"}
    # A book rebuilt from the new contract's depth starts whole: its first message resets it.
    first_depth = next(
        f for f in seen if f.symbol == "CON.F.US.MNQ.H27" and f.target == "GatewayDepth"
    )
    levels = orjson.loads(first_depth.payload.rstrip(signalr.RS))["arguments"][1]
    assert levels[0]["type"] == 6  # Reset


def test_the_gateway_answers_contract_search_with_the_front_contract_as_it_rolls():
    async def scenario():
        server, _ = simulated_gateway(
            5, ["MNQ"], rate=200, history_days=0.01, start_ns=ROLL - 1 * S
        )  # just before the roll; fmt: skip
        async with server, aiohttp.ClientSession() as http:

            async def search() -> dict[str, bool]:
                login = await http.post(f"{server.base}/api/Auth/loginKey",
                                        json={"userName": "u", "apiKey": "k"})  # fmt: skip
                token = (await login.json())["token"]
                answer = await http.post(
                    f"{server.base}/api/Contract/search",
                    json={"searchText": "MNQ", "live": False},
                    headers={"Authorization": f"Bearer {token}"},
                )
                return {c["id"]: c["activeContract"] for c in (await answer.json())["contracts"]}

            assert await search() == {"CON.F.US.MNQ.Z26": True}
            await asyncio.sleep(1.8)
            return await search()

    assert asyncio.run(scenario()) == {"CON.F.US.MNQ.Z26": False, "CON.F.US.MNQ.H27": True}


def rows(capture: Path):
    return list(read_frames(capture))


def test_a_recorder_on_a_root_moves_to_the_next_contract_at_a_session_open(tmp_path):
    # The simulated market opens 3 s before MNQ's and ES's roll; the recorder's sessions open
    # every 4 s (--roll-every, the daily roll's own code path), re-resolving each time.
    start = spec_for("MNQ").next_roll_ns(time.time_ns()) - 3 * S
    sim = harness.start_sim(rate=300, extra=["--start-at", format_iso_ns(start)])
    root = tmp_path / "tapes"
    try:
        recorder = harness.start_recorder(root / "cap", sim, "--roll-every", "4s",
                                          "--bars", "1sec")  # fmt: skip
        harness.wait_for_journal(root / "cap", recorder)
        time.sleep(10)
        code, _, err = harness.stop(recorder)
        assert code == 0, err
    finally:
        sim.stop()
    captures = sorted(root.iterdir(), key=lambda p: (len(p.name), p.name))
    assert len(captures) >= 3
    tape = [row for capture in captures for row in rows(capture)]
    rolled = [r for r in tape if r.kind == "error" and b"contract_rolled" in r.payload]
    assert sorted(orjson.loads(r.payload)["symbol"] for r in rolled) == ["ES", "MNQ"]
    mnq_row = next(r for r in rolled if orjson.loads(r.payload)["symbol"] == "MNQ")
    assert orjson.loads(mnq_row.payload) == {
        "event": "contract_rolled",
        "symbol": "MNQ",
        "from_contract": "CON.F.US.MNQ.Z26",
        "to_contract": "CON.F.US.MNQ.H27",
    }
    at = tape.index(mnq_row)
    # Nothing of the new contract before its row; the old one recorded up to it, then only
    # what was already on its way; the connection subscribed to the new one, then dropped
    # the old one (each a recorded `sent` row).
    assert not any(r.symbol == "CON.F.US.MNQ.H27" for r in tape[:at])
    assert sum(r.symbol == "CON.F.US.MNQ.Z26" for r in tape[:at]) > 50
    assert sum(r.symbol == "CON.F.US.MNQ.H27" for r in tape[at:]) > 200
    sent = [orjson.loads(r.payload.rstrip(signalr.RS)) for r in tape[at:] if r.kind == "sent"]
    moves = [(m["target"], m["arguments"]) for m in sent if "MNQ" in str(m.get("arguments"))]
    assert moves[:6] == [
        ("SubscribeContractQuotes", ["CON.F.US.MNQ.H27"]),
        ("SubscribeContractTrades", ["CON.F.US.MNQ.H27"]),
        ("SubscribeContractMarketDepth", ["CON.F.US.MNQ.H27"]),
        ("UnsubscribeContractQuotes", ["CON.F.US.MNQ.Z26"]),
        ("UnsubscribeContractTrades", ["CON.F.US.MNQ.Z26"]),
        ("UnsubscribeContractMarketDepth", ["CON.F.US.MNQ.Z26"]),
    ]
    late = [r for r in tape[at:] if r.symbol == "CON.F.US.MNQ.Z26"]
    assert len(late) < 30  # in flight when the unsubscription went out
    # The capture holding the row lists what it rolled from, and what it holds now.
    holder = next(c for c in captures if mnq_row.payload in {r.payload for r in rows(c)})
    listed = read_manifest(holder)["subscriptions"][0]["subscriptions"]
    assert {"symbol": "MNQ", "contract": "CON.F.US.MNQ.Z26",
            "rolled_to": "CON.F.US.MNQ.H27"} in listed  # fmt: skip
    assert "CON.F.US.MNQ.H27" in [e["contract"] for e in listed if "rolled_to" not in e]
    # (ES may have rolled at the next check: the gateway serves a contract once it trades.)
    last = read_manifest(captures[-1])["subscriptions"][0]["subscriptions"]
    assert [e["contract"] for e in last if "rolled_to" not in e] == [
        "CON.F.US.MNQ.H27",
        "CON.F.US.EP.H27",
    ]
    for capture in captures:  # live bars (built through the roll) equal replayed ones
        verified = CliRunner().invoke(main, ["verify", str(capture), "--speed", "50x"])
        assert verified.exit_code == 0, (capture, verified.output)

    # Replay of all the days: MNQ's ticks are the old contract's to the row, the new one's
    # after it; the row is an event; late frames of the old contract go by its dated name.
    _, events = asyncio.run(replayed(Replay(root, "max")))  # (type, instrument, time, data)
    rolls = [(e[1], e[2]) for e in events if e[0] is EventType.CONTRACT_ROLLED]
    assert rolls == [(orjson.loads(r.payload)["symbol"], r.recv_ns) for r in rolled]
    ticks = Counter(e[1] for e in events if e[0] is EventType.TRADE_TICK)
    prints = Counter()
    for index, row in enumerate(tape):
        if row.kind != "text":
            continue
        for record in signalr.split_records(row.payload):
            message = signalr.parse_record(record)
            if not isinstance(message, dict) or message.get("target") != projectx.TRADE:
                continue
            contract, items = message["arguments"][:2]
            if ".MNQ." in contract:
                late_old = index > at and contract.endswith("Z26")
                prints["MNQZ26" if late_old else "MNQ"] += len(items)
    assert ticks["MNQ"] == prints["MNQ"] and ticks["MNQZ26"] == prints["MNQZ26"]
    # By symbol, the tape runs on across the roll.
    result = CliRunner().invoke(main, ["replay", str(root), "--symbols", "MNQ", "--ticks"])
    assert result.exit_code == 0, result.output
    printed = [line.split() for line in result.stdout.splitlines() if " trade " in line]
    assert Counter(fields[1] for fields in printed) == {"MNQ": prints["MNQ"]}


async def test_a_failed_contract_check_is_a_row_and_recording_goes_on(tmp_path):
    """The gateway's REST API stops answering at a session open: one contract_check_failed
    row (retried a minute later, not every second), and the market stream records on."""
    market = await start_embedded_market(instruments=["MNQ"], rate=300)
    writer = CaptureWriter(tmp_path / "cap", source=market.source_info())
    feed = local_gateway_feed(market, ["MNQ"])
    recorder = Recorder([feed], writer=writer,
                        contract_checks=RollSchedule(every_ns=S))  # fmt: skip
    try:
        await asyncio.to_thread(writer.open)
        await recorder.prepare()
        feed.auth.api_url = f"http://127.0.0.1:{harness.free_port()}/api"  # nobody listens
        await recorder.run(3.5)
    finally:
        await market.stop()
    tape = list(read_frames(tmp_path / "cap"))
    failed = [i for i, r in enumerate(tape) if b"contract_check_failed" in r.payload]
    assert len(failed) == 1
    assert "cannot reach" in orjson.loads(tape[failed[0]].payload)["error"]
    assert sum(r.kind == "text" for r in tape[failed[0] :]) > 100  # recording went on
    assert not any(b"contract_rolled" in r.payload for r in tape)
