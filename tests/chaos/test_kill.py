"""Kill mode: the daemon restarted from what a kill -9 leaves on disk keeps its locks."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

import pytest

from risk_manager.chaos.oracle import History, judge
from risk_manager.chaos.runs import KillingRunner, judge_run, kill_steps, run_many, run_scenario
from risk_manager.chaos.runs import _Recording as Recording
from risk_manager.replay.scenario import parse_scenario

LOCKED_DAY = {
    "name": "a daily loss, then kills",
    "start": "2026-03-03T15:00:00Z",
    "accounts": [{"id": 1001}],
    "rules": {"daily_realized_loss": {"enabled": True, "loss_limit": 100, "include_unrealized": False}},
    "steps": [
        {"at": "0s", "quote": {"symbol": "ES", "price": 6800.0}},
        {"at": "1s", "order": {"account": 1001, "symbol": "ES", "side": "buy", "size": 1, "type": "market",
                               "tag": "t-1"}},
        {"at": "2s", "quote": {"symbol": "ES", "price": 6790.0}},
        {"at": "3s", "close": {"account": 1001, "symbol": "ES"}},            # −$125: locked until the reset
        {"at": "10s", "quote": {"symbol": "ES", "price": 6791.0}},           # killed after this step…
        {"at": "20s", "order": {"account": 1001, "symbol": "ES", "side": "buy", "size": 2, "type": "market",
                                "tag": "t-2"}},                              # …so the new daemon must close this
        {"at": "30s", "advance": True},
    ],
}


async def test_locks_survive_a_kill_and_the_new_daemon_enforces_them(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="risk_manager")   # restored after the test
    scenario = parse_scenario(LOCKED_DAY)
    runner = KillingRunner(scenario, tmp_path, {4}, "<test>")
    recording = Recording(runner)
    report = await runner.run()
    assert runner.kills == 1
    [(pid, exit_code)] = runner.killed
    assert pid != os.getpid() and exit_code == -signal.SIGKILL   # a real kill -9 of another process
    assert len(runner.locks_before) == 1 and "until_reset" in runner.locks_before[0]
    assert runner.locks_after == runner.locks_before
    result = judge_run(runner, recording)
    assert result.clean, result.violations
    after_kill = [a for a in report["actions"] if a["at"] == "2026-03-03T15:00:20.000Z"]
    assert after_kill and all(a["status"] == "done" for a in after_kill)   # the new daemon closed it at once
    assert report["final"]["1001"]["positions"] == []


def test_a_lock_missing_after_the_kill_is_a_violation() -> None:
    history = History(rules={}, accounts=[1001], locks_before_kill=["lock A (kill 1)", "lock B (kill 1)"],
                      locks_after_kill=["lock A (kill 1)"])
    [violation] = judge(history).violations
    assert violation.kind == "lost_lock" and "lock B" in violation.detail


async def test_kill_runs_are_deterministic_per_seed() -> None:
    scenario = parse_scenario(LOCKED_DAY)
    assert kill_steps(scenario, 5) == kill_steps(scenario, 5)
    assert len(kill_steps(scenario, 5)) == 2
    result = await run_scenario(scenario, 5, kill=True)
    assert result.clean, result.judgement.violations


TOO_MANY = {
    "name": "a max-contracts breach, killed while the daemon enforces it",
    "start": "2026-03-03T15:00:00Z",
    "accounts": [{"id": 1001}],
    "rules": {"max_contracts": {"enabled": True, "limit": 2}},
    "steps": [
        {"at": "0s", "quote": {"symbol": "ES", "price": 6800.0}},
        {"at": "1s", "order": {"account": 1001, "symbol": "ES", "side": "buy", "size": 2, "type": "market",
                               "tag": "t-1"}},
        {"at": "2s", "order": {"account": 1001, "symbol": "ES", "side": "buy", "size": 3, "type": "market",
                               "tag": "t-2"}},                               # 5 > 2: killed while it reduces
        {"at": "5s", "quote": {"symbol": "ES", "price": 6801.0}},
        {"at": "10s", "advance": True},
    ],
}
ENFORCING = ("close", "partialClose")


class KillWhileEnforcing(KillingRunner):
    """Kills the child the moment the simulator has received its first enforcement request of the step."""

    async def wait_before_kill(self) -> float:
        intents = self.sim.recorder.intents
        already = sum(1 for i in intents if i.kind in ENFORCING)
        started = asyncio.get_running_loop().time()
        while sum(1 for i in intents if i.kind in ENFORCING) == already:
            assert asyncio.get_running_loop().time() - started < 5, "the daemon never started enforcing"
            await asyncio.sleep(0)
        self.reached = [i.kind for i in intents if i.kind in ENFORCING]
        return asyncio.get_running_loop().time() - started


async def test_a_kill_in_the_middle_of_enforcement_neither_repeats_nor_loses_it(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="risk_manager")   # restored after the test
    scenario = parse_scenario(TOO_MANY)
    runner = KillWhileEnforcing(scenario, tmp_path, {2}, "<test>")
    recording = Recording(runner)
    report = await runner.run()
    assert runner.kills == 1
    assert runner.reached == ["partialClose"]   # the killed child's request reached the simulator
    result = judge_run(runner, recording)
    assert result.clean, result.violations                      # no duplicate order, no flip, no missed breach
    assert report["broker"]["duplicate_orders"] == 0
    reduces = [i for i in runner.sim.recorder.intents if i.kind in ENFORCING]
    assert len(reduces) == 1, reduces                           # the new daemon did not reduce a second time
    assert [(p["side"], p["size"]) for p in report["final"]["1001"]["positions"]] == [("long", 2)]
    # The new daemon either took the stored action over and verified it done (if the killed child had
    # stored it), or found nothing left to do: never a second request.
    assert [(a["action"], a["status"]) for a in report["actions"]] in ([("reduce_position", "done")], [])


async def test_a_few_generated_kill_runs_are_clean(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Generated trading days (seeds 2–4: quick ones) with two real kills each, judged by the oracle."""
    caplog.set_level(logging.CRITICAL, logger="risk_manager")   # restored after the test
    summary = await run_many(3, 2, out=tmp_path, kill=True)
    assert summary.kills == 6
    assert summary.clean == summary.runs == 3, summary.to_json()
