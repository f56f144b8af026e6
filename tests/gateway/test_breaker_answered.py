"""A failure the Gateway answered (429/5xx) re-opens the breaker for a short, doubling urgent wait;
one without an answer (network) keeps the 1 s pace; closing resets the backoff (chaos finding "blocked")."""

from __future__ import annotations

import pytest

from risk_manager.domain import VirtualClock
from risk_manager.gateway import BreakerState, CircuitBreaker, CircuitOpenError
from risk_manager.gateway.circuit_breaker import ANSWERED_PROBE_S, URGENT_PROBE_S, urgent_calls
from risk_manager.gateway.config import CircuitBreakerConfig

from .test_limits import _clock


def _open_breaker(clock: VirtualClock) -> CircuitBreaker:
    breaker = CircuitBreaker(CircuitBreakerConfig(failure_threshold=1, timeout=60_000, half_open_requests=1), clock)
    breaker.record_failure(breaker.before_call())          # a REST cut: no answer
    assert breaker.state is BreakerState.OPEN
    return breaker


def _probe(breaker: CircuitBreaker, clock: VirtualClock) -> bool:
    """Move the clock to the next urgent probe time and make the probe."""
    due = breaker.probe_at(urgent=True)
    assert due is not None
    clock.advance(due - clock.timestamp() + 1e-6)   # datetime resolution: land on or just after it
    with urgent_calls():
        probe = breaker.before_call()
    assert probe and breaker.state is BreakerState.HALF_OPEN
    return probe


def _wait(breaker: CircuitBreaker, clock: VirtualClock) -> float:
    due = breaker.probe_at(urgent=True)
    assert due is not None
    return round(due - clock.timestamp(), 6)


def test_answered_probe_failures_reprobe_soon_doubling_up_to_the_urgent_pace() -> None:
    clock = _clock()
    breaker = _open_breaker(clock)
    assert _wait(breaker, clock) == URGENT_PROBE_S
    waits = []
    for _ in range(7):
        breaker.record_failure(_probe(breaker, clock), answered=True)   # e.g. a 500 right after the cut
        assert breaker.state is BreakerState.OPEN
        waits.append(_wait(breaker, clock))
    assert waits == [ANSWERED_PROBE_S, 0.1, 0.2, 0.4, 0.8, URGENT_PROBE_S, URGENT_PROBE_S]
    assert breaker.probe_at() == pytest.approx(clock.timestamp() + 60.0)
    with pytest.raises(CircuitOpenError):
        breaker.before_call()                               # ordinary calls still wait the timeout


def test_an_unanswered_failure_restores_the_one_second_pace_and_closing_resets() -> None:
    clock = _clock()
    breaker = _open_breaker(clock)
    breaker.record_failure(_probe(breaker, clock), answered=True)
    assert _wait(breaker, clock) == ANSWERED_PROBE_S
    breaker.record_failure(_probe(breaker, clock))          # no answer: the Gateway may be down again
    assert _wait(breaker, clock) == URGENT_PROBE_S
    breaker.record_failure(_probe(breaker, clock), answered=True)
    breaker.record_success(_probe(breaker, clock))
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure(breaker.before_call(), answered=True)   # threshold 1: open again, backoff from the start
    assert _wait(breaker, clock) == ANSWERED_PROBE_S
