"""Cost per hub event on the client's receive path: one SignalR record (JSON text) → domain event.

Measures `signalr.parse_message` + the hub's decoder, exactly what `HubConnection` runs per record
(user order event wrapped and unwrapped, market quote). No network: the transport adds its own cost,
measured end to end by the latency benchmarks of the daemon.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from risk_manager.benchkit import Figure, Progress, median, percentile
from risk_manager.domain import Order
from risk_manager.gateway.hubs import market_hub_decoder, user_hub_decoder
from risk_manager.gateway.signalr import Invocation, parse_message

DESCRIPTION = "client decode cost per hub event (SignalR record → domain event), µs (target ≤ 20)"

_ORDER = {"id": 36598, "accountId": 704, "contractId": "CON.F.US.EP.Z26", "symbolId": "F.US.EP",
          "creationTimestamp": "2025-04-21T19:45:52.105808+00:00",
          "updateTimestamp": "2025-04-21T19:45:52.105808+00:00", "status": 1, "type": 4, "side": 1, "size": 1,
          "limitPrice": None, "stopPrice": 5600.25, "fillVolume": 0, "filledPrice": None, "customTag": None}
_WRAPPED = json.dumps({"type": 1, "target": "GatewayUserOrder", "arguments": [{"action": 1, "data": _ORDER}]})
_UNWRAPPED = json.dumps({"type": 1, "target": "GatewayUserOrder", "arguments": [_ORDER]})
_QUOTE = json.dumps({"type": 1, "target": "GatewayQuote", "arguments": [
    "CON.F.US.EP.Z26", {"symbol": "F.US.EP", "symbolName": "ESZ6", "lastPrice": 5600.25, "bestBid": 5600.0,
                        "bestAsk": 5600.25, "volume": 1200, "timestamp": "2025-04-21T19:45:52.105808+00:00"}]})

ROUNDS = 30
PER_ROUND = 3000


def _per_event_us(record: str, decode: Callable[[str, list[object]], object]) -> float:
    start = time.perf_counter()
    for _ in range(PER_ROUND):
        message = parse_message(record)
        assert isinstance(message, Invocation)
        decode(message.target, message.arguments)
    return (time.perf_counter() - start) / PER_ROUND * 1e6


def run(progress: Progress) -> list[Figure]:
    wrapped, unwrapped, quote, entity = [], [], [], []
    for i in range(ROUNDS):
        progress(f"round {i + 1}/{ROUNDS}")
        start = time.perf_counter()
        for _ in range(PER_ROUND):
            Order.from_wire(_ORDER)
        entity.append((time.perf_counter() - start) / PER_ROUND * 1e6)
        wrapped.append(_per_event_us(_WRAPPED, user_hub_decoder))
        unwrapped.append(_per_event_us(_UNWRAPPED, user_hub_decoder))
        quote.append(_per_event_us(_QUOTE, market_hub_decoder))
    return [
        Figure("user order event (wrapped), median", median(wrapped), "µs", target=20.0),
        Figure("user order event (wrapped), p95 of rounds", percentile(wrapped, 95), "µs", target=20.0),
        Figure("user order event (unwrapped), median", median(unwrapped), "µs", target=20.0),
        Figure("market quote event, median", median(quote), "µs", target=20.0),
        Figure("of which domain Order.from_wire alone, median", median(entity), "µs",
               note="same rounds; the rest is JSON + SignalR record parsing + event wrapping"),
    ]
