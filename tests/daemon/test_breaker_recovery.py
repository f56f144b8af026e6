"""Chaos findings 2 and 3: enforcement resumes within ~1 s of REST answering again, and every wait on
the circuit breaker is a clock deadline (`Daemon.next_deadline()`), so virtual-clock replays finish."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from risk_manager.chaos.runs import run_scenario
from risk_manager.daemon.config_dir import AccountSpec, Credential
from risk_manager.daemon.daemon import Daemon, DaemonOptions
from risk_manager.domain import VirtualClock
from risk_manager.engine import parse_rules_block
from risk_manager.gateway import BreakerState, CircuitOpenError, GatewayConfig, MemoryTokenStore
from risk_manager.gateway.circuit_breaker import CircuitBreaker, urgent_calls
from risk_manager.gateway.config import CircuitBreakerConfig
from risk_manager.replay.runner import replay
from risk_manager.replay.scenario import load_scenario
from risk_manager.sim import SimAccount, SimConfig, Simulator

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)


def _opened(clock: VirtualClock) -> CircuitBreaker:
    breaker = CircuitBreaker(CircuitBreakerConfig(failure_threshold=2, timeout=60_000, half_open_requests=1), clock)
    for _ in range(2):
        breaker.record_failure(breaker.before_call())
    assert breaker.state is BreakerState.OPEN
    return breaker


def test_urgent_calls_probe_after_one_second_ordinary_calls_after_the_timeout() -> None:
    clock = VirtualClock(T0)
    breaker = _opened(clock)
    opened = clock.timestamp()
    assert breaker.probe_at(urgent=True) == opened + 1.0
    assert breaker.probe_at() == opened + 60.0
    clock.set(T0 + timedelta(seconds=0.5))
    with urgent_calls(), pytest.raises(CircuitOpenError) as early:
        breaker.before_call()
    assert early.value.retry_in_s == pytest.approx(0.5)
    clock.set(T0 + timedelta(seconds=1))
    assert breaker.admits(urgent=True) and not breaker.admits()
    with pytest.raises(CircuitOpenError):
        breaker.before_call()                  # not urgent: still 59 s to wait
    with urgent_calls():
        assert breaker.before_call() is True   # the probe
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record_failure(True)               # still down: open again, next urgent probe 1 s later
    assert breaker.probe_at(urgent=True) == clock.timestamp() + 1.0
    clock.set(T0 + timedelta(seconds=2))
    with urgent_calls():
        probe = breaker.before_call()
    breaker.record_success(probe)
    assert breaker.state is BreakerState.CLOSED and breaker.probe_at(urgent=True) is None


async def test_urgency_belongs_to_the_task_that_declared_it() -> None:
    clock = VirtualClock(T0)
    breaker = _opened(clock)
    clock.set(T0 + timedelta(seconds=5))
    inside, release = asyncio.Event(), asyncio.Event()

    async def enforcing() -> None:
        with urgent_calls():
            inside.set()
            await release.wait()

    task = asyncio.create_task(enforcing())
    await inside.wait()
    with pytest.raises(CircuitOpenError):
        breaker.before_call()      # this task is not urgent, though another one is meanwhile
    release.set()
    await task
    assert breaker.state is BreakerState.OPEN


async def test_breach_right_after_a_rest_cut_is_enforced_within_a_second() -> None:
    scenario = load_scenario(ROOT / "scenarios" / "fault-cut-rest-then-breach.yaml")
    report = (await replay(scenario)).report
    cut_end = scenario.start + timedelta(seconds=20)
    done = [datetime.fromisoformat(a["at"]) for a in report["actions"] if a["status"] == "done"]
    assert len(done) == 2
    assert all(cut_end <= at <= cut_end + timedelta(seconds=1) for at in done), done
    # while REST was cut the breaker was probed once a (virtual) second, not hammered
    failed = [a for a in report["actions"] if a["status"] == "failed"]
    assert 1 <= len(failed) <= 12
    assert report["final"]["1001"]["positions"][0]["size"] == 4


async def test_a_reconciliation_held_back_by_the_breaker_does_not_stall_a_replay() -> None:
    scenario = load_scenario(ROOT / "tests" / "daemon" / "data" / "breaker-reconcile-stall.yaml")
    result = await run_scenario(scenario, seed=177)
    crashes = [v for v in result.judgement.violations if v.kind == "crash"]
    assert crashes == [], crashes
    assert result.wall_s < 15.0


async def test_on_a_wall_clock_the_urgent_probe_runs_and_the_timer_loop_sleeps(tmp_path: Path) -> None:
    # A due probe was compared with a deadline computed from a later `now()`: on a wall clock it always
    # looked a few µs away, so the probe never ran and `_timers` spun at 100 % CPU for the whole time
    # the breaker stayed open (found by `risk-manager bench daemon_latency`: idle CPU 12 %).
    sim = Simulator(SimConfig(accounts=[SimAccount(1001, "WALL")], quote_feed="scripted"))
    await sim.start()
    gateway = GatewayConfig.for_server(sim.base_url, {"authentication": {"storage": {"type": "memory"}}})
    spec = AccountSpec(1001, None, Credential("wall", "wall", "wall-api-key"),
                       parse_rules_block({"max_contracts": {"enabled": True, "limit": 5}}, "test"))
    daemon = Daemon(DaemonOptions(gateway=gateway, accounts=(spec,), database_path=tmp_path / "risk.db",
                                  durable_fsync=False, token_store=MemoryTokenStore))
    await daemon.start()
    try:
        ticks = 0
        advance = daemon.on_clock_advanced

        async def counted() -> None:
            nonlocal ticks
            ticks += 1
            await advance()

        daemon.on_clock_advanced = counted  # type: ignore[method-assign]
        connection = daemon.connections[0]
        breaker = connection.client.breaker
        connection.fresh = False   # stale: the daemon waits on REST, so the urgent probe is its deadline
        while breaker.state is not BreakerState.OPEN:
            breaker.record_failure(breaker.before_call())
        opened = breaker.probe_at(urgent=True)
        assert opened is not None
        await asyncio.sleep(breaker.urgent_probe_s + 1.0)
        assert connection.probed_at == opened                  # the probe ran at its time
        assert breaker.state is not BreakerState.OPEN          # and the Gateway answered it
        assert ticks <= 5, f"the timer loop woke {ticks} times in {breaker.urgent_probe_s + 1.0} s"
    finally:
        await daemon.aclose()
        await sim.stop()
