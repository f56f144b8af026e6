"""Decode cost of one user-hub event (wire JSON already parsed → domain event)."""

from __future__ import annotations

import json
import time

from risk_manager.benchkit import Figure, Progress, median, percentile
from risk_manager.domain import decode_market_event, decode_user_event

DESCRIPTION = "decode cost per hub event (user order/trade, market quote), µs"

_ORDER = json.loads('{"action":1,"data":{"id":36598,"accountId":704,"contractId":"CON.F.US.EP.Z26",'
                    '"symbolId":"F.US.EP","creationTimestamp":"2025-04-21T19:45:52.105808+00:00",'
                    '"updateTimestamp":"2025-04-21T19:45:52.105808+00:00","status":1,"type":4,"side":1,'
                    '"size":1,"limitPrice":null,"stopPrice":5600.25,"fillVolume":0,"filledPrice":null,'
                    '"customTag":null}}')
_QUOTE = ["CON.F.US.EP.Z26", {"symbol": "F.US.EP", "lastPrice": 5600.25, "bestBid": 5600.0, "bestAsk": 5600.25,
                              "timestamp": "2025-04-21T19:45:52.105808+00:00"}]


def _time_per_call(fn: object, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()  # type: ignore[operator]
    return (time.perf_counter() - start) / n * 1e6


def run(progress: Progress) -> list[Figure]:
    order_samples, quote_samples = [], []
    for i in range(30):
        progress(f"round {i + 1}/30")
        order_samples.append(_time_per_call(lambda: decode_user_event("GatewayUserOrder", [_ORDER]), 2000))
        quote_samples.append(_time_per_call(lambda: decode_market_event("GatewayQuote", _QUOTE), 2000))
    return [
        Figure("order event decode, median", median(order_samples), "µs", target=20.0),
        Figure("order event decode, p95 of rounds", percentile(order_samples, 95), "µs", target=20.0),
        Figure("quote event decode, median", median(quote_samples), "µs", target=20.0),
    ]
