"""One SignalR hub connection as a sans-I/O state machine (handshake, records, subscriptions).

Feed it the text the client sent with :meth:`HubSession.receive`; it returns what to send back
and whether to close, and keeps the connection's subscriptions. The websocket handler around it
only moves bytes. Malformed input never raises: an unknown method gets a Completion error, and a
bad handshake or invalid JSON gets a Close record before the connection is closed (as ASP.NET
SignalR does).
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import orjson

from rtcap.codecs import projectx, signalr

USER_METHODS = frozenset(
    {
        "SubscribeAccounts",
        "UnsubscribeAccounts",
        "SubscribeOrders",
        "UnsubscribeOrders",
        "SubscribePositions",
        "UnsubscribePositions",
        "SubscribeTrades",
        "UnsubscribeTrades",
    }
)


# Invoked by the ProjectX SDK (4.x) every few seconds, without an invocation id.
KEEPALIVE_METHODS = frozenset({"Heartbeat"})


class HubState(Enum):
    AWAITING_HANDSHAKE = "awaiting handshake"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(slots=True)
class Reply:
    """What the handler must do after :meth:`HubSession.receive`."""

    send: list[bytes] = field(default_factory=list)
    close: bool = False
    problem: str | None = None  # one line for the server log when the client misbehaved
    subscribed_accounts: bool = False


class HubSession:
    """State of one client connection to ``market`` or ``user`` hub."""

    def __init__(self, hub: str, known_contracts: Container[str] | None = None) -> None:
        self.hub = hub
        self.state = HubState.AWAITING_HANDSHAKE
        self.protocol_version: int | None = None
        self.known_contracts = known_contracts
        # (channel, contract id) pairs this connection wants: quotes/trades/depth.
        self.subscriptions: set[tuple[str, str]] = set()
        self.user_channels: set[str] = set()

    def wants(self, channel: str, contract_id: str) -> bool:
        return (channel, contract_id) in self.subscriptions

    def receive(self, data: str | bytes) -> Reply:
        """Process one websocket message from the client."""
        reply = Reply()
        if self.state is HubState.CLOSED:
            return reply
        raw = data.encode() if isinstance(data, str) else data
        records = raw.split(signalr.RS)
        if records[-1].strip():
            # ASP.NET buffers a record until its separator; a frame ending mid-record is
            # treated as malformed here, since clients always send whole records.
            return self._fail(reply, "record without its 0x1E terminator")
        for record in records[:-1]:
            if self.state is HubState.CLOSED:
                break
            if not record.strip():
                continue
            try:
                message = orjson.loads(record)
            except orjson.JSONDecodeError as exc:
                return self._fail(reply, f"invalid JSON from client: {exc}")
            if not isinstance(message, dict):
                return self._fail(reply, "client record is not a JSON object")
            if self.state is HubState.AWAITING_HANDSHAKE:
                self._handshake(message, reply)
            else:
                self._message(message, reply)
        return reply

    def _fail(self, reply: Reply, reason: str) -> Reply:
        reply.send.append(signalr.close(f"Connection closed with an error. {reason}", False))
        reply.close = True
        reply.problem = reason
        self.state = HubState.CLOSED
        return reply

    def _handshake(self, message: dict[str, Any], reply: Reply) -> None:
        protocol, version = message.get("protocol"), message.get("version")
        if protocol != "json":
            error = f"Requested protocol '{protocol}' is not available."
            reply.send.append(signalr.encode({"error": error}))
            reply.close, reply.problem = True, f"bad handshake: {error}"
            self.state = HubState.CLOSED
            return
        if not isinstance(version, int) or version > 1 or version < 0:
            error = f"The server does not support version {version} of the 'json' protocol."
            reply.send.append(signalr.encode({"error": error}))
            reply.close, reply.problem = True, f"bad handshake: {error}"
            self.state = HubState.CLOSED
            return
        self.protocol_version = version
        self.state = HubState.OPEN
        reply.send.append(signalr.HANDSHAKE_RESPONSE)

    def _message(self, message: dict[str, Any], reply: Reply) -> None:
        kind = message.get("type")
        if kind == signalr.PING:
            return
        if kind == signalr.CLOSE:
            reply.close = True
            self.state = HubState.CLOSED
            return
        if kind == signalr.INVOCATION:
            self._invocation(message, reply)
            return
        if kind in (signalr.STREAM_INVOCATION, signalr.CANCEL_INVOCATION):
            invocation_id = message.get("invocationId")
            if invocation_id is not None:
                error = "Streaming is not supported."
                reply.send.append(signalr.completion(str(invocation_id), error=error))
            return
        self._fail(reply, f"unsupported message type {kind!r}")

    def _invocation(self, message: dict[str, Any], reply: Reply) -> None:
        target = message.get("target")
        arguments = message.get("arguments")
        invocation_id = message.get("invocationId")
        if not isinstance(target, str) or not isinstance(arguments, list):
            self._answer(reply, invocation_id, "Invocation needs a 'target' and 'arguments'.")
            return
        error = None
        if target in KEEPALIVE_METHODS:
            pass  # the SDK's liveness call: accepted quietly, nothing to do
        elif self.hub == "market":
            parsed = projectx.parse_subscription(target, arguments)
            if parsed is None:
                error = f"Unknown hub method '{target}'"
            else:
                action, channel, contracts = parsed
                if not contracts:
                    error = f"{target} needs a contract id argument"
                for contract in contracts:
                    if self.known_contracts is not None and contract not in self.known_contracts:
                        error = f"Unknown contract '{contract}'"
                        continue
                    if action == "subscribe":
                        self.subscriptions.add((channel, contract))
                    else:
                        self.subscriptions.discard((channel, contract))
        elif target in USER_METHODS:
            channel = target.removeprefix("Subscribe").removeprefix("Unsubscribe")
            if target.startswith("Subscribe"):
                reply.subscribed_accounts = channel == "Accounts"
                self.user_channels.add(channel)
            else:
                self.user_channels.discard(channel)
        else:
            error = f"Unknown hub method '{target}'"
        if error is not None:
            reply.problem = f"{error} (invocation {invocation_id})"
        self._answer(reply, invocation_id, error)

    @staticmethod
    def _answer(reply: Reply, invocation_id: Any, error: str | None) -> None:
        if invocation_id is not None:  # no id: a non-blocking call that must get no reply
            reply.send.append(signalr.completion(str(invocation_id), error=error))
