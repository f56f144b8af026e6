"""Requests the client sustains at the Gateway's rate limit, and how many 429s the simulator answers.

The simulator and the client share a virtual clock that a driver task advances 1 s per 20 ms of
real time (×50), so minutes of rate-limited traffic run in seconds. 1,000 concurrent
`Order/searchOpen` calls are fired at once (a worst-case burst); the client queues them under its
sliding window. Figures: the rate achieved in requests per virtual minute (the limit is 200/60 s:
the ideal is 200; a slot is held until its response is in, so loopback latency — scaled ×50
here — costs a little), and the number of 429s (target 0). A second figure is the raw request rate
over loopback for a burst that fits in one window (no queueing): the client's own overhead.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from risk_manager.benchkit import Figure, Progress, median
from risk_manager.domain import VirtualClock
from risk_manager.gateway import GatewayClient, GatewayConfig
from risk_manager.sim import SimConfig, Simulator

DESCRIPTION = "client requests at the rate limit (per virtual minute, limit 200) with zero 429; raw req/s"

ROUNDS = 3
BURST = 1000


async def _round() -> tuple[float, int, float]:
    clock = VirtualClock(datetime(2026, 3, 3, 15, 0, tzinfo=UTC))
    sim = Simulator(SimConfig(seed=1, quote_feed="scripted", clock=clock))
    await sim.start(host="127.0.0.1", port=0)
    config = GatewayConfig.for_server(sim.base_url, {"authentication": {"storage": {"type": "memory"}}})
    client = GatewayClient(config, "bench", "bench-key-123", clock=clock)
    try:
        await client.start(connect_hubs=False)
        # raw rate: 150 sequential-ish requests inside one window (no queueing)
        t0 = time.perf_counter()
        await asyncio.gather(*(client.search_open_orders(1001) for _ in range(150)))
        raw = 150 / (time.perf_counter() - t0)
        clock.advance(120)  # empty the window
        stop = asyncio.Event()

        async def drive() -> None:
            while not stop.is_set():
                await asyncio.sleep(0.02)
                clock.advance(1.0)

        driver = asyncio.create_task(drive())
        v0 = clock.timestamp()
        await asyncio.gather(*(client.search_open_orders(1001) for _ in range(BURST)))
        elapsed_virtual = clock.timestamp() - v0
        stop.set()
        await driver
        per_minute = BURST / elapsed_virtual * 60
        return per_minute, sim.recorder.http_429, raw
    finally:
        await client.aclose()
        await sim.stop()


def run(progress: Progress) -> list[Figure]:
    rates, errors, raws = [], [], []
    for i in range(ROUNDS):
        progress(f"round {i + 1}/{ROUNDS}: burst of {BURST}")
        rate, n429, raw = asyncio.run(_round())
        rates.append(rate)
        errors.append(n429)
        raws.append(raw)
    return [
        Figure("sustained rate under the 200/60 s limit, median", median(rates), "req/virtual min",
               target=190.0, better="higher", note=f"burst of {BURST}, virtual clock ×50"),
        Figure("429 answered by the simulator, worst round", float(max(errors)), "count", target=0.0),
        Figure("raw request rate inside one window, median", median(raws), "req/s", better="higher",
               note="150 concurrent Order/searchOpen over loopback"),
    ]
