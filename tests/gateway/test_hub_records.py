"""The hub's record handling: malformed frames and events are logged and counted, never fatal."""

from __future__ import annotations

import json
from typing import Any

from risk_manager.domain import LogoutEvent, OrderEvent, QuoteEvent
from risk_manager.gateway.config import SignalRConfig
from risk_manager.gateway.hubs import HubConnection, market_hub_decoder, user_hub_decoder, websocket_url

ORDER = {"id": 1, "accountId": 1001, "contractId": "CON.F.US.EP.Z26", "creationTimestamp": "2026-03-03T15:00:00Z",
         "status": 1, "type": 2, "side": 0, "size": 1}


def record(target: str, arguments: list[Any]) -> str:
    return json.dumps({"type": 1, "target": target, "arguments": arguments})


def hub(decoder: Any) -> HubConnection:
    return HubConnection("test", "http://127.0.0.1:1/hubs/user", tokens=None, config=SignalRConfig(),  # type: ignore[arg-type]
                         decoder=decoder)


def test_bad_records_are_counted_and_good_ones_delivered_in_order() -> None:
    h = hub(user_hub_decoder)
    records = [
        "not json",
        '{"type": 1, "target": 3}',
        record("GatewayUserOrder", [{"action": 1, "data": {**ORDER, "id": None}}]),  # missing id
        record("GatewayUserOrder", [{"action": 1, "data": ORDER}]),  # wrapped
        record("SomethingNew", [{}]),
        record("SomethingNew", [{}]),
        record("GatewayUserOrder", [{**ORDER, "id": 2, "status": 99}]),  # unwrapped, unknown enum value
        record("GatewayUserOrder", [[{"action": 1, "data": {**ORDER, "id": 3}}]]),  # a list of items
        '{"type": 6}',
    ]
    closes = [h._handle_record(r) for r in records]
    assert not any(closes)
    assert h.stats.malformed == 3
    assert h.stats.unknown_targets == 2
    delivered = [h._queue.get_nowait() for _ in range(h._queue.qsize())]
    assert [e.order.id for e in delivered if isinstance(e, OrderEvent)] == [1, 2, 3]
    assert int(delivered[1].order.status) == 99  # type: ignore[union-attr]


def test_logout_and_close_end_the_connection() -> None:
    h = hub(user_hub_decoder)
    assert h._handle_record(record("GatewayLogout", ["session ended"])) is True
    assert isinstance(h._queue.get_nowait(), LogoutEvent)
    assert h._handle_record('{"type": 7, "error": "server shutting down"}') is True


def test_market_decoder_and_ws_url() -> None:
    h = hub(market_hub_decoder)
    h._handle_record(record("GatewayQuote", ["CON.F.US.EP.Z26", {"lastPrice": 5000.25}]))
    h._handle_record(record("GatewayQuote", [{"lastPrice": 5000.25}]))  # contract id missing
    assert isinstance(h._queue.get_nowait(), QuoteEvent)
    assert h.stats.malformed == 1
    assert websocket_url("https://rtc.example.invalid/hubs/user", "a b") == "wss://rtc.example.invalid/hubs/user?access_token=a+b"
    assert websocket_url("http://127.0.0.1:5/hubs/market?x=1", "t") == "ws://127.0.0.1:5/hubs/market?x=1&access_token=t"
