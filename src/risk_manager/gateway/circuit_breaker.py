"""Circuit breaker for the Gateway REST API: closed → (N consecutive failures) → open for a while
→ half-open (a few probe calls) → closed again, or open again on a failed probe.

Why hand-written: the open period must run on the injected broker `Clock` (scenario replays move
a virtual clock) and the state must be observable by the dashboard; the libraries (pybreaker,
aiobreaker) read wall time and are synchronous-first. It is ~80 lines.

Only transient failures count (network, timeout, 408, 429, 5xx): a `success:false` answer or a
400 means the Gateway is up and answering.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import StrEnum

from risk_manager.domain import Clock
from risk_manager.gateway.config import CircuitBreakerConfig
from risk_manager.gateway.errors import CircuitOpenError
from risk_manager.logs import log_event

log = logging.getLogger("risk_manager.gateway.circuit_breaker")


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(self, config: CircuitBreakerConfig, clock: Clock) -> None:
        self._config = config
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probes_in_flight = 0
        self._probe_successes = 0
        self._listeners: list[Callable[[BreakerState], None]] = []
        self.times_opened = 0

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock.timestamp() >= self._opened_at + self._open_s:
            self._set(BreakerState.HALF_OPEN)
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    @property
    def _open_s(self) -> float:
        return self._config.timeout / 1000.0

    def on_change(self, listener: Callable[[BreakerState], None]) -> None:
        self._listeners.append(listener)

    def _set(self, state: BreakerState) -> None:
        if state is self._state:
            return
        old, self._state = self._state, state
        if state is BreakerState.OPEN:
            self._opened_at = self._clock.timestamp()
            self.times_opened += 1
        if state is BreakerState.HALF_OPEN:
            self._probes_in_flight = 0
            self._probe_successes = 0
        log_event(log, "circuit_state", logging.WARNING if state is BreakerState.OPEN else logging.INFO,
                  old=old.value, new=state.value, failures=self._failures)
        for listener in list(self._listeners):
            try:
                listener(state)
            except Exception as exc:  # an observer's bug must not break REST calls
                log_event(log, "circuit_listener_failed", logging.ERROR, error=repr(exc))

    def before_call(self) -> bool:
        """Admit a call or raise `CircuitOpenError`. Returns True when the call is a half-open probe."""
        state = self.state
        if state is BreakerState.CLOSED:
            return False
        if state is BreakerState.OPEN:
            raise CircuitOpenError(self._opened_at + self._open_s - self._clock.timestamp())
        if self._probes_in_flight + self._probe_successes >= self._config.half_open_requests:
            raise CircuitOpenError(0.0)
        self._probes_in_flight += 1
        return True

    def record_success(self, probe: bool) -> None:
        self._failures = 0
        if probe and self._state is BreakerState.HALF_OPEN:
            self._probes_in_flight -= 1
            self._probe_successes += 1
            if self._probe_successes >= self._config.half_open_requests:
                self._set(BreakerState.CLOSED)

    def record_failure(self, probe: bool) -> None:
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN:
            if probe:
                self._probes_in_flight -= 1
            self._set(BreakerState.OPEN)
        elif self._state is BreakerState.CLOSED and self._failures >= self._config.failure_threshold:
            self._set(BreakerState.OPEN)

    def record_neutral(self, probe: bool) -> None:
        """The call ended without saying anything about the Gateway's health (cancelled)."""
        if probe and self._state is BreakerState.HALF_OPEN:
            self._probes_in_flight -= 1
