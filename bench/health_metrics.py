"""Hot-path cost of the daemon's metrics calls, and what a /health/ready probe costs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

from risk_manager.benchkit import Figure, Progress, median, percentile
from risk_manager.health import HealthServer, Metrics, ReadinessBoard

DESCRIPTION = "Metrics.event/latency/enforcement per call (µs); ReadinessBoard.state and GET /health/ready (µs)"

ROUNDS = 15


def _time_per_call(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def _board(accounts: int) -> ReadinessBoard:
    board = ReadinessBoard(Metrics())
    board.set_hub("user hub", "connected")
    board.set_hub("market hub", "connected")
    for i in range(accounts):
        board.add_account(f"ACC-{i}", ["user hub", "market hub"])
        board.set_fresh(f"ACC-{i}", True)
    return board


async def _http_round_trips(board: ReadinessBoard, n: int) -> float:
    async with HealthServer("127.0.0.1", 0, live=lambda: True, ready=board) as server, \
            httpx.AsyncClient(base_url=server.url) as http:
        await http.get("/health/ready")  # connection set up outside the timing
        start = time.perf_counter()
        for _ in range(n):
            await http.get("/health/ready")
        return (time.perf_counter() - start) / n * 1e6


def run(progress: Progress) -> list[Figure]:
    metrics = Metrics()
    kinds = ["order", "trade", "position", "quote", "account"]
    events, latencies, actions, states, probes = [], [], [], [], []
    board = _board(10)
    for i in range(ROUNDS):
        progress(f"round {i + 1}/{ROUNDS}")
        events.append(_time_per_call(lambda: metrics.event(kinds[1]), 20_000))
        latencies.append(_time_per_call(lambda: metrics.latency("event_to_decision", 0.0007), 20_000))
        actions.append(_time_per_call(lambda: metrics.enforcement("flatten", "done", 0.12), 20_000))
        states.append(_time_per_call(board.state, 2_000))
        probes.append(asyncio.run(_http_round_trips(board, 200)))
    return [
        Figure("Metrics.event, median", median(events), "µs", target=2.0),
        Figure("Metrics.event, p95 of rounds", percentile(events, 95), "µs", target=2.0),
        Figure("Metrics.latency (histogram), median", median(latencies), "µs", target=5.0),
        Figure("Metrics.enforcement, median", median(actions), "µs", target=5.0),
        Figure("ReadinessBoard.state, 10 accounts, median", median(states), "µs"),
        Figure("GET /health/ready on loopback, median", median(probes), "µs",
               note="client and server in one process and loop"),
    ]
