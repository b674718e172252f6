"""The gateway against real clients on loopback: REST, negotiate, hubs, subscriptions."""

import asyncio
import logging
import threading

import orjson
import pytest
import websockets
from gateway_client import collect, connect, invoke, login, pushes, rest, running_gateway, ws_url

from rtcap.timeutil import parse_iso_ns


async def test_rest_login_contracts_accounts_and_validate():
    async with running_gateway() as server:
        token = await login(server)
        assert token.count(".") == 2  # JWT-shaped
        status, body = await rest(
            server, "/Contract/search", {"searchText": "mnq", "live": False}, token
        )
        assert status == 200 and body["success"] is True
        (contract,) = body["contracts"]
        assert contract["id"] == server_contract(server, "MNQ") and contract["tickSize"] == 0.25
        assert contract["symbolId"] == "F.US.MNQ"
        status, body = await rest(
            server, "/Contract/searchById", {"contractId": contract["id"]}, token
        )
        assert body["contract"]["description"] == "Micro E-mini Nasdaq-100"
        status, body = await rest(
            server, "/Contract/searchById", {"contractId": "CON.F.US.XX.Z99"}, token
        )
        assert (
            status == 200
            and body["success"] is False
            and "unknown contract" in body["errorMessage"]
        )
        _, body = await rest(server, "/Account/search", {"onlyActiveAccounts": True}, token)
        assert body["accounts"][0]["canTrade"] is True
        _, body = await rest(server, "/Auth/validate", {}, token)
        assert body["success"] and body["newToken"].count(".") == 2


def server_contract(server, symbol):
    return next(c.id for c in server.contracts.values() if c.symbol == symbol)


async def test_wrong_or_missing_token_gives_401_and_refused_upgrade(caplog):
    async with running_gateway(api_key="s3cret") as server:
        status, body = await rest(server, "/Auth/loginKey", {"userName": "u", "apiKey": "wrong"})
        assert status == 401 and body["errorMessage"] == "wrong or missing API key"
        token = await login(server, "s3cret")
        for bad in (None, "not.a.token", token[:-4] + "AAAA"):
            status, body = await rest(server, "/Contract/search", {"searchText": ""}, bad)
            assert status == 401 and body["success"] is False
        status, body = await rest(server, "/Contract/search", {}, None)
        assert "missing access token" in body["errorMessage"]
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(ws_url(server, token=token[:-4] + "AAAA"))
        assert refused.value.response.status_code == 401
        assert b"not issued by this gateway" in refused.value.response.body
    assert "s3cret" not in caplog.text and token not in caplog.text


async def test_negotiate_with_and_without_version():
    import aiohttp

    async with running_gateway() as server:
        token = await login(server)
        async with aiohttp.ClientSession() as http:
            base = server.urls["market_hub"]
            v1 = await (
                await http.post(f"{base}/negotiate?negotiateVersion=1&access_token={token}")
            ).json()
            v0 = await (await http.post(f"{base}/negotiate?access_token={token}")).json()
            refused = await http.post(f"{base}/negotiate")
        assert v1["negotiateVersion"] == 1 and v1["connectionToken"] and v1["connectionId"]
        assert v0["negotiateVersion"] == 0 and "connectionToken" not in v0
        assert v1["availableTransports"] == [
            {"transport": "WebSockets", "transferFormats": ["Text", "Binary"]}
        ]
        assert refused.status == 401


