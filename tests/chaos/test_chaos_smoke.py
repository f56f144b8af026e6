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


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_fifty_chaos_runs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="risk_manager")   # restored after the test
    failures: list[RunResult] = []
    summary = await run_many(RUNS, SEED, minutes=MINUTES, out=tmp_path,
                             on_result=lambda r, _w: failures.append(r) if not r.clean else None)
    assert summary.runs == RUNS
    assert summary.breaches > 0, "the generated runs should breach rules now and then"
    written = sorted(p.name for p in tmp_path.iterdir())  # noqa: ASYNC240 - a few names, after the runs
    assert written == sorted(f"chaos-failure-{r.seed}.yaml" for r in failures)
    # Any violation fails: missed breach, crash, duplicate order, flip, 429, lost lock, unfinished run.
    violations = [f"seed {r.seed}: {v}" for r in failures for v in r.judgement.violations]
    assert not violations, "\n".join(violations)


async def test_one_quiet_run_is_clean() -> None:
    """A run with rules that never breach and no faults: the oracle must find nothing."""
    scenario = generate(2, minutes=0.3)
    scenario = scenario.model_copy(update={
        "rules": {"max_contracts": {"enabled": True, "limit": 500}},
        "steps": [s for s in scenario.steps if s.fault is None]})
    result = await run_scenario(scenario, 2)
    assert result.clean, result.judgement.violations
    assert result.report is not None and result.report["actions"] == []
