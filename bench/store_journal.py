"""Journal throughput and the latency of the store's barriers (flush, durable lock/claim), on a real file."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

from risk_manager.benchkit import Figure, Progress, median, percentile
from risk_manager.domain import SystemClock
from risk_manager.store import LockRecord, Store

DESCRIPTION = "store: journal appends/s to disk, enqueue cost, flush and durable-write latency (median/p99)"

# A user-hub order event in wire form, the typical journal payload (~400 bytes of JSON).
_PAYLOAD = [{"action": 1, "data": {
    "id": 36598, "accountId": 704, "contractId": "CON.F.US.EP.Z26", "symbolId": "F.US.EP",
    "creationTimestamp": "2025-04-21T19:45:52.105808+00:00", "updateTimestamp": "2025-04-21T19:45:52.105808+00:00",
    "status": 1, "type": 4, "side": 1, "size": 1, "limitPrice": None, "stopPrice": 5600.25, "fillVolume": 0,
    "filledPrice": None, "customTag": None}}]

# Targets (ours, from quality.md): ≥ 2,000 appends/s is the sustained quote rate; a flush p99 within
# the 5 ms breach → request budget; ≤ 10 µs per append, a fifth of the engine's 50 µs per event.
ROUNDS = 7
APPENDS_PER_ROUND = 20_000
FLUSHES = 1_000
DURABLE_WRITES = 200


async def _throughput(store: Store) -> tuple[float, float]:
    """(appends/s including the final flush, µs per append on the event loop)."""
    start = time.perf_counter()
    for _ in range(APPENDS_PER_ROUND):
        store.append_journal("GatewayUserOrder", _PAYLOAD, 704)
    enqueued = time.perf_counter()
    await store.flush()
    done = time.perf_counter()
    return APPENDS_PER_ROUND / (done - start), (enqueued - start) / APPENDS_PER_ROUND * 1e6


async def _flush_latencies(store: Store, appends: int) -> list[float]:
    """The event path: `appends` events, then the barrier awaited before a result is reported (ms)."""
    samples = []
    for _ in range(FLUSHES):
        for _ in range(appends):
            store.append_journal("GatewayUserOrder", _PAYLOAD, 704)
        start = time.perf_counter()
        await store.flush()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


async def _durable_latencies(store: Store) -> tuple[list[float], list[float]]:
    """add_lock (before a broker call) and claim (at-most-once), each committed with an fsync (ms)."""
    locks, claims = [], []
    clock = SystemClock()
    for i in range(DURABLE_WRITES):
        start = time.perf_counter()
        await store.add_lock(LockRecord(f"bench-{i}", 704, "cooldown", "bench", clock.now()))
        locks.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        await store.claim(f"bench-{i}", 704, {"kind": "flatten_account"})
        claims.append((time.perf_counter() - start) * 1000)
    return locks, claims


async def _measure(directory: Path, progress: Progress) -> list[Figure]:
    store = await Store.open(directory / "bench.db", SystemClock())
    try:
        rates, enqueue = [], []
        for i in range(ROUNDS):
            progress(f"throughput round {i + 1}/{ROUNDS}")
            rate, cost = await _throughput(store)
            rates.append(rate)
            enqueue.append(cost)
        progress("flush latency, 1 event per flush")
        single = await _flush_latencies(store, 1)
        progress("flush latency, 20 events per flush")
        burst = await _flush_latencies(store, 20)
        progress("durable lock / claim latency")
        locks, claims = await _durable_latencies(store)
    finally:
        await store.close()
    return [
        Figure("journal appends/s to disk (incl. flush), median of rounds", median(rates), "appends/s",
               target=2_000, better="higher", note=f"{ROUNDS} rounds × {APPENDS_PER_ROUND} ~400-byte events"),
        Figure("append cost on the event loop, median", median(enqueue), "µs", target=10.0),
        Figure("flush after 1 event, median", median(single), "ms"),
        Figure("flush after 1 event, p99", percentile(single, 99), "ms", target=5.0),
        Figure("flush after 20 events, median", median(burst), "ms"),
        Figure("flush after 20 events, p99", percentile(burst, 99), "ms", target=5.0),
        Figure("add_lock (fsync), median", median(locks), "ms"),
        Figure("add_lock (fsync), p99", percentile(locks, 99), "ms"),
        Figure("claim (fsync), median", median(claims), "ms"),
        Figure("claim (fsync), p99", percentile(claims, 99), "ms"),
    ]


def run(progress: Progress) -> list[Figure]:
    directory = Path(os.environ.get("RISK_MANAGER_BENCH_DIR") or tempfile.gettempdir())
    with tempfile.TemporaryDirectory(prefix="rm-bench-store-", dir=directory) as tmp:
        return asyncio.run(_measure(Path(tmp), progress))
