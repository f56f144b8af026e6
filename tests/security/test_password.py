from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import argon2
import pytest
from argon2 import Parameters

from risk_manager.domain import VirtualClock
from risk_manager.security.errors import (
    AdminNotInitialisedError,
    PasswordBackoffError,
    PasswordInputError,
    SecurityError,
    WrongPasswordError,
)
from risk_manager.security.password import (
    MEMORY_KIB,
    MIN_MEMORY_KIB,
    AdminPassword,
    check_new_password,
    tune_parameters,
)
from risk_manager.security.paths import AdminPaths
from tests.security.conftest import ADMIN_PW, CHEAP


def test_hash_embeds_its_parameters_and_never_the_password(paths: AdminPaths, clock: VirtualClock) -> None:
    admin = AdminPassword(paths, clock)
    admin.set(ADMIN_PW, CHEAP)
    text = paths.admin_file.read_text()
    assert ADMIN_PW not in text
    record = admin.record()
    assert record.password_hash.startswith("$argon2id$v=19$m=64,t=1,p=1$")
    assert record.parameters == CHEAP.params
    admin.verify(ADMIN_PW)


def test_verify_before_init_says_to_run_init(paths: AdminPaths, clock: VirtualClock) -> None:
    with pytest.raises(AdminNotInitialisedError, match="admin init"):
        AdminPassword(paths, clock).verify(ADMIN_PW)


def test_wrong_password_is_refused_and_counted(paths: AdminPaths, clock: VirtualClock,
                                               caplog: pytest.LogCaptureFixture) -> None:
    admin = AdminPassword(paths, clock)
    admin.set(ADMIN_PW, CHEAP)
    with pytest.raises(WrongPasswordError) as first:
        admin.verify("not-the-password")
    assert (first.value.failures, first.value.remaining) == (1, 4)
    with pytest.raises(WrongPasswordError) as second:
        admin.verify("still-wrong")
    assert (second.value.failures, second.value.remaining) == (2, 3)
    failures = [r.getMessage() for r in caplog.records if "admin_password_failed" in r.getMessage()]
    assert len(failures) == 2
    assert all("not-the-password" not in m and "still-wrong" not in m for m in failures)
    admin.verify(ADMIN_PW)
    assert admin.attempts.state().failures == 0  # a success clears the count


def test_five_failures_start_a_backoff_that_refuses_even_the_right_password(
        paths: AdminPaths, clock: VirtualClock) -> None:
    admin = AdminPassword(paths, clock)
    admin.set(ADMIN_PW, CHEAP)
    for _ in range(4):
        with pytest.raises(WrongPasswordError):
            admin.verify("wrong-password")
    with pytest.raises(WrongPasswordError, match="5 in a row: attempts are refused for the next 5 minutes"):
        admin.verify("wrong-password")
    with pytest.raises(PasswordBackoffError) as refused:
        admin.verify(ADMIN_PW)
    assert refused.value.until == clock.now() + timedelta(minutes=5)
    assert "wait 300 s" in str(refused.value)
    clock.advance(timedelta(minutes=4, seconds=59))
    with pytest.raises(PasswordBackoffError, match="wait 1 s"):
        admin.verify(ADMIN_PW)


def test_backoff_expires_and_the_count_starts_again(paths: AdminPaths, clock: VirtualClock) -> None:
    admin = AdminPassword(paths, clock)
    admin.set(ADMIN_PW, CHEAP)
    for _ in range(5):
        with pytest.raises(WrongPasswordError):
            admin.verify("wrong-password")
    clock.advance(timedelta(minutes=5))
    with pytest.raises(WrongPasswordError) as again:
        admin.verify("wrong-password")
    assert again.value.remaining == 4
    admin.verify(ADMIN_PW)


def test_backoff_survives_a_state_reload(paths: AdminPaths, clock: VirtualClock) -> None:
    AdminPassword(paths, clock).set(ADMIN_PW, CHEAP)
    for _ in range(5):
        with pytest.raises(WrongPasswordError):
            AdminPassword(paths, clock).verify("wrong-password")  # a fresh object each time, as a new process
    with pytest.raises(PasswordBackoffError):
        AdminPassword(paths, clock).verify(ADMIN_PW)
    assert oct(paths.attempts_file.stat().st_mode & 0o777) == "0o600"


def _cli(config: Path, stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "risk_manager", "admin", *args, "--config", str(config),
                           "--password-stdin"], input=stdin, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, check=False)


