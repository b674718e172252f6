"""Test helpers: start a gateway on loopback and talk to it as a raw websockets client."""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp
import orjson
import websockets

from rtcap.codecs import signalr
from rtcap.gateway.faults import FaultPlan
from rtcap.gateway.server import GatewayServer, simulated_history
from rtcap.gateway.simfeed import SimulatedFeed
from rtcap.gateway.tokens import TokenIssuer


@contextlib.asynccontextmanager
async def running_gateway(
    rate=400.0, faults=None, api_key=None, keepalive_s=15.0, days=1.0, **server_options
):
    feed = SimulatedFeed(7, ["MNQ", "ES"], rate, faults=faults or FaultPlan())
    server = GatewayServer(
        feed,
        feed.contracts,
        faults=faults,
        tokens=TokenIssuer(api_key),
        keepalive_s=keepalive_s,
        history=simulated_history(feed.market, days, feed.start_ns, 7),
        **server_options,
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def login(server, api_key="any-key") -> str:
    async with aiohttp.ClientSession() as http:
        response = await http.post(
            f"{server.urls['api']}/Auth/loginKey", json={"userName": "tester", "apiKey": api_key}
        )
        assert response.status == 200, await response.text()
        return (await response.json())["token"]


async def rest(server, path, body, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http:
        response = await http.post(f"{server.urls['api']}{path}", json=body, headers=headers)
        return response.status, await response.json(content_type=None)


def ws_url(server, hub="market", token=None) -> str:
    url = server.urls[f"{hub}_hub"].replace("http://", "ws://")
    return f"{url}?access_token={token}" if token else url


async def connect(server, token, hub="market", version=1, max_size=16 * 1024 * 1024):
    ws = await websockets.connect(ws_url(server, hub, token), max_size=max_size, compression=None)
    await ws.send(orjson.dumps({"protocol": "json", "version": version}).decode() + "\x1e")
    assert await ws.recv() == "{}\x1e"
    return ws


async def invoke(ws, target, *arguments, invocation_id=None):
    message = signalr.invocation(target, list(arguments), invocation_id)
    await ws.send(signalr.encode(message).decode())


async def collect(ws, seconds):
    """Records received within ``seconds`` (dicts, or BadRecord), with arrival times."""
    out = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            data = await asyncio.wait_for(ws.recv(), left)
        except (TimeoutError, websockets.ConnectionClosed):
            break
        now = time.monotonic()
        out.extend((now, record) for record in signalr.parse_frame(data))
    return out


def pushes(records, target=None):
    return [
        r
        for _, r in records
        if isinstance(r, dict) and r.get("type") == 1 and (target is None or r["target"] == target)
    ]
