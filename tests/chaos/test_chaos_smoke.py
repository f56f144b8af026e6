"""The 50-run chaos smoke (issue 9): generated trading days with faults against the real daemon and
simulator on a virtual clock, each judged by the oracle. Bounded to about a minute on 2 cores."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from risk_manager.chaos.generator import generate
from risk_manager.chaos.runs import RunResult, run_many, run_scenario

RUNS = 50
SEED = 1
MINUTES = 1.0
# Kinds the daemon passes today: any of these is a failure of this test.
HARD_KINDS = {"crash", "duplicate_order", "flipped_position", "http_429", "lost_lock"}
# Missed breaches the chaos suite found in the daemon (see docs/reliability.md, "Findings"): a second
# breach on the same position is not enforced (same idempotency key as the first). The circuit-breaker
# pause it also found is fixed (fault-cut-rest-then-breach.yaml).
KNOWN_DAEMON_ISSUES = "missed breaches: repeated breach on one position (same idempotency key)"


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_fifty_chaos_runs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="risk_manager")   # restored after the test
    failures: list[RunResult] = []
    summary = await run_many(RUNS, SEED, minutes=MINUTES, out=tmp_path,
                             on_result=lambda r, _w: failures.append(r) if not r.clean else None)
    assert summary.runs == RUNS
    assert summary.breaches > 0, "the generated runs should breach rules now and then"
    hard = [f"seed {r.seed}: {v}" for r in failures for v in r.judgement.violations if v.kind in HARD_KINDS]
    assert not hard, "\n".join(hard)
    written = sorted(p.name for p in tmp_path.iterdir())  # noqa: ASYNC240 - a few names, after the runs
    assert written == sorted(f"chaos-failure-{r.seed}.yaml" for r in failures)
    if failures:
        seeds = ", ".join(str(r.seed) for r in failures)
        pytest.xfail(f"{len(failures)} of {RUNS} runs missed a breach (seeds {seeds}): {KNOWN_DAEMON_ISSUES}")


async def test_one_quiet_run_is_clean() -> None:
    """A run with rules that never breach and no faults: the oracle must find nothing."""
    scenario = generate(2, minutes=0.3)
    scenario = scenario.model_copy(update={
        "rules": {"max_contracts": {"enabled": True, "limit": 500}},
        "steps": [s for s in scenario.steps if s.fault is None]})
    result = await run_scenario(scenario, 2)
    assert result.clean, result.judgement.violations
    assert result.report is not None and result.report["actions"] == []
