"""Chaos seeds 62, 885 and 968: at the first probe after a REST outage the daemon re-submits every
waiting action at once; the half-open breaker's quota (`halfOpenRequests`, 3) must not turn away
protection calls, or an action fails with "next probe in 0.0 s" and waits a whole retry period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from risk_manager.domain import VirtualClock
from risk_manager.gateway import BreakerState, CircuitOpenError
from risk_manager.gateway.circuit_breaker import CircuitBreaker, urgent_calls
from risk_manager.gateway.config import CircuitBreakerConfig
from risk_manager.replay.runner import replay
from risk_manager.replay.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)


def _at_its_first_probe(clock: VirtualClock) -> CircuitBreaker:
    """A breaker opened by one failure, with a half-open quota of one probe, at its urgent probe time."""
    breaker = CircuitBreaker(CircuitBreakerConfig(failure_threshold=1, timeout=60_000, half_open_requests=1), clock)
    breaker.record_failure(breaker.before_call())
    clock.set(T0 + timedelta(seconds=1))
    return breaker


def test_half_open_quota_holds_back_ordinary_calls_but_not_urgent_ones() -> None:
    breaker = _at_its_first_probe(VirtualClock(T0))
    with urgent_calls():
        first = breaker.before_call()          # the probe: the quota of one is now used
        second = breaker.before_call()         # protection is not held back by the quota
    assert first and second and breaker.state is BreakerState.HALF_OPEN
    with pytest.raises(CircuitOpenError):
        breaker.before_call()                  # an ordinary call still waits for the probes
    breaker.record_success(first)
    assert breaker.state is BreakerState.CLOSED
    breaker.record_success(second)             # a late probe answer after the close changes nothing
    assert breaker.state is BreakerState.CLOSED and breaker.consecutive_failures == 0


def test_half_open_failure_of_an_extra_urgent_call_reopens() -> None:
    clock = VirtualClock(T0)
    breaker = _at_its_first_probe(clock)
    with urgent_calls():
        first, second = breaker.before_call(), breaker.before_call()
    breaker.record_failure(second)             # the Gateway is still failing: open again
    assert breaker.state is BreakerState.OPEN
    assert breaker.probe_at(urgent=True) == clock.timestamp() + 1.0
    breaker.record_neutral(first)
    assert breaker.state is BreakerState.OPEN


async def test_every_waiting_reduce_is_done_at_the_first_probe_after_the_cut() -> None:
    scenario = load_scenario(ROOT / "scenarios" / "fault-cut-rest-breaches-on-three-accounts.yaml")
    report = (await replay(scenario)).report
    cut_end = scenario.start + timedelta(seconds=20)
    done = {a["account"]: datetime.fromisoformat(a["at"]) for a in report["actions"] if a["status"] == "done"}
    assert sorted(done) == [1001, 1002, 1003]
    assert all(cut_end <= at <= cut_end + timedelta(seconds=1) for at in done.values()), done
    refused = [a for a in report["actions"] if "next probe in 0.0 s" in (a.get("reason") or "")]
    assert refused == []
