"""Chaos finding "blocked" (seeds 75, 699, 958): an HTTP error answered to the circuit breaker's first
probe after a REST cut must not hold enforcement back a further second, and an action that failed on
the breaker just as it re-admitted calls is retried at once (docs/reliability.md)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from risk_manager.chaos.runs import run_scenario
from risk_manager.replay.scenario import load_scenario

DATA = Path(__file__).resolve().parent / "data"


@pytest.mark.parametrize("seed", [699, 75, 958])
async def test_failing_seeds_of_the_blocked_group_are_clean(seed: int, caplog: pytest.LogCaptureFixture) -> None:
    # 699: two 429s eat two probes; 75: one 500 after a REST cut; 958: one 500, then an action refused by
    # the half-open quota whose failure arrives after the breaker closed.
    caplog.set_level(logging.CRITICAL, logger="risk_manager")
    result = await run_scenario(load_scenario(DATA / f"chaos-seed-{seed}.yaml"), seed)
    assert result.judgement.clean, [str(v) for v in result.judgement.violations]