async def test_raw_client_gets_only_its_contract_and_channels_and_unsubscribe_works():
    async with running_gateway(rate=600) as server:
        token = await login(server)
        mnq, es = server_contract(server, "MNQ"), server_contract(server, "ES")
        ws = await connect(server, token, version=0)  # signalrcore speaks version 0
        await invoke(ws, "SubscribeContractTrades", mnq, invocation_id="1")
        await invoke(ws, "SubscribeContractMarketDepth", es, invocation_id="2")
        records = await collect(ws, 1.5)
        completions = [r for _, r in records if isinstance(r, dict) and r.get("type") == 3]
        assert completions == [{"type": 3, "invocationId": "1"}, {"type": 3, "invocationId": "2"}]
        got = {(r["target"], r["arguments"][0]) for r in pushes(records)}
        assert got == {("GatewayTrade", mnq), ("GatewayDepth", es)}
        await invoke(ws, "UnsubscribeContractTrades", mnq)  # no id: no answer expected
        # what was already queued for this client when the unsubscribe arrived still comes:
        # read it away before looking at what is pushed from then on
        await collect(ws, 1.0)
        after = await collect(ws, 1.0)
        assert {(r["target"], r["arguments"][0]) for r in pushes(after)} == {("GatewayDepth", es)}
        assert not [r for _, r in after if isinstance(r, dict) and r.get("type") == 3]
        await ws.close()


async def test_pysignalr_client_subscribes_to_one_contract():
    from pysignalr.client import SignalRClient

    async with running_gateway(rate=600) as server:
        token = await login(server)
        mnq = server_contract(server, "MNQ")
        client = SignalRClient(
            f"{server.urls['market_hub']}?access_token={token}", max_size=16 * 2**20
        )
        seen: dict[str, list] = {"GatewayQuote": [], "GatewayTrade": []}

        async def on_open():
            await client.send("SubscribeContractQuotes", [mnq])
            await client.send("SubscribeContractTrades", [mnq])

        client.on_open(on_open)
        for target in seen:
            client.on(target, lambda args, target=target: _append(seen[target], args))
        task = asyncio.create_task(client.run())
        try:
            for _ in range(100):
                await asyncio.sleep(0.05)
                if len(seen["GatewayQuote"]) > 3 and len(seen["GatewayTrade"]) > 3:
                    break
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert len(seen["GatewayQuote"]) > 3 and len(seen["GatewayTrade"]) > 3
        assert {args[0] for args in seen["GatewayQuote"] + seen["GatewayTrade"]} == {mnq}
        assert all(args[1]["symbol"] == "F.US.MNQ" for args in seen["GatewayQuote"])


async def _append(bucket, args):
    bucket.append(args)


async def test_signalrcore_client_subscribes_to_one_contract():
    from signalrcore.hub_connection_builder import HubConnectionBuilder

    async with running_gateway(rate=600) as server:
        token = await login(server)
        es = server_contract(server, "ES")
        received, opened = [], threading.Event()
        hub = (
            HubConnectionBuilder()
            .with_url(f"{server.urls['market_hub']}?access_token={token}")
            .build()
        )
        hub.on_open(opened.set)
        hub.on("GatewayTrade", received.append)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, hub.start)
        try:
            assert await loop.run_in_executor(None, opened.wait, 10)
            hub.send("SubscribeContractTrades", [es])
            for _ in range(100):
                await asyncio.sleep(0.05)
                if len(received) > 5:
                    break
        finally:
            await loop.run_in_executor(None, hub.stop)
        assert len(received) > 5
        assert {args[0] for args in received} == {es}
        assert all(trade["symbolId"] == "F.US.EP" for args in received for trade in args[1])


async def test_bad_client_input_closes_only_that_connection_and_logs_one_line(caplog):
    caplog.set_level(logging.WARNING, "rtcap.gateway")
    async with running_gateway(rate=600) as server:
        token = await login(server)
        mnq = server_contract(server, "MNQ")
        good = await connect(server, token)
        await invoke(good, "SubscribeContractTrades", mnq)

        bad_handshake = await websockets.connect(ws_url(server, token=token))
        await bad_handshake.send('{"protocol":"messagepack","version":1}\x1e')
        assert orjson.loads((await bad_handshake.recv())[:-1]) == {
            "error": "Requested protocol 'messagepack' is not available."
        }
        await bad_handshake.wait_closed()

        unknown = await connect(server, token)
        await invoke(unknown, "SubscribeEverything", "x", invocation_id="9")
        (_, answer), *_ = await collect(unknown, 0.5)
        assert answer == {
            "type": 3,
            "invocationId": "9",
            "error": "Unknown hub method 'SubscribeEverything'",
        }

        broken = await connect(server, token)
        await broken.send('{"type":1,"target":\x1e')
        closing = orjson.loads((await broken.recv())[:-1])
        assert closing["type"] == 7 and "invalid JSON" in closing["error"]
        await broken.wait_closed()

        trades = pushes(await collect(good, 1.0), "GatewayTrade")
        assert trades and {t["arguments"][0] for t in trades} == {mnq}  # still served
        await good.close()
        await unknown.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "rtcap.gateway"]
    assert sum("messagepack" in line for line in lines) == 1
    assert sum("SubscribeEverything" in line for line in lines) == 1
    assert sum("invalid JSON" in line for line in lines) == 1


