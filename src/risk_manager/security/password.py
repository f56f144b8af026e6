"""The admin password: argon2id, tuned to ~250 ms on this machine, checked with a persisted back-off.

The password is never stored: `admin.json` holds argon2's encoded hash, which carries its own
parameters (`$argon2id$v=19$m=65536,t=…,p=…$salt$hash`), so a hash tuned on one machine still
verifies after the parameters of new hashes change. Nothing here logs or returns the password.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import argon2
from argon2 import Parameters, PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from risk_manager.domain.clock import Clock, SystemClock
from risk_manager.domain.wire import format_time, parse_time
from risk_manager.logs import log_event
from risk_manager.security.attempts import FailedAttempts
from risk_manager.security.errors import (
    AdminNotInitialisedError,
    PasswordInputError,
    SecurityError,
    WrongPasswordError,
)
from risk_manager.security.paths import AdminPaths, write_private_atomic

logger = logging.getLogger("risk_manager.security")

TARGET_SECONDS = 0.25
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
MEMORY_KIB = 64 * 1024      # RFC 9106's "low memory" choice: 64 MiB
MIN_MEMORY_KIB = 19 * 1024  # OWASP's floor for argon2id; below it we do not go even on a slow machine
MAX_TIME_COST = 64


def _default_parallelism() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def measure_hash_seconds(params: Parameters, repeats: int = 3) -> float:
    """Wall time of one argon2id hash with `params`: the fastest of `repeats` runs.

    The minimum, because other work on the machine only ever adds time: it is the best estimate of
    the uncontended cost, so a busy machine at `admin init` does not end up with a weaker hash.
    """
    hasher = PasswordHasher.from_parameters(params)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        hasher.hash("calibration-password")
        best = min(best, time.perf_counter() - start)
    return best


@dataclass(frozen=True)
class TunedParameters:
    params: Parameters
    seconds: float  # the measured cost of one hash with them


def tune_parameters(target_seconds: float = TARGET_SECONDS,
                    measure: Callable[[Parameters], float] = measure_hash_seconds) -> TunedParameters:
    """argon2id parameters whose hash takes about `target_seconds` here (64 MiB, time cost adjusted).

    If even one pass over 64 MiB is slower than the target, memory is halved down to 19 MiB.
    """
    if target_seconds <= 0:
        raise ValueError(f"target_seconds must be positive, got {target_seconds}")
    base = argon2.profiles.RFC_9106_LOW_MEMORY
    memory = MEMORY_KIB
    params = Parameters(type=argon2.Type.ID, version=base.version, salt_len=16, hash_len=32,
                        time_cost=1, memory_cost=memory, parallelism=_default_parallelism())
    seconds = measure(params)
    while seconds > target_seconds * 1.5 and params.memory_cost // 2 >= MIN_MEMORY_KIB:
        params = _with(params, memory_cost=params.memory_cost // 2)
        seconds = measure(params)
    while seconds < target_seconds * 0.9 and params.time_cost < MAX_TIME_COST:
        per_pass = seconds / params.time_cost
        wanted = max(params.time_cost + 1, round(target_seconds / per_pass))
        params = _with(params, time_cost=min(MAX_TIME_COST, wanted))
        seconds = measure(params)
    log_event(logger, "admin_kdf_tuned", time_cost=params.time_cost, memory_kib=params.memory_cost,
              parallelism=params.parallelism, ms=round(seconds * 1000))
    return TunedParameters(params, seconds)


def _with(params: Parameters, **changes: int) -> Parameters:
    values = {f: getattr(params, f) for f in
              ("type", "version", "salt_len", "hash_len", "time_cost", "memory_cost", "parallelism")}
    values.update(changes)
    return Parameters(**values)


def check_new_password(password: str) -> None:
    """`PasswordInputError` unless `password` is acceptable as a new admin password."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordInputError(f"the admin password is too short ({len(password)} characters)",
                                 f"choose one of at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise PasswordInputError("the admin password is too long", f"use at most {MAX_PASSWORD_LENGTH} characters")
    if password.strip() != password:
        raise PasswordInputError("the admin password starts or ends with white space",
                                 "choose one without leading or trailing spaces (they are easy to mistype)")


