"""Recording Binance diff depth: the recorder fetches a REST snapshot after connecting and after
every break in the update ids, records it byte for byte, and a replay rebuilds a book that is
valid again after the break and agrees with every later bookTicker.

The exchange is a real websocket + HTTP server on loopback (one port, as rtcap derives the
REST address from the websocket one for non-Binance hosts)."""

import asyncio
import http
import random

import orjson
from click.testing import CliRunner
from websockets.asyncio.server import serve

from rtcap.cli import main
from rtcap.events import EventType
from rtcap.pipeline import Pipeline
from rtcap.storage.integrity import open_capture, read_frames

SYMBOL = "ETHUSDT"


class FakeExchange:
    """A spot book with update ids; streams diffs and bookTickers, drops one diff on the wire,
    answers ``GET /api/v3/depth`` with the current book."""

    def __init__(self, diffs: int, drop_at: int) -> None:
        self.rng = random.Random(5)
        self.bids = {100.0 - i: 1.0 + i for i in range(1, 6)}
        self.asks = {100.0 + i: 1.0 + i for i in range(0, 5)}
        self.last_id = 1000
        self.diffs, self.drop_at = diffs, drop_at
        self.snapshots_served = 0

    def snapshot(self) -> bytes:
        self.snapshots_served += 1
        return orjson.dumps(
            {
                "lastUpdateId": self.last_id,
                "bids": [[str(p), str(s)] for p, s in sorted(self.bids.items(), reverse=True)],
                "asks": [[str(p), str(s)] for p, s in sorted(self.asks.items())],
            }
        )

    def step(self) -> tuple[dict, dict]:
        """Change the book; the diff and the bookTicker that follows it."""
        first = self.last_id + 1
        changes = {"b": [], "a": []}
        for _ in range(self.rng.randint(1, 3)):
            best_bid, best_ask = max(self.bids), min(self.asks)
            if self.rng.random() < 0.5:
                price = best_bid - self.rng.randint(0, 3)
                size = (
                    0.0 if price != best_bid and self.rng.random() < 0.3 else self.rng.randint(1, 9)
                )
                side, key = self.bids, "b"
            else:
                price = best_ask + self.rng.randint(0, 3)
                size = (
                    0.0 if price != best_ask and self.rng.random() < 0.3 else self.rng.randint(1, 9)
                )
                side, key = self.asks, "a"
            if size:
                side[price] = float(size)
            else:
                side.pop(price, None)
            changes[key].append([str(price), str(float(size))])
        self.last_id += 2
        diff = {"e": "depthUpdate", "E": 1, "s": SYMBOL, "U": first, "u": self.last_id, **changes}
        bid, ask = max(self.bids), min(self.asks)
        ticker = {
            "u": self.last_id,
            "s": SYMBOL,
            "b": str(bid),
            "B": str(self.bids[bid]),
            "a": str(ask),
            "A": str(self.asks[ask]),
        }
        return diff, ticker

    async def websocket(self, ws) -> None:
        for index in range(self.diffs):
            diff, ticker = self.step()
            if index != self.drop_at:  # the dropped diff still changed the exchange's book
                await ws.send(
                    orjson.dumps({"stream": "ethusdt@depth@100ms", "data": diff}).decode()
                )
            await ws.send(orjson.dumps({"stream": "ethusdt@bookTicker", "data": ticker}).decode())
            await asyncio.sleep(0.004)
        await asyncio.sleep(30)

    def http(self, connection, request):
        if request.path.startswith("/api/v3/depth"):
            assert f"symbol={SYMBOL}" in request.path
            response = connection.respond(http.HTTPStatus.OK, "")
            response.body = self.snapshot()
            del response.headers["Content-Type"], response.headers["Content-Length"]
            response.headers["Content-Type"] = "application/json"
            response.headers["Content-Length"] = str(len(response.body))
            return response
        return None  # a websocket upgrade


def test_recorder_fetches_snapshots_after_connect_and_after_a_break(tmp_path):
    exchange = FakeExchange(diffs=400, drop_at=150)

    async def scenario():
        async with serve(exchange.websocket, "127.0.0.1", 0, process_request=exchange.http) as srv:
            port = srv.sockets[0].getsockname()[1]
            return await asyncio.to_thread(
                CliRunner().invoke,
                main,
                [
                    "record",
                    str(tmp_path / "cap"),
                    "--source",
                    "binance",
                    "--symbols",
                    "ethusdt",
                    "--streams",
                    "depth@100ms,bookTicker",
                    "--binance-url",
                    f"ws://127.0.0.1:{port}",
                    "--snapshot-interval",
                    "0.2s",
                    "--max-frames",
                    "790",  # 399 diffs + 400 tickers arrive; the REST answers count too
                    "--quiet",
                ],
            )

    result = asyncio.run(scenario())
    assert result.exit_code == 0, result.output
    manifest = open_capture(tmp_path / "cap")
    assert manifest["source"]["depth_snapshots"]["path"] == "/api/v3/depth"
    frames = list(read_frames(tmp_path / "cap"))
    snapshots = [f for f in frames if f.target == "depthSnapshot"]
    assert len(snapshots) == exchange.snapshots_served == 2  # after connect, after the break
    assert all(f.symbol == SYMBOL and f.kind == "text" for f in snapshots)
    gaps = [orjson.loads(f.payload) for f in frames if f.kind == "gap"]
    book_gaps = [g for g in gaps if g["kind"] == "book"]
    assert len(book_gaps) == 1 and book_gaps[0]["missing"] == 2  # one diff of two ids
    assert not [f for f in frames if f.kind == "error" and b"snapshot_failed" in f.payload]

    # Replay: the book breaks at the dropped diff, is valid again from the second snapshot, and
    # from then on every bookTicker agrees with the book after the diff of the same id.
    pipeline = Pipeline(None, ["1min"], codec="auto", books=True)
    tickers, tops, valid_after = {}, {}, []
    for frame in frames:
        body = orjson.loads(frame.payload) if frame.kind == "text" else None
        if body and body.get("stream") == "ethusdt@bookTicker":
            data = body["data"]
            tickers[data["u"]] = (
                float(data["b"]),
                float(data["B"]),
                float(data["a"]),
                float(data["A"]),
            )
        for event in pipeline.feed(frame):
            if event.type is EventType.ORDERBOOK_UPDATE:
                d = event.data
                valid_after.append(d["valid"])
                if d["valid"] and not d["crossed"]:
                    tops[d["update_id"]] = (
                        d["best_bid"],
                        d["best_bid_size"],
                        d["best_ask"],
                        d["best_ask_size"],
                    )
    state = pipeline.instrument(SYMBOL)
    assert state.book.valid and state.book_gaps == 1
    assert False in valid_after and valid_after[-1] is True
    pairs = sorted(set(tops) & set(tickers))
    assert len(pairs) > 300
    assert [u for u in pairs if tops[u] != tickers[u]] == []
