"""Every fault-injection mode, as a client on loopback observes it."""

import asyncio
import itertools
import statistics
import time

import orjson
import pytest
import websockets
from gateway_client import collect, connect, invoke, login, pushes, running_gateway

from rtcap.codecs.signalr import BadRecord
from rtcap.gateway.faults import FaultPlan


async def subscribed(server, channels=("Trades", "Quotes"), **options):
    token = await login(server)
    ws = await connect(server, token, **options)
    for contract in server.contracts:
        for channel in channels:
            await invoke(ws, f"SubscribeContract{channel}", contract)
    return ws


async def test_drop_aborts_every_connection_without_a_close_frame():
    async with running_gateway(rate=400, faults=FaultPlan(drop_after_s=0.8)) as server:
        for _ in range(2):  # a reconnecting client is dropped again
            ws = await subscribed(server)
            opened = time.monotonic()
            records = await collect(ws, 5)
            lifetime = time.monotonic() - opened
            assert pushes(records) and 0.6 < lifetime < 3.0
            assert ws.close_code == 1006 and ws.protocol.close_rcvd is None  # no close frame


async def test_stall_keeps_the_socket_open_but_sends_nothing_then_resumes():
    faults = FaultPlan(stall_after_s=0.6, stall_for_s=1.2)
    async with running_gateway(rate=400, faults=faults, keepalive_s=0.1) as server:
        ws = await subscribed(server)
        records = await collect(ws, 3.0)
        times = [t for t, _ in records]
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert max(gaps) > 0.9  # silent, pings included
        assert sum(t > times[0] + 2.0 for t in times) > 10  # and talking again afterwards
        assert ws.close_code is None
        await ws.close()


async def test_malformed_records_follow_every_nth_record():
    async with running_gateway(rate=600, faults=FaultPlan(malformed_every=10)) as server:
        ws = await subscribed(server)
        records = [r for _, r in await collect(ws, 1.5)]
        good = pushes([(0, r) for r in records])
        bad = [r for r in records if isinstance(r, BadRecord)]
        assert len(good) >= 50
        assert len(bad) == len(good) // 10
        await ws.close()


async def test_oversized_frame_breaks_small_buffers_and_reaches_big_ones():
    faults = FaultPlan(oversized_after_s=0.3, oversized_bytes=2 * 1024 * 1024)
    async with running_gateway(rate=100, faults=faults) as server:
        small = await subscribed(server, ("MarketDepth",), max_size=1024 * 1024)
        with pytest.raises(websockets.ConnectionClosedError) as closed:
            for _ in range(1000):
                await asyncio.wait_for(small.recv(), 3)
        assert closed.value.sent.code == 1009  # message too big
        big = await subscribed(server, ("MarketDepth",))
        sizes = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not any(s > 2 * 1024 * 1024 for s in sizes):
            frame = await asyncio.wait_for(big.recv(), 3)
            sizes.append(len(frame))
            if len(frame) > 2 * 1024 * 1024:
                record = orjson.loads(frame.split("\x1e")[0])
                assert record["target"] == "GatewayDepth" and len(record["arguments"][1]) > 10_000
        assert max(sizes) > 2 * 1024 * 1024
        await big.close()


async def test_error_close_sends_a_signalr_close_with_error():
    async with running_gateway(rate=200, faults=FaultPlan(error_close_after_s=0.5)) as server:
        ws = await subscribed(server)
        records = [r for _, r in await collect(ws, 3)]
        closes = [r for r in records if isinstance(r, dict) and r.get("type") == 7]
        assert closes == [
            {"type": 7, "error": "Simulated server error (fault injection)", "allowReconnect": True}
        ]
        assert records[-1] == closes[0]  # nothing after the close
        assert ws.close_code == 1000


async def test_bursts_raise_the_message_rate_periodically():
    faults = FaultPlan(burst_rate=4000, burst_every_s=1.0, burst_for_s=0.3)
    async with running_gateway(rate=100, faults=faults) as server:
        ws = await subscribed(server)
        records = await collect(ws, 3.0)
        start = records[0][0]
        slots = [0] * 30
        for at, record in records:
            if isinstance(record, dict) and record.get("type") == 1:
                slots[min(29, int((at - start) * 10))] += 1
        busiest = sorted(slots, reverse=True)
        assert statistics.mean(busiest[:3]) > 8 * max(1.0, statistics.median(slots))
        await ws.close()


def test_fault_plan_rejects_nonsense():
    with pytest.raises(ValueError, match="malformed_every"):
        FaultPlan(malformed_every=0)
    with pytest.raises(ValueError, match="drop_after_s"):
        FaultPlan(drop_after_s=-1)
    assert not FaultPlan().any and FaultPlan(drop_after_s=1).any
