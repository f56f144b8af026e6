"""Circuit breaker edge cases: a cancelled probe frees its slot, a late failure of a call admitted
before the breaker opened re-opens a half-open breaker, and an observer's bug never breaks calls."""

from __future__ import annotations

import pytest

from risk_manager.gateway import BreakerState, CircuitBreaker, CircuitOpenError
from risk_manager.gateway.config import CircuitBreakerConfig

from .test_limits import _clock


def test_a_cancelled_probe_frees_its_slot() -> None:
    clock = _clock()
    breaker = CircuitBreaker(CircuitBreakerConfig(failure_threshold=1, timeout=1000, half_open_requests=1), clock)
    breaker.record_failure(breaker.before_call())
    clock.advance(1)
    probe = breaker.before_call()
    assert probe and breaker.state is BreakerState.HALF_OPEN
    with pytest.raises(CircuitOpenError, match=r"paused \(circuit open\) for another 0\.0 s"):
        breaker.before_call()  # the one probe is in flight
    breaker.record_neutral(probe)  # cancelled: says nothing about the Gateway
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record_success(breaker.before_call())
    assert breaker.state is BreakerState.CLOSED and breaker.consecutive_failures == 0


def test_late_failure_of_an_old_call_reopens_and_observer_bugs_are_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = _clock()
    breaker = CircuitBreaker(CircuitBreakerConfig(failure_threshold=2, timeout=1000, half_open_requests=3), clock)
    seen: list[BreakerState] = []

    def broken(state: BreakerState) -> None:
        raise RuntimeError("observer bug")

    breaker.on_change(broken)
    breaker.on_change(seen.append)
    slow_call = breaker.before_call()  # admitted while closed: not a probe
    breaker.record_failure(breaker.before_call())
    breaker.record_failure(breaker.before_call())
    assert breaker.consecutive_failures == 2
    clock.advance(1)
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record_failure(slow_call)  # the old call fails now: the Gateway is still unwell
    assert breaker.state is BreakerState.OPEN
    assert seen == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.OPEN]
    assert caplog.text.count("circuit_listener_failed") == 3
