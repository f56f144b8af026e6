"""Requests the client sustains at the Gateway's rate limit, and how many 429s the simulator answers.

The simulator and the client share a virtual clock that a driver task advances 1 s per 100 ms of
real time (×10), so minutes of rate-limited traffic run in seconds. 600 concurrent
`Order/searchOpen` calls are fired at once (a worst-case burst); the client queues them under its
sliding window. Figures:
- the peak number of requests the simulator received in any 60 s window of its clock (limit 200,
  so the ideal is exactly 200: the limit used fully, never exceeded);
- the number of 429s (target 0);
- the sustained rate after the first (free) window, (N − 200) / elapsed, in requests per virtual
  minute (a slot is held until its response is in, so the time a batch takes — scaled ×10 here —
  keeps it a little under 200);
- the raw request rate over loopback for a burst inside one window (no queueing).
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
BURST = 600


def _peak_in_window(stamps: list[float], window_s: float) -> int:
    """The most requests the server saw in any window of `window_s` (its own clock)."""
    stamps = sorted(stamps)
    peak, left = 0, 0
    for right, t in enumerate(stamps):
        while t - stamps[left] >= window_s:
            left += 1
        peak = max(peak, right - left + 1)
    return peak


async def _round() -> tuple[float, int, float, int]:
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
                await asyncio.sleep(0.1)
                clock.advance(1.0)

        driver = asyncio.create_task(drive())
        v0 = clock.timestamp()
        await asyncio.gather(*(client.search_open_orders(1001) for _ in range(BURST)))
        elapsed_virtual = clock.timestamp() - v0
        stop.set()
        await driver
        per_minute = (BURST - config.error_handling.rate_limit.general.requests) / elapsed_virtual * 60
        stamps = [r.at.timestamp() for r in sim.recorder.requests if r.at.timestamp() >= v0]
        return per_minute, sim.recorder.http_429, raw, _peak_in_window(stamps, 60.0)
    finally:
        await client.aclose()
        await sim.stop()


def run(progress: Progress) -> list[Figure]:
    rates, errors, raws, peaks = [], [], [], []
    for i in range(ROUNDS):
        progress(f"round {i + 1}/{ROUNDS}: burst of {BURST}")
        rate, n429, raw, peak = asyncio.run(_round())
        peaks.append(peak)
        rates.append(rate)
        errors.append(n429)
        raws.append(raw)
    return [
        Figure("peak requests the server saw in any 60 s window, worst round", float(max(peaks)), "requests",
               target=200.0, note="the limit is 200; equal means the limit is used fully, never exceeded"),
        Figure("peak in any 60 s window, lowest round", float(min(peaks)), "requests", target=190.0,
               better="higher"),
        Figure("sustained rate after the first window, median", median(rates), "req/virtual min",
               note=f"burst of {BURST}; below 200 by the time each batch takes, scaled ×10 here"),
        Figure("429 answered by the simulator, worst round", float(max(errors)), "count", target=0.0),
        Figure("raw request rate inside one window, median", median(raws), "req/s", better="higher",
               note="150 concurrent Order/searchOpen over loopback"),
    ]
