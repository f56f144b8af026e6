"""Counting wrong admin passwords across processes: 5 in a row → a 5-minute back-off.

The state is a small 0600 JSON file in the admin directory, so starting a new process (or a
hundred in parallel) does not reset the count: every check-verify-record sequence holds an
exclusive file lock (`filelock`, which picks fcntl/msvcrt per platform), so parallel attempts
are checked one after another. A success clears the count. During a back-off no password is even
verified. A state file that cannot be read is treated as a fresh back-off (fail closed) and logged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from filelock import FileLock

from risk_manager.domain.clock import Clock
from risk_manager.domain.wire import format_time, parse_time
from risk_manager.logs import log_event
from risk_manager.security.errors import PasswordBackoffError
from risk_manager.security.paths import write_private_atomic

logger = logging.getLogger("risk_manager.security")

MAX_FAILURES = 5
BACKOFF = timedelta(minutes=5)


@dataclass(frozen=True)
class AttemptState:
    failures: int = 0
    locked_until: datetime | None = None

    def to_json(self) -> bytes:
        return json.dumps({
            "failures": self.failures,
            "locked_until": None if self.locked_until is None else format_time(self.locked_until),
        }).encode()

    @classmethod
    def from_json(cls, data: bytes) -> AttemptState:
        raw = json.loads(data)
        until = raw["locked_until"]
        failures = raw["failures"]
        if not isinstance(failures, int) or failures < 0:
            raise ValueError(f"failures must be a non-negative integer, got {failures!r}")
        return cls(failures, None if until is None else parse_time(until))


class FailedAttempts:
    """The persisted failure counter of one admin directory. Use `guard()` around a verification."""

    def __init__(self, state_file: Path, lock_file: Path, clock: Clock,
                 max_failures: int = MAX_FAILURES, backoff: timedelta = BACKOFF) -> None:
        if max_failures < 1:
            raise ValueError(f"max_failures must be at least 1, got {max_failures}")
        self.state_file = state_file
        self.clock = clock
        self.max_failures = max_failures
        self.backoff = backoff
        self._lock = FileLock(lock_file, mode=0o600)

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Hold the cross-process lock; raise `PasswordBackoffError` at once if a back-off is running."""
        with self._lock:
            state = self._load()
            now = self.clock.now()
            if state.locked_until is not None:
                if now < state.locked_until:
                    raise PasswordBackoffError(state.locked_until, (state.locked_until - now).total_seconds())
                self._save(AttemptState())  # the back-off is over: a fresh count
                log_event(logger, "admin_backoff_expired")
            yield

    def state(self) -> AttemptState:
        return self._load()

    def record_failure(self) -> AttemptState:
        """Count one wrong password (call inside `guard()`); starts the back-off at `max_failures`."""
        failures = self._load().failures + 1
        if failures >= self.max_failures:
            state = AttemptState(failures, self.clock.now() + self.backoff)
            log_event(logger, "admin_backoff_started", logging.WARNING, failures=failures,
                      until=format_time(state.locked_until) if state.locked_until else None,
                      seconds=int(self.backoff.total_seconds()))
        else:
            state = AttemptState(failures)
        self._save(state)
        return state

    def record_success(self) -> None:
        if self._load() != AttemptState():
            self._save(AttemptState())

    def remaining(self, state: AttemptState) -> int:
        return 0 if state.locked_until is not None else max(0, self.max_failures - state.failures)

    def _load(self) -> AttemptState:
        try:
            data = self.state_file.read_bytes()
        except FileNotFoundError:
            return AttemptState()
        try:
            return AttemptState.from_json(data)
        except (ValueError, KeyError, TypeError) as exc:
            # Fail closed: deleting or garbling the counter must not grant fresh attempts.
            state = AttemptState(self.max_failures, self.clock.now() + self.backoff)
            log_event(logger, "admin_attempts_state_unreadable", logging.WARNING, path=self.state_file,
                      error=str(exc)[:200], action="back-off started")
            self._save(state)
            return state

    def _save(self, state: AttemptState) -> None:
        write_private_atomic(self.state_file, state.to_json())
