"""Hub cut → "state fresh": how long after the link returns the reconciler reports fresh state.

The simulator (system clock) cuts the user hub for 1 s (connections dropped, new ones refused);
during the cut the trader fills 3 orders nobody sees live. Measured from the moment the cut ends
(the link returns) to the reconciler's "fresh" signal (reconnected, resubscribed, REST snapshot
diffed, missed fills emitted). The time is dominated by where the backoff schedule is when the link
returns, so two profiles are reported:
- seed defaults (`delays [0, 2000, 10000, ...]`, `resubscribeDelay 1000`): the next attempt after
  a 1 s cut comes ~2 s after the cut started;
- tight (`delays [0, 100, 200, 400]`, `resubscribeDelay 0`).
Plus the client's own part: from the socket open of the successful attempt to "fresh", and a cold
start-up (login, both hubs connected and subscribed, first reconciliation).
`minInterval` is 0 here so back-to-back rounds are not deferred.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from risk_manager.benchkit import Figure, Progress, median, percentile
from risk_manager.domain import UserEvent
from risk_manager.gateway import AccountMirror, GatewayClient, GatewayConfig, HubState, Reconciler
from risk_manager.sim import SimConfig, Simulator

DESCRIPTION = "user hub cut 1 s → state fresh after the link returns, s (target ≤ 1 s)"

ROUNDS = 5
CUT_S = 1.0


async def _rounds(signalr: dict[str, Any], progress: Progress, label: str) -> tuple[list[float], list[float]]:
    sim = Simulator(SimConfig(seed=1, quote_feed="scripted"))
    await sim.start(host="127.0.0.1", port=0)
    config = GatewayConfig.for_server(sim.base_url, {
        "authentication": {"storage": {"type": "memory"}}, "signalr": signalr,
        "stateReconciliation": {"minInterval": 0}})
    client = GatewayClient(config, "bench", "bench-key-123")
    mirror = AccountMirror(1001)
    after_return: list[float] = []
    own_part: list[float] = []
    connected_at = [0.0]
    fresh_at = [0.0]
    stale = asyncio.Event()

    async def apply(events: Sequence[UserEvent]) -> None:
        for event in events:
            mirror.apply(event)

    async def live(event: Any) -> None:
        if isinstance(event, UserEvent.__args__):  # type: ignore[attr-defined]
            mirror.apply(event)

    reconciler = Reconciler(client, [1001], view=lambda _a: mirror, emit=apply)

    def on_fresh(fresh: bool) -> None:
        if fresh:
            fresh_at[0] = time.perf_counter()
        else:
            stale.set()

    reconciler.on_fresh(on_fresh)
    client.user_hub.on_state(lambda s: connected_at.__setitem__(0, time.perf_counter())
                             if s is HubState.CONNECTED else None)
    client.user_hub.on_event(live)
    try:
        await client.start(connect_hubs=False)
        reconciler.attach(client.user_hub)
        await client.user_hub.subscribe_account(1001)
        await client.start_hubs()
        await reconciler.wait_fresh(10)
        for i in range(ROUNDS):
            progress(f"{label}: round {i + 1}/{ROUNDS}")
            stale.clear()
            cut_start = time.perf_counter()
            sim.faults.cut("user_hub", CUT_S)
            await stale.wait()
            for _ in range(3):
                sim.trader.place_order(1001, "ES", side="buy", size=1, type="market")
            await reconciler.wait_fresh(30)
            link_back = cut_start + CUT_S
            after_return.append(fresh_at[0] - link_back)
            own_part.append(fresh_at[0] - connected_at[0])
            assert mirror.trade_ids == {t.id for t in sim.broker.trades(1001)}, "state differs from the broker"
            await asyncio.sleep(0.2)
        return after_return, own_part
    finally:
        await reconciler.aclose()
        await client.aclose()
        await sim.stop()


async def _startups(rounds: int) -> list[float]:
    """Login + both hubs connected and subscribed + first reconciliation, from a cold client."""
    times = []
    sim = Simulator(SimConfig(seed=1, quote_feed="scripted"))
    await sim.start(host="127.0.0.1", port=0)
    try:
        for _ in range(rounds):
            started = time.perf_counter()
            config = GatewayConfig.for_server(sim.base_url, {"authentication": {"storage": {"type": "memory"}}})
            client = GatewayClient(config, "bench", "bench-key-123")
            mirror = AccountMirror(1001)

            async def apply(events: Sequence[UserEvent], mirror: AccountMirror = mirror) -> None:
                for event in events:
                    mirror.apply(event)

            reconciler = Reconciler(client, [1001], view=lambda _a, mirror=mirror: mirror, emit=apply)
            try:
                await client.start(connect_hubs=False)
                reconciler.attach(client.user_hub)
                await client.user_hub.subscribe_account(1001)
                await client.market_hub.subscribe_quotes(sim.broker.contract("ES").id)
                await client.start_hubs()
                await reconciler.wait_fresh(10)
                times.append(time.perf_counter() - started)
            finally:
                await reconciler.aclose()
                await client.aclose()
    finally:
        await sim.stop()
    return times


def run(progress: Progress) -> list[Figure]:
    progress("start-up")
    startups = asyncio.run(_startups(7))
    tight, tight_own = asyncio.run(_rounds({"reconnection": {"delays": [0, 100, 200, 400], "jitter": 0.1},
                                            "subscriptions": {"resubscribeDelay": 0}}, progress, "tight"))
    seed, _seed_own = asyncio.run(_rounds({}, progress, "seed defaults"))
    return [
        Figure("tight backoff: fresh after link returns, median", median(tight), "s", target=1.0),
        Figure("tight backoff: fresh after link returns, worst", max(tight), "s", target=1.0),
        Figure("seed defaults: fresh after link returns, median", median(seed), "s", target=1.0,
               note="next attempt at 2 s (+20 % jitter), then resubscribeDelay 1 s"),
        Figure("reconnected+resubscribed → fresh (REST snapshot + diff), p50", median(tight_own) * 1000, "ms"),
        Figure("reconnected+resubscribed → fresh, p90", percentile(tight_own, 90) * 1000, "ms"),
        Figure("start-up: login, hubs subscribed, first reconciliation, median", median(startups) * 1000, "ms",
               target=1000.0, note="the gateway's share of the daemon's start-up to 'protecting'"),
    ]
