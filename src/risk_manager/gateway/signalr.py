"""The SignalR JSON hub protocol (version 1), just what the Gateway hubs need.

Records are JSON objects each terminated by the record separator `\\x1e`; one WebSocket text frame
may carry several. Message types used: 1 Invocation, 3 Completion, 6 Ping, 7 Close (others are
parsed as `OtherMessage` and ignored by the hub). Pure functions, no I/O — the transport is in
`hubs.py`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

RS = "\x1e"
INVOCATION, STREAM_ITEM, COMPLETION, STREAM_INVOCATION, CANCEL_INVOCATION, PING, CLOSE = 1, 2, 3, 4, 5, 6, 7

HANDSHAKE_REQUEST = json.dumps({"protocol": "json", "version": 1}) + RS
PING_RECORD = json.dumps({"type": PING}) + RS


class ProtocolError(ValueError):
    """A record that is not a valid SignalR JSON message."""


@dataclass(frozen=True, slots=True)
class Invocation:
    target: str
    arguments: list[Any]
    invocation_id: str | None = None


@dataclass(frozen=True, slots=True)
class Completion:
    invocation_id: str
    result: Any = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Close:
    error: str | None = None
    allow_reconnect: bool = True


@dataclass(frozen=True, slots=True)
class OtherMessage:
    type: int


HubMessage = Invocation | Completion | Ping | Close | OtherMessage


def split_records(text: str) -> list[str]:
    """The complete records of one text frame (an unterminated tail is a protocol error)."""
    if not text.endswith(RS):
        raise ProtocolError("frame does not end with the record separator")
    return text.split(RS)[:-1]


def parse_handshake(record: str) -> None:
    """Accept `{}` (optionally with extra keys); raise on `{"error": ...}` or garbage."""
    try:
        data = json.loads(record)
    except ValueError:
        raise ProtocolError(f"handshake answer is not JSON: {record[:80]!r}") from None
    if not isinstance(data, dict):
        raise ProtocolError("handshake answer is not an object")
    if data.get("error"):
        raise ProtocolError(f"server refused the handshake: {data['error']}")


def parse_message(record: str) -> HubMessage:
    try:
        data = json.loads(record)
    except ValueError:
        raise ProtocolError(f"record is not JSON: {record[:80]!r}") from None
    if not isinstance(data, dict):
        raise ProtocolError("record is not a JSON object")
    kind = data.get("type")
    if kind == INVOCATION:
        target = data.get("target")
        arguments = data.get("arguments", [])
        if not isinstance(target, str) or not isinstance(arguments, list):
            raise ProtocolError("invocation without a string target and a list of arguments")
        inv_id = data.get("invocationId")
        return Invocation(target, arguments, None if inv_id is None else str(inv_id))
    if kind == COMPLETION:
        inv_id = data.get("invocationId")
        if inv_id is None:
            raise ProtocolError("completion without invocationId")
        error = data.get("error")
        return Completion(str(inv_id), data.get("result"), None if error is None else str(error))
    if kind == PING:
        return Ping()
    if kind == CLOSE:
        error = data.get("error")
        return Close(None if error is None else str(error), bool(data.get("allowReconnect", True)))
    if isinstance(kind, int) and not isinstance(kind, bool):
        return OtherMessage(kind)
    raise ProtocolError(f"record without a numeric type: {record[:80]!r}")


def encode_invocation(target: str, arguments: list[Any], invocation_id: str | None = None) -> str:
    message: dict[str, Any] = {"type": INVOCATION, "target": target, "arguments": arguments}
    if invocation_id is not None:
        message["invocationId"] = invocation_id
    return json.dumps(message, separators=(",", ":")) + RS