async def test_keepalive_pings_and_user_hub_account_push():
    async with running_gateway(keepalive_s=0.2) as server:
        token = await login(server)
        user = await connect(server, token, hub="user")
        await invoke(user, "SubscribeAccounts", invocation_id="a")
        records = [r for _, r in await collect(user, 0.7)]
        assert {"type": 3, "invocationId": "a"} in records
        assert records.count({"type": 6}) >= 2
        (account,) = [r for r in records if r.get("target") == "GatewayUserAccount"]
        assert account["arguments"][0]["data"]["name"] == "RTCAP-SIM-1"
        await user.close()


async def test_history_bars_are_seeded_and_continuous_with_the_live_stream():
    async with running_gateway(rate=600, days=2) as server:
        token = await login(server)
        mnq = server_contract(server, "MNQ")
        await asyncio.sleep(1.2)
        request = {
            "contractId": mnq,
            "live": False,
            "startTime": "2000-01-01T00:00:00Z",
            "endTime": "2100-01-01T00:00:00Z",
            "unit": 2,
            "unitNumber": 1,
            "limit": 20000,
            "includePartialBar": True,
        }
        status, body = await rest(server, "/History/retrieveBars", request, token)
        bars = body["bars"]
        assert status == 200 and body["success"] and len(bars) > 1000
        stamps = [parse_iso_ns(b["t"]) for b in bars]
        assert stamps == sorted(stamps, reverse=True)  # newest first
        assert set(bars[0]) == {"t", "o", "h", "l", "c", "v"}
        feed_start = server.source.start_ns
        live_first = bars[0]  # the minute holding the live start also holds live prints
        history = server.history["MNQ"].minute_bars()
        assert history[-1].end_ns <= feed_start and history[
            -1
        ].close == server.source.market.start_price("MNQ")
        assert parse_iso_ns(live_first["t"]) >= history[-1].start_ns
        hourly = {**request, "unit": 3, "unitNumber": 4, "limit": 3}
        _, body = await rest(server, "/History/retrieveBars", hourly, token)
        assert len(body["bars"]) == 3
        assert {parse_iso_ns(b["t"]) % (3600 * 10**9) for b in body["bars"]} == {0}
        _, body = await rest(server, "/History/retrieveBars", {**request, "unit": 9}, token)
        assert body["success"] is False and "unit 9" in body["errorMessage"]
        status, body = await rest(
            server, "/History/retrieveBars", {**request, "contractId": "X"}, token
        )
        assert body["success"] is False


