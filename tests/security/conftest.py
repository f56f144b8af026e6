from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import argon2
import keyring
import keyring.backend
import pytest
from argon2 import Parameters

from risk_manager.domain import VirtualClock
from risk_manager.security import password as password_module
from risk_manager.security.password import TunedParameters
from risk_manager.security.paths import AdminPaths

START = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)

# Cheap but real argon2id parameters, so a test verifies in microseconds instead of 250 ms.
CHEAP = TunedParameters(Parameters(type=argon2.Type.ID, version=19, salt_len=16, hash_len=32, time_cost=1,
                                   memory_cost=64, parallelism=1), 0.001)

ADMIN_PW = "calm-self-2026"
API_KEY = "pXk3-9fQz-7hTe-Lm2w-Rr8v-Yb4n-QqZ1"
USER = "trader.joe"


class MemoryKeyring(keyring.backend.KeyringBackend):
    """An in-memory OS keyring for tests (the real backends need a desktop session)."""

    priority = 10  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.items.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError(username)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(START)


@pytest.fixture
def paths(tmp_path: Path) -> AdminPaths:
    return AdminPaths(tmp_path / "admin").ensure()


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture(autouse=True)
def no_keyring() -> Iterator[None]:
    """By default no test touches the developer's real OS keyring: it looks absent."""
    previous = keyring.get_keyring()
    from keyring.backends import fail

    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(previous)


@pytest.fixture
def cheap_tuning(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `admin init`/`change-password` skip the ~1 s tuning and use `CHEAP`."""
    monkeypatch.setattr(password_module, "tune_parameters", lambda *a, **k: CHEAP)
