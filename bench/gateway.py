"""Gateway throughput: messages/s that ``rtcap sim`` delivers to one subscribed client.

The gateway runs as its own process (``python -m rtcap sim``), the client here counts SignalR
records for every contract and channel. The baseline, measured in the same run, is a bare
``websockets`` echo server in its own process: the client pipelines the same simulator records
through it, one per frame, and counts the echoes.

    python bench/gateway.py [--seconds 5] [--rate 60000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import subprocess
import sys
import time
import urllib.request

import websockets

from rtcap.simulator import MarketSimulator

ECHO_SERVER = """
import asyncio, websockets
async def echo(ws):
    async for message in ws:
        await ws.send(message)
async def main():
    async with websockets.serve(echo, "127.0.0.1", 0, compression=None, max_size=None) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()
asyncio.run(main())
"""


def start(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


async def gateway_rate(seconds: float, rate: float) -> tuple[float, int]:
    process = start(
        [
            sys.executable,
            "-m",
            "rtcap",
            "sim",
            "--port",
            "0",
            "--rate",
            str(rate),
            "--history-days",
            "0",
        ]
    )
    try:
        banner = "".join(process.stdout.readline() for _ in range(7))
        api = re.search(r"REST base\s+(\S+)", banner).group(1)
        hub = re.search(r"market hub\s+(\S+)", banner).group(1)
        contracts = re.findall(r"=(CON\.\S+)", banner)
        request = urllib.request.Request(
            f"{api}/Auth/loginKey",
            data=json.dumps({"userName": "b", "apiKey": "b"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        token = json.loads(urllib.request.urlopen(request).read())["token"]
        url = hub.replace("http", "ws") + "?access_token=" + token
        async with websockets.connect(url, compression=None, max_size=None) as ws:
            await ws.send('{"protocol":"json","version":1}\x1e')
            await ws.recv()
            for contract in contracts:
                for method in ("Quotes", "Trades", "MarketDepth"):
                    await ws.send(
                        json.dumps(
                            {
                                "type": 1,
                                "target": f"SubscribeContract{method}",
                                "arguments": [contract],
                            }
                        )
                        + "\x1e"
                    )
            warm_until = time.monotonic() + 1.0
            while time.monotonic() < warm_until:
                await ws.recv()
            records, started = 0, time.monotonic()
            while (elapsed := time.monotonic() - started) < seconds:
                records += (await ws.recv()).count("\x1e")
        return records / elapsed, records
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)


async def echo_rate(seconds: float, payloads: list[str]) -> tuple[float, int]:
    process = start([sys.executable, "-c", ECHO_SERVER])
    try:
        port = int(process.stdout.readline())
        async with websockets.connect(
            f"ws://127.0.0.1:{port}", compression=None, max_size=None
        ) as ws:
            done = asyncio.Event()

            async def send() -> None:
                index = 0
                while not done.is_set():
                    await ws.send(payloads[index % len(payloads)])
                    index += 1

            sender = asyncio.create_task(send())
            received, started = 0, time.monotonic()
            while (elapsed := time.monotonic() - started) < seconds:
                await ws.recv()
                received += 1
            done.set()
            sender.cancel()
        return received / elapsed, received
    finally:
        process.terminate()
        process.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=60_000.0)
    args = parser.parse_args()
    frames = MarketSimulator(3, ["MNQ", "ES"]).frames(max_frames=5000)
    payloads = [frame.payload.decode() for frame in frames]
    baseline, echoed = asyncio.run(echo_rate(args.seconds, payloads))
    served, records = asyncio.run(gateway_rate(args.seconds, args.rate))
    print(f"bare websockets echo : {baseline:10,.0f} messages/s ({echoed:,} in {args.seconds:g}s)")
    print(
        f"rtcap sim gateway    : {served:10,.0f} messages/s ({records:,} records, "
        f"feed asked for {args.rate:,.0f}/s)"
    )
    print(f"ratio gateway/echo   : {served / baseline:.2f}")
    verdict = "meets" if served >= 20_000 else "below"
    print(f"target >= 20,000 messages/s to one client: {verdict}")


if __name__ == "__main__":
    main()
