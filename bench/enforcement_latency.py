"""Enforcement latency: action submitted → request received by the simulator, over the real wire path.

The simulator, the Gateway client, the store (a real file, claims fsync'd) and the enforcer share one
event loop, as in `risk-manager demo`. For each sample the scripted trader opens a position (or rests
a limit order), the enforcer gets a close (or a cancel of that order) and the figure is
`sim.recorder.intents[-1].received_ns − perf_counter_ns()` taken at `submit`: the claim, the queue
hop, the client's breaker/limiter/token path and the HTTP request on loopback. Rate limits are raised
on both sides: this measures latency, not the 200 requests / 60 s budget.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

from risk_manager.benchkit import Figure, Progress, median, percentile
from risk_manager.domain import SystemClock
from risk_manager.enforcement import Enforcer, OutcomeStatus
from risk_manager.engine.actions import Action, ActionKind
from risk_manager.gateway import GatewayClient, GatewayConfig
from risk_manager.sim import SimConfig, Simulator
from risk_manager.store import Store

DESCRIPTION = "enforcement: submit → close / cancel request received by the simulator (p50/p99), and → verified"

ROUNDS = 2
SAMPLES = 500  # per round and kind: 1,000 closes and 1,000 cancels per store mode
ACCOUNT = 1001
UNLIMITED = {"requests": 10_000_000, "windowSeconds": 60}


def _ms(ns: int) -> float:
    return ns / 1e6


async def _round(sim: Simulator, enforcer: Enforcer, round_no: int) -> tuple[list[float], list[float]]:
    closes: list[float] = []
    cancels: list[float] = []
    contract = sim.broker.contract("MNQ").id
    for i in range(SAMPLES):
        sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=1, type="market")
        start = time.perf_counter_ns()
        enforcer.submit(Action(ActionKind.CLOSE_POSITION, ACCOUNT, ("bench",), f"bench-close-{round_no}-{i}",
                               contract_id=contract))
        await enforcer.idle()
        closes.append(_ms(sim.recorder.intents[-1].received_ns - start))  # reads are not intents
    for i in range(SAMPLES):
        order = sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=1, type="limit", limit_price=20_000.0)
        start = time.perf_counter_ns()
        enforcer.submit(Action(ActionKind.CANCEL_ORDERS, ACCOUNT, ("bench",), f"bench-cancel-{round_no}-{i}",
                               contract_id=contract, order_id=order.id))
        await enforcer.idle()
        cancels.append(_ms(sim.recorder.intents[-1].received_ns - start))
    return closes, cancels


async def _measure_mode(directory: Path, progress: Progress, durable_fsync: bool) -> dict[str, list[float]]:
    sim = Simulator(SimConfig(seed=1, quote_feed="scripted", rate_limit_general=(10_000_000, 60.0),
                              record_limit=50_000))
    await sim.start("127.0.0.1", 0)
    config = GatewayConfig.for_server(sim.base_url, {
        "authentication": {"storage": {"type": "memory"}},
        "errorHandling": {"rateLimit": {"general": UNLIMITED, "queueSize": 100_000}},
    })
    client = GatewayClient(config, "bench", "bench-key-123")
    await client.start(connect_hubs=False)
    store = await Store.open(directory / f"bench-{durable_fsync}.db", SystemClock(), durable_fsync=durable_fsync)
    enforcer = Enforcer(client, store, SystemClock())
    verified: list[float] = []
    enforcer.on_outcome(lambda o: verified.append(o.duration_ms) if o.status is OutcomeStatus.DONE
                        and o.action.kind is ActionKind.CLOSE_POSITION else None)
    await enforcer.start()
    closes: list[float] = []
    cancels: list[float] = []
    bare: list[float] = []
    try:
        if not durable_fsync:
            progress(f"baseline: {SAMPLES} closes straight through the client, no enforcer")
            bare = await _bare_client(sim, client)
        for r in range(ROUNDS):
            progress(f"fsync={durable_fsync} round {r + 1}/{ROUNDS}: {SAMPLES} closes, {SAMPLES} cancels")
            c, k = await _round(sim, enforcer, r)
            closes += c
            cancels += k
        failed = enforcer.stats.failed
    finally:
        await enforcer.aclose()
        await store.close()
        await client.aclose()
        await sim.stop()
    if failed:
        raise RuntimeError(f"{failed} enforcement action(s) failed during the benchmark")
    return {"close": closes, "cancel": cancels, "verified": verified, "bare": bare}


async def _bare_client(sim: Simulator, client: GatewayClient) -> list[float]:
    """The same request without the enforcer (no claim, no queue): the floor the machine allows."""
    samples = []
    contract = sim.broker.contract("MNQ").id
    for _ in range(SAMPLES):
        sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=1, type="market")
        start = time.perf_counter_ns()
        await client.close_position(ACCOUNT, contract)
        samples.append(_ms(sim.recorder.intents[-1].received_ns - start))
    return samples


async def _measure(directory: Path, progress: Progress) -> list[Figure]:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    figures: list[Figure] = []
    for durable in (True, False):
        found = await _measure_mode(directory, progress, durable)
        mode = "claim fsync'd (default)" if durable else "claim without fsync (durable_fsync=False)"
        note = f"{ROUNDS * SAMPLES} samples; load average at start {load:.2f}"
        close, cancel, done = found["close"], found["cancel"], found["verified"]
        figures += [
            Figure(f"{mode}: submit → closeContract received, p50", percentile(close, 50), "ms", target=2.0,
                   note=note),
            Figure(f"{mode}: submit → closeContract received, p99", percentile(close, 99), "ms", target=5.0),
            Figure(f"{mode}: submit → cancel received, p50", percentile(cancel, 50), "ms"),
            Figure(f"{mode}: submit → cancel received, p99", percentile(cancel, 99), "ms", target=5.0),
            Figure(f"{mode}: close start → verified flat, median", median(done), "ms"),
        ]
        if found["bare"]:
            figures += [
                Figure("baseline, client alone: call → closeContract received, p50", percentile(found["bare"], 50),
                       "ms", note="no claim, no queue: what the machine allows"),
                Figure("baseline, client alone: call → closeContract received, p99", percentile(found["bare"], 99),
                       "ms"),
            ]
    return figures


def run(progress: Progress) -> list[Figure]:
    directory = Path(os.environ.get("RISK_MANAGER_BENCH_DIR") or tempfile.gettempdir())
    with tempfile.TemporaryDirectory(prefix="rm-bench-enforcement-", dir=directory) as tmp:
        return asyncio.run(_measure(Path(tmp), progress))
