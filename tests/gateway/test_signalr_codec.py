from __future__ import annotations

import json

import pytest

from risk_manager.gateway.signalr import (
    HANDSHAKE_REQUEST,
    RS,
    Close,
    Completion,
    Invocation,
    OtherMessage,
    Ping,
    ProtocolError,
    encode_invocation,
    parse_handshake,
    parse_message,
    split_records,
)


def test_handshake_and_records() -> None:
    assert HANDSHAKE_REQUEST == '{"protocol": "json", "version": 1}' + RS
    frame = "{}" + RS + '{"type":6}' + RS + '{"type":1,"target":"GatewayQuote","arguments":["C",{}]}' + RS
    records = split_records(frame)
    assert len(records) == 3
    parse_handshake(records[0])
    assert parse_message(records[1]) == Ping()
    assert parse_message(records[2]) == Invocation("GatewayQuote", ["C", {}])


def test_handshake_error_and_garbage() -> None:
    with pytest.raises(ProtocolError, match="refused the handshake: bad protocol"):
        parse_handshake('{"error":"bad protocol"}')
    with pytest.raises(ProtocolError):
        parse_handshake("nope")
    with pytest.raises(ProtocolError, match="record separator"):
        split_records('{"type":6}')


def test_message_kinds() -> None:
    assert parse_message('{"type":3,"invocationId":"7","result":null}') == Completion("7")
    assert parse_message('{"type":3,"invocationId":7,"error":"boom"}') == Completion("7", None, "boom")
    assert parse_message('{"type":7,"error":"bye","allowReconnect":false}') == Close("bye", False)
    assert parse_message('{"type":2,"invocationId":"1","item":1}') == OtherMessage(2)
    for bad in ('{"type":1,"target":5}', '{"type":3}', "[1]", '{"x":1}', "{"):
        with pytest.raises(ProtocolError):
            parse_message(bad)


def test_encode_invocation() -> None:
    text = encode_invocation("SubscribeOrders", [1001], "3")
    assert text.endswith(RS)
    assert json.loads(text[:-1]) == {"type": 1, "target": "SubscribeOrders", "arguments": [1001], "invocationId": "3"}
    assert "invocationId" not in encode_invocation("X", [])
