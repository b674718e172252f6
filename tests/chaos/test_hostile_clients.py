"""Hostile and careless clients of the gateway (``rtcap sim``, ``replay --serve``): no key, a
client that never reads, a history request for all of time, request bodies of the wrong shape.
None may get data it was not given a token for, grow the server without bound, stall the other
clients' streams, or get a 500."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

import aiohttp
import orjson
import pytest
import websockets
from chaos import harness
from gateway_client import connect, invoke, login, running_gateway


def raw_url(server, path="/ws", token=None) -> str:
    query = f"?access_token={token}" if token else ""
    return f"ws://{server.host}:{server.port}{path}{query}"


async def test_with_an_api_key_every_data_endpoint_needs_a_token():
    async with running_gateway(rate=400, api_key="K") as server:
        for path in ("/ws", "/stream"):
            with pytest.raises(websockets.InvalidStatus) as refused:
                await websockets.connect(raw_url(server, path))
            assert refused.value.response.status_code == 401
            assert b"token" in refused.value.response.body.lower()
        token = await login(server, api_key="K")
        async with websockets.connect(raw_url(server, "/ws", token)) as ws:
            frame = await asyncio.wait_for(ws.recv(), 5)
        assert "MNQ" in frame or "EP" in frame
        async with aiohttp.ClientSession() as http:
            wrong = await http.post(
                f"{server.urls['api']}/Auth/loginKey", json={"userName": "u", "apiKey": "L"}
            )
            assert wrong.status == 401


async def test_a_raw_client_that_never_reads_is_dropped_and_the_others_keep_streaming(caplog):
    caplog.set_level(logging.WARNING, "rtcap.gateway")
    limit = 256 * 1024
    async with running_gateway(rate=4000, max_pending_bytes=limit) as server:
        token = await login(server)
        reader = await connect(server, token)
        mnq = next(c for c, v in server.contracts.items() if v.symbol == "MNQ")
        await invoke(reader, "SubscribeContractTrades", mnq)
        received = []

        async def keep_reading():
            while True:
                received.append(await reader.recv())

        reading = asyncio.create_task(keep_reading())
        # A client that reads nothing: the socket's buffers fill, then the server's queue.
        silent = await websockets.connect(raw_url(server), max_queue=1, max_size=2**20)
        most_queued = 0
        deadline = time.monotonic() + 30
        while server.raw_clients and time.monotonic() < deadline:
            most_queued = max([most_queued, *(c.queue.bytes for c in server.raw_clients)])
            await asyncio.sleep(0.01)
        assert not server.raw_clients, "the client that never reads was not dropped"
        assert most_queued <= limit
        before = len(received)
        await asyncio.sleep(0.5)
        assert len(received) > before, "the reading client stopped receiving"
        assert [c.number for c in server.connections] == [1]  # the reader is still served
        reading.cancel()
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(silent.recv(), 10)
        assert closed.value.rcvd is None or closed.value.rcvd.code == 1008
    assert any("slow consumer" in r.getMessage() for r in caplog.records)


async def test_a_history_request_for_all_of_time_neither_stalls_streams_nor_runs_unbounded():
    """Against ``rtcap sim`` in its own process (5 days of history): 30-second bars from 1900
    to 9999 with a limit of 10^8 answer at most 20,000 bars, and a raw client's stream keeps
    flowing meanwhile (it went silent for the whole request, about a minute, before)."""
    sim = harness.start_sim(rate=400)
    try:
        async with aiohttp.ClientSession() as http:
            token = (
                await (
                    await http.post(
                        f"{sim.api}/Auth/loginKey", json={"userName": "u", "apiKey": "k"}
                    )
                ).json()
            )["token"]
            auth = {"Authorization": f"Bearer {token}"}
            found = await http.post(
                f"{sim.api}/Contract/search", json={"searchText": "MNQ"}, headers=auth
            )
            mnq = (await found.json())["contracts"][0]["id"]
            arrivals: list[float] = []

            async def listen(ws):
                while True:
                    await ws.recv()
                    arrivals.append(time.monotonic())

            async with websockets.connect(f"ws://127.0.0.1:{sim.port}/ws") as ws:
                listener = asyncio.create_task(listen(ws))
                await asyncio.sleep(0.5)
                body = {
                    "contractId": mnq,
                    "live": False,
                    "startTime": "1900-01-01T00:00:00Z",
                    "endTime": "9999-12-31T00:00:00Z",
                    "unit": 1,
                    "unitNumber": 30,
                    "limit": 100_000_000,
                    "includePartialBar": True,
                }
                asked = time.monotonic()
                answer = await http.post(f"{sim.api}/History/retrieveBars", json=body, headers=auth)
                bars = (await answer.json())["bars"]
                answered = time.monotonic()
                await asyncio.sleep(0.3)
                listener.cancel()
    finally:
        sim.process.terminate()
        sim.process.wait(timeout=30)
    assert 0 < len(bars) <= 20_000
    during = [t for t in arrivals if asked <= t <= answered + 0.3]
    gaps = [b - a for a, b in itertools.pairwise(during)]
    assert len(during) > 100 * (answered - asked), "the stream slowed down"
    assert max(gaps) < 1.0, (answered - asked, max(gaps))  # 0.11 s measured; before: all of it


MALFORMED_BODIES = [
    [],
    "text",
    7,
    None,
    {"userName": ["u"], "apiKey": ["x"]},
    {"userName": {"a": 1}, "apiKey": 5},
    {"contractId": {"a": 1}},
    {"contractId": ["CON.F.US.MNQ.Z26"], "unit": "x", "unitNumber": None},
    {"contractId": "CON.F.US.MNQ.Z26", "unit": 2, "startTime": 5, "endTime": []},
    {"contractId": "CON.F.US.MNQ.Z26", "unit": 1, "unitNumber": 10**12, "limit": "many"},
    {"contractId": "CON.F.US.MNQ.Z26", "unit": 2, "startTime": "not a time", "endTime": "x"},
    {"searchText": ["MNQ"], "live": "maybe"},
    {"searchText": {"$ne": 1}},
]


async def test_malformed_requests_get_a_4xx_json_answer_never_a_500():
    async with running_gateway(rate=50) as server:
        token = await login(server)
        paths = sorted(
            {
                route.path
                for route in server.rest.routes()
                if route.method == "POST" and "{" not in route.path
            }
        )
        assert "/api/History/retrieveBars" in paths and "/api/Auth/loginKey" in paths
        statuses = {}
        async with aiohttp.ClientSession() as http:
            for path in paths:
                for body in MALFORMED_BODIES:
                    for data in (orjson.dumps(body), b"{not json", b"\xff\xfe"):
                        response = await http.post(
                            f"http://{server.host}:{server.port}{path}",
                            data=data,
                            headers={
                                "Authorization": f"Bearer {token}",
                                "Content-Type": "application/json",
                            },
                        )
                        text = await response.text()
                        statuses[(path, data)] = response.status
                        assert response.status < 500, (path, data, response.status, text)
                        answer = orjson.loads(text)
                        assert isinstance(answer, dict), (path, data, text)
                        if response.status == 200:
                            assert answer.get("success") in (True, False), (path, data, text)
            for method, hub in (("POST", "/hubs/nope/negotiate"), ("GET", "/hubs/nope")):
                response = await http.request(
                    method, f"http://{server.host}:{server.port}{hub}?access_token={token}"
                )
                assert response.status == 404
                assert "no hub named" in orjson.loads(await response.text())["errorMessage"]
        assert statuses[("/api/Auth/loginKey", orjson.dumps(MALFORMED_BODIES[4]))] == 401