def test_backoff_is_shared_with_another_process(paths: AdminPaths) -> None:
    admin = AdminPassword(paths)  # system clock: the child process uses it too
    admin.set(ADMIN_PW, CHEAP)
    child = _cli(paths.directory, "wrong-password\n", "accounts", "list")
    assert child.returncode == 3, child.stderr
    assert "wrong admin password" in child.stderr
    assert admin.attempts.state().failures == 1  # counted by the child, seen here
    for _ in range(4):
        with pytest.raises(WrongPasswordError):
            admin.verify("wrong-password")
    child = _cli(paths.directory, f"{ADMIN_PW}\n", "accounts", "list")
    assert child.returncode == 3
    assert "too many wrong admin passwords" in child.stderr


def test_an_unreadable_counter_fails_closed(paths: AdminPaths, clock: VirtualClock) -> None:
    admin = AdminPassword(paths, clock)
    admin.set(ADMIN_PW, CHEAP)
    paths.attempts_file.touch(mode=0o600)
    paths.attempts_file.write_text("{not json")
    with pytest.raises(PasswordBackoffError):
        admin.verify(ADMIN_PW)


def test_a_damaged_admin_file_is_a_clear_error(paths: AdminPaths, clock: VirtualClock) -> None:
    admin = AdminPassword(paths, clock)
    admin.set(ADMIN_PW, CHEAP)
    paths.admin_file.write_text('{"password_hash": "$argon2id$garbage", "set_at": "2026-01-01T00:00:00Z",'
                                ' "tuned_ms": 1}')
    with pytest.raises(SecurityError, match=r"admin\.json is damaged"):
        admin.verify(ADMIN_PW)


@pytest.mark.parametrize(("password", "problem"), [
    ("short", "too short"), (" padded-password", "white space"), ("x" * 2000, "too long")])
def test_new_password_policy(password: str, problem: str) -> None:
    with pytest.raises(PasswordInputError, match=problem):
        check_new_password(password)


def _fake_machine(seconds_per_pass_per_mib: float):  # type: ignore[no-untyped-def]
    def measure(params: Parameters) -> float:
        return params.time_cost * params.memory_cost / 1024 * seconds_per_pass_per_mib
    return measure


def test_tuning_raises_time_cost_to_reach_the_target() -> None:
    tuned = tune_parameters(0.25, measure=_fake_machine(0.0003))  # 64 MiB pass = 19.2 ms
    assert tuned.params.type is argon2.Type.ID
    assert tuned.params.memory_cost == MEMORY_KIB
    assert tuned.params.time_cost == 13
    assert 0.225 <= tuned.seconds <= 0.3


def test_tuning_on_a_slow_machine_lowers_memory_but_not_below_the_floor() -> None:
    tuned = tune_parameters(0.25, measure=_fake_machine(0.02))  # 64 MiB pass = 1.28 s
    assert tuned.params.time_cost == 1
    assert tuned.params.memory_cost >= MIN_MEMORY_KIB
    assert tuned.params.memory_cost < MEMORY_KIB


def test_tuning_on_this_machine_lands_near_the_target() -> None:
    tuned = tune_parameters(0.05)
    assert 0.03 <= tuned.seconds <= 0.5


_GUESS = """
import sys
from pathlib import Path
from risk_manager.security.errors import PasswordBackoffError, WrongPasswordError
from risk_manager.security.password import AdminPassword
from risk_manager.security.paths import AdminPaths
try:
    AdminPassword(AdminPaths(Path(sys.argv[1]))).verify("wrong-password")
except WrongPasswordError:
    print("checked")
except PasswordBackoffError:
    print("refused")
"""


def test_parallel_processes_cannot_race_past_the_count(paths: AdminPaths) -> None:
    AdminPassword(paths).set(ADMIN_PW, CHEAP)
    children = [subprocess.Popen([sys.executable, "-c", _GUESS, str(paths.directory)], stdout=subprocess.PIPE,
                                 text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
                for _ in range(7)]
    outcomes = sorted(child.communicate(timeout=60)[0].strip() for child in children)
    # Exactly 5 guesses were checked; the others waited for the lock, then met the back-off.
    assert outcomes == ["checked"] * 5 + ["refused"] * 2
    state = AdminPassword(paths).attempts.state()
    assert state.failures == 5 and state.locked_until is not None
