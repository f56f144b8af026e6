"""Circuit breaker for the Gateway REST API: closed → (N consecutive failures) → open for a while
→ half-open (a few probe calls) → closed again, or open again on a failed probe.

Why hand-written: the open period must run on the injected broker `Clock` (scenario replays move
a virtual clock) and the state must be observable by the dashboard; the libraries (pybreaker,
aiobreaker) read wall time and are synchronous-first. It is ~80 lines.

Only transient failures count (network, timeout, 408, 429, 5xx): a `success:false` answer or a
400 means the Gateway is up and answering.

Urgent calls (protection: enforcement, the reconciliation after a gap) are made inside
`urgent_calls()`. While the breaker is open they may probe after `urgent_probe_s` (1 s) instead of
the configured `timeout` (60 s): the first urgent call due moves the breaker to half-open and is
the probe. A broker that is still down costs one request a second; a broker that is back is used
within a second, not a minute later (docs/enforcement.md § circuit breaker).

A failure the Gateway *answered* (an error status: 429, 5xx — it is reachable, the error is
transient, e.g. the first request after an outage) opens the breaker with a short urgent wait
instead: `ANSWERED_PROBE_S` (50 ms), doubling with every answered failure in a row, capped at
`urgent_probe_s`. Otherwise a single 500 answered to the probe after an outage would hold
enforcement back a full second more (chaos finding "blocked", docs/reliability.md). A failure
without an answer (network, timeout) keeps the 1 s pace; the backoff resets when the breaker closes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from enum import StrEnum

from risk_manager.domain import Clock
from risk_manager.gateway.config import CircuitBreakerConfig
from risk_manager.gateway.errors import CircuitOpenError
from risk_manager.logs import log_event

log = logging.getLogger("risk_manager.gateway.circuit_breaker")


URGENT_PROBE_S = 1.0
ANSWERED_PROBE_S = 0.05   # the first urgent wait after a failure the Gateway answered; doubles, ≤ URGENT_PROBE_S
_urgent: ContextVar[bool] = ContextVar("circuit_breaker_urgent", default=False)


@contextmanager
def urgent_calls() -> Iterator[None]:
    """REST calls made inside (in this task, across awaits) are urgent: they may probe an open breaker
    after `urgent_probe_s`."""
    token = _urgent.set(True)
    try:
        yield
    finally:
        _urgent.reset(token)


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(self, config: CircuitBreakerConfig, clock: Clock, urgent_probe_s: float = URGENT_PROBE_S) -> None:
        self._config = config
        self._clock = clock
        self.urgent_probe_s = urgent_probe_s
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probes_in_flight = 0
        self._probe_successes = 0
        self._listeners: list[Callable[[BreakerState], None]] = []
        self.times_opened = 0
        self._answered_in_row = 0       # answered failures (429/5xx) since the last unanswered one or close

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

    @property
    def _urgent_s(self) -> float:
        wait = self.urgent_probe_s
        if self._answered_in_row:   # the Gateway answered: sooner, doubling with each answered failure
            wait = min(wait, ANSWERED_PROBE_S * 2 ** (self._answered_in_row - 1))
        return min(wait, self._open_s)

    def probe_at(self, urgent: bool = False) -> float | None:
        """When (clock timestamp) an open breaker admits its next (urgent) call; None unless open."""
        if self.state is not BreakerState.OPEN:
            return None
        return self._opened_at + (self._urgent_s if urgent else self._open_s)

    def admits(self, urgent: bool = False) -> bool:
        """Whether a call made now could pass (closed, half-open, or open with its probe time reached)."""
        due = self.probe_at(urgent)
        return due is None or self._clock.timestamp() >= due

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
        if state is BreakerState.CLOSED:
            self._answered_in_row = 0
        log_event(log, "circuit_state", logging.WARNING if state is BreakerState.OPEN else logging.INFO,
                  old=old.value, new=state.value, failures=self._failures)
        for listener in list(self._listeners):
            try:
                listener(state)
            except Exception as exc:  # an observer's bug must not break REST calls
                log_event(log, "circuit_listener_failed", logging.ERROR, error=repr(exc))

    def before_call(self) -> bool:
        """Admit a call or raise `CircuitOpenError`. Returns True when the call is a half-open probe.
        In half-open, the `halfOpenRequests` quota holds back ordinary calls, never urgent ones."""
        state = self.state
        if state is BreakerState.CLOSED:
            return False
        if state is BreakerState.OPEN:
            wait = self._opened_at + (self._urgent_s if _urgent.get() else self._open_s) - self._clock.timestamp()
            if wait > 0:
                raise CircuitOpenError(wait)
            self._set(BreakerState.HALF_OPEN)   # an urgent call after urgent_probe_s: it is the probe
        # The half-open quota holds back ordinary calls only: an urgent (protection) call turned away
        # here failed its action, which then waited a whole retry period although the Gateway answers
        # (chaos seeds 62, 885, 968). Urgent calls are one action's few requests; the limiter bounds them.
        if not _urgent.get() and self._probes_in_flight + self._probe_successes >= self._config.half_open_requests:
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

    def record_failure(self, probe: bool, answered: bool = False) -> None:
        """A transient failure. `answered`: the Gateway answered it (an error status), so it is reachable
        and the next urgent probe may come sooner (see the module docstring)."""
        self._failures += 1
        self._answered_in_row = self._answered_in_row + 1 if answered else 0
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