def hash_password(password: str, params: Parameters) -> str:
    return PasswordHasher.from_parameters(params).hash(password)


@dataclass(frozen=True)
class AdminRecord:
    """What `admin.json` holds: the encoded hash (parameters included) and when it was set."""

    password_hash: str
    set_at: datetime
    tuned_ms: int
    vault_id: str | None = None  # the vault written together with this password (finishes an interrupted change)

    @property
    def parameters(self) -> Parameters:
        return argon2.extract_parameters(self.password_hash)

    def to_json(self) -> bytes:
        return json.dumps({"version": 1, "password_hash": self.password_hash, "set_at": format_time(self.set_at),
                           "tuned_ms": self.tuned_ms, "vault_id": self.vault_id}, indent=2).encode()

    @classmethod
    def from_json(cls, data: bytes) -> AdminRecord:
        raw = json.loads(data)
        vault_id = raw.get("vault_id")
        record = cls(str(raw["password_hash"]), parse_time(raw["set_at"]), int(raw["tuned_ms"]),
                     None if vault_id is None else str(vault_id))
        record.parameters  # noqa: B018 — raises InvalidHashError for a damaged hash
        return record


class AdminPassword:
    """The admin password of one admin directory: set, verify (counted), change."""

    def __init__(self, paths: AdminPaths, clock: Clock | None = None, attempts: FailedAttempts | None = None) -> None:
        self.paths = paths
        self.clock = clock or SystemClock()
        self.attempts = attempts or FailedAttempts(paths.attempts_file, paths.attempts_lock, self.clock)

    def is_initialised(self) -> bool:
        return self.paths.admin_file.exists()

    def record(self) -> AdminRecord:
        try:
            data = self.paths.admin_file.read_bytes()
        except FileNotFoundError:
            raise AdminNotInitialisedError(self.paths.directory) from None
        try:
            return AdminRecord.from_json(data)
        except (ValueError, KeyError, TypeError, InvalidHashError) as exc:
            raise SecurityError(
                f"{self.paths.admin_file} is damaged ({type(exc).__name__})",
                "restore it from a backup; if there is none, `risk-manager admin init --wipe` sets a new "
                "password and deletes the stored credentials",
            ) from exc

    def set(self, new_password: str, tuned: TunedParameters, vault_id: str | None = None) -> AdminRecord:
        """Write a new hash (no check of the old one: callers verify first). Clears the failure count."""
        check_new_password(new_password)
        record = AdminRecord(hash_password(new_password, tuned.params), self.clock.now(), round(tuned.seconds * 1000),
                             vault_id)
        self.paths.ensure()
        write_private_atomic(self.paths.admin_file, record.to_json())
        self.attempts.record_success()
        p = tuned.params
        log_event(logger, "admin_password_set", time_cost=p.time_cost, memory_kib=p.memory_cost,
                  parallelism=p.parallelism)
        return record

    def verify(self, password: str, who: str = "", terminal: str = "") -> None:
        """Return if `password` is right; else `WrongPasswordError` (counted) or `PasswordBackoffError`."""
        record = self.record()
        self.paths.check()
        with self.attempts.guard():
            try:
                PasswordHasher.from_parameters(record.parameters).verify(record.password_hash, password)
            except VerificationError:
                state = self.attempts.record_failure()
                remaining = self.attempts.remaining(state)
                log_event(logger, "admin_password_failed", logging.WARNING, failures=state.failures,
                          remaining=remaining, who=who, terminal=terminal)
                raise WrongPasswordError(state.failures, remaining) from None
            self.attempts.record_success()
        log_event(logger, "admin_password_verified", who=who, terminal=terminal)