async def test_rest_surface_the_projectx_sdk_touches_answers_like_the_real_api(caplog):
    caplog.set_level(logging.WARNING, "rtcap.gateway")
    async with running_gateway() as server:
        token = await login(server)
        account = {"accountId": 1}
        for path, field in (
            ("/Position/searchOpen", "positions"),
            ("/Order/searchOpen", "orders"),
            ("/Order/search", "orders"),
            ("/Trade/search", "trades"),
        ):
            status, body = await rest(server, path, account, token)
            assert (status, body) == (
                200,
                {field: [], "success": True, "errorCode": 0, "errorMessage": None},
            ), path
        status, body = await rest(server, "/Contract/available", {"live": False}, token)
        assert status == 200 and {c["name"][:3] for c in body["contracts"]} >= {"MNQ"}
        status, body = await rest(server, "/Order/place", {**account, "size": 1}, token)
        assert (
            status == 200
            and body["success"] is False
            and "executes no orders" in (body["errorMessage"])
        )
        status, body = await rest(server, "/Position/searchOpen", account)  # no token
        assert status == 401 and body["success"] is False
        status, body = await rest(server, "/Nothing/here", {}, token)
        assert status == 404 and body == {
            "success": False,
            "errorCode": 404,
            "errorMessage": "unknown endpoint POST /api/Nothing/here",
        }
        import aiohttp

        async with aiohttp.ClientSession() as http:
            response = await http.get(f"{server.urls['api']}/Status/ping")
            assert await response.json() == "pong"
    lines = [r.getMessage() for r in caplog.records if r.name == "rtcap.gateway"]
    assert [line for line in lines if "unknown REST endpoint" in line] == [
        "unknown REST endpoint POST /api/Nothing/here"
    ]


async def test_sdk_heartbeat_is_accepted_quietly_on_both_hubs(caplog):
    caplog.set_level(logging.DEBUG, "rtcap.gateway")
    async with running_gateway(rate=300) as server:
        token = await login(server)
        mnq = server_contract(server, "MNQ")
        market = await connect(server, token)
        user = await connect(server, token, hub="user")
        for ws in (market, user):
            await invoke(ws, "Heartbeat")  # as the SDK sends it: no invocation id
        await invoke(market, "SubscribeContractTrades", mnq, invocation_id="s")
        records = [r for _, r in await collect(market, 0.8)]
        assert [r for r in records if r.get("type") in (3, 7)] == [{"type": 3, "invocationId": "s"}]
        assert pushes(await collect(market, 0.5), "GatewayTrade")  # still served
        assert not [r for _, r in await collect(user, 0.3) if r.get("type") == 7]
        await market.close()
        await user.close()
    assert not [r for r in caplog.records if "Heartbeat" in r.getMessage()]


def fold(bars):
    return (
        bars[0]["o"],
        max(b["h"] for b in bars),
        min(b["l"] for b in bars),
        bars[-1]["c"],
        sum(b["v"] for b in bars),
    )


