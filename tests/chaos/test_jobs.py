"""`run_many(jobs=N)`: runs spread over worker processes give the same judgements as one process."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from risk_manager.chaos.runs import RunResult, _unfinished, run_many


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_two_worker_processes_judge_like_one(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="risk_manager")
    one: list[RunResult] = []
    two: list[RunResult] = []
    first = await run_many(4, 3, minutes=0.5, out=tmp_path / "one", on_result=lambda r, _w: one.append(r))
    second = await run_many(4, 3, minutes=0.5, out=tmp_path / "two", on_result=lambda r, _w: two.append(r), jobs=2)
    assert second.runs == first.runs == 4
    assert second.clean == first.clean and second.failed_seeds == first.failed_seeds
    assert second.breaches == first.breaches
    by_seed = {r.seed: r for r in two}
    assert sorted(by_seed) == [3, 4, 5, 6]
    for r in one:
        assert [str(v) for v in by_seed[r.seed].judgement.violations] == [str(v) for v in r.judgement.violations]
        other = by_seed[r.seed].report
        assert other is not None and r.report is not None
        # The broker's books at the end are the same. (Not the action log: two actions of one instant on
        # one position may end "done" or "skipped" by wall-clock order; nor the count of REST requests.)
        assert other["final"] == r.report["final"]


def test_a_failed_worker_is_a_crash_not_a_lost_run() -> None:
    result = _unfinished(7, None, 0.2, RuntimeError("worker killed"))
    assert result.seed == 7 and not result.clean
    assert [v.kind for v in result.judgement.violations] == ["crash"]
    assert "worker killed" in str(result.judgement.violations[0])
