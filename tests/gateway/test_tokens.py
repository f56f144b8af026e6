"""Token parsing, encrypted storage and the refresh logic (the Gateway side is faked here; the
same behaviour is exercised against the simulator in test_client_sim.py)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from risk_manager.domain import VirtualClock
from risk_manager.gateway import EncryptedTokenStore, MemoryTokenStore, TokenManager, TokenStoreError, jwt_expiry
from risk_manager.gateway.config import AuthenticationConfig, StorageConfig
from risk_manager.gateway.tokens import build_token_store, parse_key

T0 = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)


def make_jwt(exp: float, sub: str = "demo") -> str:
    def b64(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
    return f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64({'sub': sub, 'exp': exp, 'jti': secrets.token_hex(4)})}.sig"


def test_jwt_expiry() -> None:
    assert jwt_expiry(make_jwt(1_800_000_000)) == 1_800_000_000
    for bad in ("abc", "a.b.c", make_jwt(1).split(".")[0] + "." + base64.urlsafe_b64encode(b'{"x":1}').decode()
                + ".s"):
        with pytest.raises(ValueError, match="token"):
            jwt_expiry(bad)


def test_encrypted_store_roundtrip_permissions_and_no_plaintext(tmp_path: Path) -> None:
    key = secrets.token_bytes(32)
    path = tmp_path / "sub" / "token.enc"
    store = EncryptedTokenStore(path, key)
    token = make_jwt(1_800_000_000)
    store.save("demo", token)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    blob = path.read_bytes()
    assert token.encode() not in blob and token.split(".")[1].encode() not in blob
    assert store.load("demo") == token
    assert store.load("someone-else") is None
    assert EncryptedTokenStore(path, secrets.token_bytes(32)).load("demo") is None  # wrong key
    path.write_bytes(blob[:-3] + b"xyz")
    assert store.load("demo") is None  # corrupt
    path.write_bytes(b"garbage")
    assert store.load("demo") is None


def test_key_parsing_and_store_selection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = secrets.token_bytes(32)
    assert parse_key(base64.b64encode(raw).decode(), "x") == raw
    assert parse_key(raw.hex(), "x") == raw
    with pytest.raises(TokenStoreError, match="32-byte key"):
        parse_key("short", "RISK_MANAGER_TOKEN_KEY")
    config = StorageConfig(type="encrypted", path=tmp_path / "t.enc", key_env="RM_TEST_KEY")
    monkeypatch.delenv("RM_TEST_KEY", raising=False)
    assert isinstance(build_token_store(config), MemoryTokenStore)  # no key: memory, logged
    monkeypatch.setenv("RM_TEST_KEY", base64.b64encode(raw).decode())
    assert isinstance(build_token_store(config), EncryptedTokenStore)
    assert isinstance(build_token_store(StorageConfig(type="memory")), MemoryTokenStore)


class FakeGateway:
    """Login/validate counters with a controllable answer; the token lifetime follows the clock."""

    def __init__(self, clock: VirtualClock, lifetime: float = 86400) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.logins = 0
        self.validates = 0
        self.validate_ok = True

    async def login_key(self) -> str:
        self.logins += 1
        await asyncio.sleep(0.01)
        return make_jwt(self.clock.timestamp() + self.lifetime)

    async def validate_token(self, token: str) -> str | None:
        self.validates += 1
        await asyncio.sleep(0.01)
        return make_jwt(self.clock.timestamp() + self.lifetime) if self.validate_ok else None


async def test_refresh_at_buffer_one_refresh_for_many_callers_and_login_fallback() -> None:
    clock = VirtualClock(T0)
    gw = FakeGateway(clock)
    manager = TokenManager(gw, "demo", AuthenticationConfig(), clock)
    first = await manager.get_valid_token()
    assert gw.logins == 1
    clock.advance(21 * 3600)  # 3 h left: not yet inside the 2 h buffer
    assert await manager.get_valid_token() == first
    clock.advance(3600 + 1)  # inside the buffer
    tokens = await asyncio.gather(*(manager.get_valid_token() for _ in range(50)))
    assert len(set(tokens)) == 1 and tokens[0] != first
    assert gw.validates == 1 and gw.logins == 1
    gw.validate_ok = False
    clock.advance(22 * 3600 + 1)
    await asyncio.gather(*(manager.get_valid_token() for _ in range(10)))
    assert gw.validates == 2 and gw.logins == 2  # validate refused → one login


async def test_invalidate_once_and_short_tokens_use_half_life(tmp_path: Path) -> None:
    clock = VirtualClock(T0)
    gw = FakeGateway(clock, lifetime=60)  # shorter than the 2 h buffer
    store = EncryptedTokenStore(tmp_path / "t.enc", secrets.token_bytes(32))
    manager = TokenManager(gw, "demo", AuthenticationConfig(), clock, store)
    await manager.start()
    try:
        token = await manager.get_valid_token()
        clock.advance(29)
        assert await manager.get_valid_token() == token  # half-life 30 s
        await asyncio.gather(*(manager.invalidate(token) for _ in range(20)))
        new = await manager.get_valid_token()
        assert new != token and gw.validates == 1
        assert store.load("demo") == new
        # a second manager starts from the stored token without logging in
        other = TokenManager(gw, "demo", AuthenticationConfig(), clock, store)
        await other.start()
        assert await other.get_valid_token() == new and gw.logins == 1
        await other.aclose()
    finally:
        await manager.aclose()


async def test_proactive_refresh_in_background() -> None:
    clock = VirtualClock(T0)
    gw = FakeGateway(clock, lifetime=2.0)
    manager = TokenManager(gw, "demo", AuthenticationConfig(), clock)
    await manager.start()
    try:
        clock.advance(1.5)  # past the half-life deadline; nobody calls get_valid_token
        for _ in range(100):
            if gw.validates:
                break
            await asyncio.sleep(0.02)
        assert gw.validates == 1
    finally:
        await manager.aclose()


def test_key_from_the_os_keyring_is_created_once_and_reused(tmp_path: Path) -> None:
    keyring = pytest.importorskip("keyring")
    backend_module = pytest.importorskip("keyring.backend")

    class MemoryKeyring(backend_module.KeyringBackend):  # type: ignore[misc]
        priority = 1  # type: ignore[assignment]

        def __init__(self) -> None:
            super().__init__()
            self.items: dict[tuple[str, str], str] = {}

        def get_password(self, service: str, username: str) -> str | None:
            return self.items.get((service, username))

        def set_password(self, service: str, username: str, password: str) -> None:
            self.items[(service, username)] = password

        def delete_password(self, service: str, username: str) -> None:
            self.items.pop((service, username), None)

    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        config = StorageConfig(type="encrypted", key_source="keyring", path=tmp_path / "t.enc")
        first = build_token_store(config)
        assert isinstance(first, EncryptedTokenStore)
        first.save("demo", make_jwt(1_800_000_000))
        assert len(backend.items) == 1
        second = build_token_store(config)  # same key from the keyring: reads the file
        assert isinstance(second, EncryptedTokenStore) and second.load("demo") is not None
    finally:
        keyring.set_keyring(previous)