async def test_history_exists_at_every_unit_and_every_resolution_folds_into_the_next():
    async with running_gateway(rate=0.05, days=3) as server:  # quiet: folds compare exactly
        token = await login(server)
        mnq = server_contract(server, "MNQ")
        await asyncio.sleep(1.5)
        now = server.source.start_ns + 2 * 10**9
        day_ago = now - 86_400 * 10**9

        async def bars(unit, number, start=day_ago, end=now, partial=False):
            request = {
                "contractId": mnq,
                "live": False,
                "startTime": _iso(start),
                "endTime": _iso(end),
                "unit": unit,
                "unitNumber": number,
                "limit": 20_000,
                "includePartialBar": partial,
            }
            status, body = await rest(server, "/History/retrieveBars", request, token)
            assert status == 200 and body["success"], body
            return sorted(body["bars"], key=lambda b: b["t"])

        seconds15, minutes, minutes5 = await bars(1, 15), await bars(2, 1), await bars(2, 5)
        assert len(minutes) >= 1000 and len(seconds15) > 2 * len(minutes)  # 1 day of each
        by_start = {parse_iso_ns(b["t"]): b for b in minutes}
        for bar in minutes5[:50]:
            start = parse_iso_ns(bar["t"])
            inside = [by_start[t] for t in sorted(by_start) if start <= t < start + 300 * 10**9]
            assert fold([bar]) == fold(inside)  # 5 minutes = the fold of their minutes
        # A whole hour of history at 1 second: each minute is the fold of its seconds.
        hour_start = parse_iso_ns(minutes[len(minutes) // 2]["t"])
        seconds = await bars(1, 1, hour_start, hour_start + 3600 * 10**9)
        assert seconds and all(b["v"] >= 1 for b in seconds)
        for minute in (
            b for b in minutes if hour_start <= parse_iso_ns(b["t"]) < hour_start + 3600 * 10**9
        ):
            start = parse_iso_ns(minute["t"])
            inside = [b for b in seconds if start <= parse_iso_ns(b["t"]) < start + 60 * 10**9]
            assert fold([minute]) == pytest.approx(fold(inside)), minute["t"]
        again = await bars(1, 1, hour_start + 600 * 10**9, hour_start + 1200 * 10**9)
        assert again == [b for b in seconds if b in again] and len(again) > 100  # any window agrees
        # The last second of history closes where the live walk starts.
        history_end = server.history["MNQ"].minute_bars()[-1].end_ns
        latest = await bars(1, 1, history_end - 600 * 10**9, history_end)
        assert latest[-1]["c"] == server.source.market.start_price("MNQ")
        week = now - 7 * 86_400 * 10**9
        hours, days = await bars(3, 1), await bars(4, 1, week, partial=True)
        weeks = await bars(5, 1, now - 30 * 86_400 * 10**9, partial=True)  # still forming
        months = await bars(6, 1, now - 90 * 86_400 * 10**9, partial=True)
        assert hours and days and weeks and months
        assert sum(b["v"] for b in weeks) == pytest.approx(sum(b["v"] for b in days))
        assert sum(b["v"] for b in months) == pytest.approx(sum(b["v"] for b in days))


def test_second_history_is_the_same_from_the_same_seed_whatever_the_window():
    from rtcap.gateway.history import SyntheticHistory
    from rtcap.instruments import spec_for

    end = 1_764_000_000 * 10**9
    one = SyntheticHistory(7, spec_for("MNQ"), end, 21000.0, 1)
    two = SyntheticHistory(7, spec_for("MNQ"), end, 21000.0, 1)
    other = SyntheticHistory(8, spec_for("MNQ"), end, 21000.0, 1)
    window = (end - 7200 * 10**9, end - 3600 * 10**9)
    assert one.second_bars(*window) == two.second_bars(*window)
    assert one.second_bars(*window) != other.second_bars(*window)
    part = one.second_bars(window[0] + 600 * 10**9, window[0] + 660 * 10**9)
    assert part and all(bar in one.second_bars(*window) for bar in part)


def _iso(ns):
    from rtcap.timeutil import format_iso_ns

    return format_iso_ns(ns)


@pytest.mark.parametrize("weekday", range(7))
def test_history_ends_where_the_live_walk_begins_on_every_day_of_the_week(weekday):
    """At 19:05 Chicago time on each day of a week (Saturday's and Sunday-before-the-open
    included), the seeded minutes run up to the live start; earlier closed hours stay empty."""
    from datetime import datetime, timedelta

    from rtcap.gateway.history import SyntheticHistory, cme_open
    from rtcap.instruments import spec_for
    from rtcap.timeutil import zone

    chicago = zone("America/Chicago")
    monday = datetime(2026, 11, 30, 19, 5, tzinfo=chicago)  # 2026-11-30 is a Monday
    moment = monday + timedelta(days=weekday)
    end = int(moment.timestamp()) * 10**9
    bars = SyntheticHistory(7, spec_for("MNQ"), end, 21000.0, 3).minute_bars()
    assert bars[-1].end_ns == end and bars[-1].close == 21000.0
    starts = [b.start_ns for b in bars]
    tail = []  # the stretch back to the latest open minute, every minute present
    for start in reversed(starts):
        if tail and tail[-1] - start != 60 * 10**9:
            break
        tail.append(start)
        if cme_open(datetime.fromtimestamp(start // 10**9, chicago)):
            break
    assert tail[0] == end - 60 * 10**9
    earlier = [s for s in starts if s < tail[-1]]
    assert earlier and all(cme_open(datetime.fromtimestamp(s // 10**9, chicago)) for s in earlier)
