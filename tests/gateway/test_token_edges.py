"""Token storage and refresh edge cases: whatever is wrong with the file, the key or the Gateway's
answers, the manager logs a clear line and gets a working token — it never crashes the daemon."""

from __future__ import annotations

import asyncio
import secrets
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from risk_manager.domain import VirtualClock
from risk_manager.gateway import EncryptedTokenStore, GatewayError, TokenManager, TokenStoreError
from risk_manager.gateway.config import AuthenticationConfig, StorageConfig
from risk_manager.gateway.errors import AuthenticationError, TransportError
from risk_manager.gateway.tokens import build_token_store, key_from_keyring

from .test_tokens import T0, FakeGateway, make_jwt

KEY = secrets.token_bytes(32)


def test_unreadable_or_foreign_content_is_ignored_with_a_log_line(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "a-directory").mkdir()
    assert EncryptedTokenStore(tmp_path / "a-directory", KEY).load("demo") is None
    assert "token_store_unreadable" in caplog.text
    # the documented layout (magic, nonce, AES-GCM with the magic as associated data) around a non-record
    nonce = secrets.token_bytes(12)
    (tmp_path / "list.enc").write_bytes(b"RMTK1" + nonce + AESGCM(KEY).encrypt(nonce, b"[1, 2]", b"RMTK1"))
    assert EncryptedTokenStore(tmp_path / "list.enc", KEY).load("demo") is None
    assert "decrypted content is not a token record" in caplog.text
    store = EncryptedTokenStore(tmp_path / "t.enc", KEY)
    store.save("someone-else", make_jwt(1_800_000_000))
    assert store.load("demo") is None  # another user's token is never used
    store.clear()
    assert not store.path.exists()
    store.clear()  # nothing to remove: fine
    with pytest.raises(TokenStoreError, match="32 bytes"):
        EncryptedTokenStore(tmp_path / "t.enc", b"short")


async def test_a_store_that_cannot_be_written_does_not_break_login(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    store = EncryptedTokenStore(blocker / "token.enc", KEY)
    manager = TokenManager(FakeGateway(VirtualClock(T0)), "demo", store=store, clock=VirtualClock(T0))
    assert await manager.get_valid_token()  # logged in; the file could not be written
    assert "token_store_write_failed" in caplog.text and "not-a-directory" in caplog.text
    assert store.load("demo") is None


def test_keyring_missing_or_unusable_falls_back_to_memory(monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "keyring", None)  # not installed
    with pytest.raises(TokenStoreError, match="'keyring' package is not installed"):
        key_from_keyring()

    def locked(service: str, user: str) -> str:
        raise RuntimeError("keychain locked")

    monkeypatch.setitem(sys.modules, "keyring", SimpleNamespace(get_password=locked))
    with pytest.raises(TokenStoreError, match=r"OS keyring is not usable \(RuntimeError: keychain locked\)"):
        key_from_keyring()
    config = StorageConfig(type="encrypted", key_source="keyring")
    assert not isinstance(build_token_store(config), EncryptedTokenStore)
    assert "token_store_key_unavailable" in caplog.text


async def test_expired_stored_token_means_login_and_listeners_get_each_new_token(tmp_path: Path) -> None:
    clock = VirtualClock(T0)
    gw = FakeGateway(clock)
    store = EncryptedTokenStore(tmp_path / "t.enc", KEY)
    store.save("demo", make_jwt(clock.timestamp() - 10))  # expired while the daemon was down
    manager = TokenManager(gw, "demo", AuthenticationConfig(), clock, store)
    seen_sync: list[str] = []
    seen_async: list[str] = []

    async def async_listener(token: str) -> None:
        seen_async.append(token)

    def broken(token: str) -> None:
        raise RuntimeError("listener bug")

    manager.on_new_token(broken)
    manager.on_new_token(seen_sync.append)
    manager.on_new_token(async_listener)
    await manager.start()
    try:
        assert gw.logins == 1
        assert manager.token is not None and seen_sync == seen_async == [manager.token.value]
        forced = await manager.force_login()
        assert gw.logins == 2 and seen_sync[-1] == forced == store.load("demo")
    finally:
        await manager.aclose()


async def test_token_without_exp_is_assumed_to_live_24_hours(caplog: pytest.LogCaptureFixture) -> None:
    clock = VirtualClock(T0)

    class OpaqueTokens(FakeGateway):
        async def login_key(self) -> str:
            self.logins += 1
            return "opaque-session-token"

    manager = TokenManager(OpaqueTokens(clock), "demo", AuthenticationConfig(), clock)
    assert await manager.get_valid_token() == "opaque-session-token"
    assert manager.token is not None and manager.token.expires_at == clock.timestamp() + 86400
    assert "token_exp_unreadable" in caplog.text


async def test_validate_failing_on_the_network_falls_back_to_login() -> None:
    clock = VirtualClock(T0)

    class FlakyValidate(FakeGateway):
        async def validate_token(self, token: str) -> str | None:
            self.validates += 1
            raise TransportError("Auth/validate", "connection lost", sent=True)

    gw = FlakyValidate(clock)
    manager = TokenManager(gw, "demo", AuthenticationConfig(), clock)
    first = await manager.get_valid_token()
    await manager.invalidate("some-other-token")  # not the held one: nothing happens
    assert await manager.get_valid_token() == first
    await manager.invalidate(first)
    assert await manager.get_valid_token() != first
    assert (gw.validates, gw.logins) == (1, 2)


async def test_login_refused_is_not_retried_and_transient_failures_are() -> None:
    clock = VirtualClock(T0)
    config = AuthenticationConfig.model_validate({"tokenRefresh": {"maxRetries": 2, "retryDelayMs": [1]}})

    class Failing(FakeGateway):
        def __init__(self, error: GatewayError) -> None:
            super().__init__(clock)
            self.error = error

        async def login_key(self) -> str:
            self.logins += 1
            raise self.error

    refused = Failing(AuthenticationError(3, "InvalidCredentials"))
    with pytest.raises(AuthenticationError):
        await TokenManager(refused, "demo", config, clock).get_valid_token()
    assert refused.logins == 1
    down = Failing(TransportError("Auth/loginKey", "cannot reach the Gateway", sent=False))
    with pytest.raises(TransportError, match="cannot reach the Gateway"):
        await TokenManager(down, "demo", config, clock).get_valid_token()
    assert down.logins == 3  # the first try + tokenRefresh.maxRetries


async def test_background_refresh_survives_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    """A proactive refresh that fails is logged; the loop goes on and the next one succeeds."""
    clock = VirtualClock(T0)

    class SecondLoginDown(FakeGateway):
        async def validate_token(self, token: str) -> str | None:
            self.validates += 1
            return None  # refused: log in again

        async def login_key(self) -> str:
            self.logins += 1
            if self.logins == 2:
                raise AuthenticationError(None, "Gateway maintenance")
            return make_jwt(self.clock.timestamp() + self.lifetime)

    gw = SecondLoginDown(clock, lifetime=0.2)
    manager = TokenManager(gw, "demo", AuthenticationConfig(), clock)
    await manager.start()
    try:
        clock.advance(0.15)  # past the half-life; nobody calls get_valid_token
        for _ in range(300):
            if gw.logins == 3:
                break
            await asyncio.sleep(0.01)
        assert gw.logins == 3 and manager.token is not None
        assert "token_proactive_refresh_failed" in caplog.text and "Gateway maintenance" in caplog.text
    finally:
        await manager.aclose()
