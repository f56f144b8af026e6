"""What `risk-manager run`'s observability costs per event and per enforcement outcome (Observability hooks)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

from risk_manager.benchkit import Figure, Progress, median, percentile
from risk_manager.daemon.observability import Observability
from risk_manager.daemon.ops_config import OpsConfig
from risk_manager.domain import QuoteEvent
from risk_manager.enforcement import ActionOutcome
from risk_manager.enforcement.outcomes import OutcomeStatus
from risk_manager.engine import Action, ActionKind

DESCRIPTION = "observability cost on the event path: metrics per hub event, metrics+notify per outcome, µs"

ROUNDS = 15
CALLS = 20_000


async def _measure(progress: Progress) -> tuple[list[float], list[float]]:
    ops = Observability(OpsConfig(), Path("."))   # nothing started: the hooks alone (no channel: notify is a no-op)
    event = QuoteEvent.__new__(QuoteEvent)
    now = datetime.now(UTC)
    outcome = ActionOutcome(Action(ActionKind.CLOSE_POSITION, 1001, ("RULE-002",), "k", contract_id="C"),
                            OutcomeStatus.DONE, None, now, now, 12.5, 1)
    per_event, per_outcome = [], []
    for i in range(ROUNDS):
        progress(f"round {i + 1}/{ROUNDS}")
        start = time.perf_counter()
        for _ in range(CALLS):
            await ops._count_event(event)
        per_event.append((time.perf_counter() - start) / CALLS * 1e6)
        start = time.perf_counter()
        for _ in range(CALLS):
            ops._on_activity(outcome)
        per_outcome.append((time.perf_counter() - start) / CALLS * 1e6)
    return per_event, per_outcome


def run(progress: Progress) -> list[Figure]:
    per_event, per_outcome = asyncio.run(_measure(progress))
    return [
        Figure("hub event → metrics (listener await + counter), median", median(per_event), "µs", target=5.0),
        Figure("same, p95 of rounds", percentile(per_event, 95), "µs", target=5.0),
        Figure("enforcement outcome → metrics + notification built, median", median(per_outcome), "µs", target=50.0),
    ]
