"""Session tokens: JWT expiry, proactive refresh, one refresh at a time, storage at rest.

`TokenManager.get_valid_token()` is what every REST call and every hub (re)connect uses. It
returns the held token while it is before its refresh deadline; otherwise one caller refreshes
(`Auth/validate`, falling back to `Auth/loginKey` when validate fails, answers 401 or an error
code) while the others wait for that same refresh. A background task refreshes proactively at the
deadline, so a long-running daemon never holds an expiring token.

The refresh deadline is `exp - bufferSeconds` (2 h on a 24 h token). When a token lives less than
twice the buffer (short test tokens), the deadline is the token's half-life instead, so a short
token is not refreshed on every call. All of this reads the injected `Clock`.

Storage: `MemoryTokenStore` (nothing on disk) or `EncryptedTokenStore` — AES-256-GCM, key from an
environment variable or the OS keyring (the optional `keyring` package), file created 0600. A
corrupt file or a wrong key is logged as a clear error and leads to a fresh login, never a crash.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from risk_manager.domain import Clock, SystemClock
from risk_manager.gateway.config import AuthenticationConfig, StorageConfig
from risk_manager.gateway.errors import AuthenticationError, GatewayError, TokenStoreError
from risk_manager.logs import log_event

log = logging.getLogger("risk_manager.gateway.tokens")

_MAGIC = b"RMTK1"
_KEYRING_SERVICE = "risk-manager"
_KEYRING_USER = "token-key"


def jwt_expiry(token: str) -> float:
    """The numeric `exp` (POSIX seconds) of a JWT-shaped token, read without verifying the signature."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("a session token must be a JWT with three dot-separated parts")
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"the token payload is not base64url JSON ({exc})") from None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise ValueError("the token payload has no numeric 'exp' claim")
    return float(exp)


@dataclass(frozen=True, slots=True)
class SessionToken:
    value: str
    expires_at: float  # POSIX seconds (the JWT exp)
    obtained_at: float  # POSIX seconds, on the manager's clock
    revoked: bool = False  # the Gateway refused it (401): refresh before using it again

    def refresh_at(self, buffer_s: float) -> float:
        return max(self.expires_at - buffer_s, self.obtained_at + (self.expires_at - self.obtained_at) / 2)


class TokenStore(Protocol):
    def load(self, user_name: str) -> str | None: ...
    def save(self, user_name: str, token: str) -> None: ...
    def clear(self) -> None: ...


class MemoryTokenStore:
    """Keeps nothing on disk; the token lives only in the manager's memory."""

    def load(self, user_name: str) -> str | None:
        return None

    def save(self, user_name: str, token: str) -> None:
        return None

    def clear(self) -> None:
        return None


def parse_key(text: str, source: str) -> bytes:
    """A 32-byte AES key from base64 (standard or url-safe) or 64 hex characters."""
    text = text.strip()
    candidates: list[bytes] = []
    if len(text) == 64:
        with contextlib.suppress(ValueError):
            candidates.append(bytes.fromhex(text))
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        with contextlib.suppress(binascii.Error, ValueError):
            candidates.append(decode(text + "=" * (-len(text) % 4)))
    for key in candidates:
        if len(key) == 32:
            return key
    raise TokenStoreError(
        f"{source} must hold a 32-byte key as base64 or 64 hex characters; generate one with: "
        "python -c \"import secrets,base64;print(base64.b64encode(secrets.token_bytes(32)).decode())\"")


def key_from_environment(var: str) -> bytes:
    value = os.environ.get(var)
    if not value:
        raise TokenStoreError(f"environment variable {var} is not set; it must hold the 32-byte token key "
                              "(base64), or set authentication.storage.type: memory")
    return parse_key(value, f"environment variable {var}")


def key_from_keyring() -> bytes:
    """The token key from the OS keyring (created there on first use). Needs the optional `keyring` package."""
    try:
        import keyring  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise TokenStoreError("authentication.storage.keySource is 'keyring' but the 'keyring' package is not "
                              "installed (pip install keyring), or use keySource: environment") from None
    try:
        stored = keyring.get_password(_KEYRING_SERVICE, _KEYRING_USER)
        if not stored:
            stored = base64.b64encode(secrets.token_bytes(32)).decode()
            keyring.set_password(_KEYRING_SERVICE, _KEYRING_USER, stored)
    except Exception as exc:  # no backend (headless server), locked keychain, ...
        raise TokenStoreError(f"the OS keyring is not usable ({type(exc).__name__}: {exc}); use "
                              "authentication.storage.keySource: environment") from exc
    return parse_key(str(stored), "the OS keyring entry risk-manager/token-key")


class EncryptedTokenStore:
    """The session token at rest, AES-256-GCM encrypted, in a file only its owner can read (0600).

    File layout: `RMTK1` magic, 12-byte nonce, ciphertext+tag of `{"user": ..., "token": ...}`;
    the magic is authenticated as associated data.
    """

    def __init__(self, path: Path, key: bytes) -> None:
        if len(key) != 32:
            raise TokenStoreError("the token key must be 32 bytes (AES-256)")
        # Imported here: a daemon that keeps its tokens in memory never loads cryptography (≈ 6.7 MB).
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self.path = path
        self._aead = AESGCM(key)

    def load(self, user_name: str) -> str | None:
        try:
            blob = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log_event(log, "token_store_unreadable", logging.ERROR, path=str(self.path), error=str(exc))
            return None
        try:
            if not blob.startswith(_MAGIC) or len(blob) < len(_MAGIC) + 12 + 16:
                raise TokenStoreError("not a risk-manager token file")
            nonce = blob[len(_MAGIC):len(_MAGIC) + 12]
            from cryptography.exceptions import InvalidTag  # loaded with AESGCM in __init__

            try:
                plain = self._aead.decrypt(nonce, blob[len(_MAGIC) + 12:], _MAGIC)
            except InvalidTag:
                raise TokenStoreError("wrong key or corrupt file (authentication tag mismatch)") from None
            record = json.loads(plain)
            if not isinstance(record, dict) or not isinstance(record.get("token"), str):
                raise TokenStoreError("decrypted content is not a token record")
        except (TokenStoreError, ValueError) as exc:
            log_event(log, "token_store_invalid", logging.ERROR, path=str(self.path), error=str(exc),
                      action="ignoring the file and logging in again")
            return None
        if record.get("user") != user_name:
            return None
        return str(record["token"])

    def save(self, user_name: str, token: str) -> None:
        nonce = secrets.token_bytes(12)
        blob = _MAGIC + nonce + self._aead.encrypt(nonce, json.dumps({"user": user_name, "token": token}).encode(),
                                                   _MAGIC)
        tmp = self.path.with_name(self.path.name + f".tmp{os.getpid()}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(blob)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except OSError as exc:
            log_event(log, "token_store_write_failed", logging.ERROR, path=str(self.path), error=str(exc),
                      action="keeping the token in memory only")
            with contextlib.suppress(OSError):  # no temp file to remove when its directory is unusable
                tmp.unlink(missing_ok=True)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def build_token_store(config: StorageConfig) -> TokenStore:
    """The store `authentication.storage` asks for. An encrypted store whose key is unavailable is
    logged as an error and replaced by memory-only storage (never a plaintext file)."""
    if config.type == "memory":
        return MemoryTokenStore()
    try:
        key = key_from_environment(config.key_env) if config.key_source == "environment" else key_from_keyring()
    except TokenStoreError as exc:
        log_event(log, "token_store_key_unavailable", logging.ERROR, error=str(exc),
                  action="keeping the token in memory only")
        return MemoryTokenStore()
    return EncryptedTokenStore(config.path, key)


class Authenticator(Protocol):
    """The two raw calls the manager needs (implemented by `GatewayClient`, without the token path)."""

    async def login_key(self) -> str: ...

    async def validate_token(self, token: str) -> str | None:
        """A new token, or None when the Gateway refused (401 / errorCode); raises on transport errors."""
        ...


TokenListener = Callable[[str], Awaitable[None] | None]


class TokenManager:
    def __init__(self, auth: Authenticator, user_name: str, config: AuthenticationConfig | None = None,
                 clock: Clock | None = None, store: TokenStore | None = None) -> None:
        self._auth = auth
        self._user = user_name
        self._config = config or AuthenticationConfig()
        self._clock = clock or SystemClock()
        self._store: TokenStore = store or MemoryTokenStore()
        self._token: SessionToken | None = None
        self._lock = asyncio.Lock()
        self._listeners: list[TokenListener] = []
        self._refresher: asyncio.Task[None] | None = None
        self.refreshes = 0  # validate successes
        self.logins = 0

    @property
    def buffer_s(self) -> float:
        return float(self._config.token_refresh.buffer_seconds)

    @property
    def token(self) -> SessionToken | None:
        return self._token

    def on_new_token(self, listener: TokenListener) -> None:
        self._listeners.append(listener)

    def _fresh(self, token: SessionToken | None) -> bool:
        return (token is not None and not token.revoked
                and self._clock.timestamp() < token.refresh_at(self.buffer_s))

    def _adopt(self, value: str) -> SessionToken | None:
        try:
            exp = jwt_expiry(value)
        except ValueError as exc:
            # Without an exp we cannot plan a refresh; assume the documented 24 h lifetime.
            log_event(log, "token_exp_unreadable", logging.WARNING, error=str(exc), assumed_lifetime_s=86400)
            exp = self._clock.timestamp() + 86400
        return SessionToken(value, exp, self._clock.timestamp())

    async def start(self) -> None:
        """Load a stored token (if still fresh) or log in; then keep refreshing it in the background."""
        stored = self._store.load(self._user)
        if stored is not None:
            candidate = self._adopt(stored)
            if self._fresh(candidate):
                self._token = candidate
                log_event(log, "token_loaded_from_store", expires_in_s=round(candidate.expires_at -  # type: ignore[union-attr]
                                                                              self._clock.timestamp()))
        await self.get_valid_token()
        if self._refresher is None:
            self._refresher = asyncio.create_task(self._refresh_loop(), name="token-refresh")

    async def aclose(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None

    async def get_valid_token(self) -> str:
        token = self._token
        if token is not None and self._fresh(token):
            return token.value
        async with self._lock:
            if self._token is not None and self._fresh(self._token):
                return self._token.value  # someone else refreshed while we waited
            return (await self._refresh()).value

    async def invalidate(self, rejected: str) -> None:
        """The Gateway refused `rejected` (401): make the next `get_valid_token` refresh — once, however
        many concurrent callers report the same token."""
        async with self._lock:
            if self._token is not None and self._token.value == rejected:
                log_event(log, "token_rejected", logging.WARNING, action="refreshing")
                self._token = SessionToken(rejected, self._token.expires_at, self._token.obtained_at, revoked=True)

    async def force_login(self) -> str:
        """A fresh `Auth/loginKey` (after a `GatewayLogout`)."""
        async with self._lock:
            return (await self._login()).value

    async def _refresh(self) -> SessionToken:
        current = self._token
        now = self._clock.timestamp()
        if current is not None and now < current.expires_at:
            try:
                new_value = await self._auth.validate_token(current.value)
            except GatewayError as exc:
                log_event(log, "token_validate_failed", logging.WARNING, error=str(exc), action="logging in")
                new_value = None
            if new_value:
                self.refreshes += 1
                return await self._install(new_value, "validate")
            log_event(log, "token_validate_refused", logging.WARNING, action="logging in")
        return await self._login()

    async def _login(self) -> SessionToken:
        delays = self._config.token_refresh.retry_delay_ms
        attempts = self._config.token_refresh.max_retries + 1
        last: Exception | None = None
        for attempt in range(attempts):
            try:
                value = await self._auth.login_key()
            except AuthenticationError:
                raise
            except GatewayError as exc:
                last = exc
                log_event(log, "login_failed", logging.WARNING, attempt=attempt + 1, of=attempts, error=str(exc))
                if attempt + 1 < attempts:
                    await asyncio.sleep(delays[min(attempt, len(delays) - 1)] / 1000.0 if delays else 0)
                continue
            self.logins += 1
            return await self._install(value, "login")
        assert last is not None
        raise last

    async def _install(self, value: str, how: str) -> SessionToken:
        token = self._adopt(value)
        assert token is not None
        self._token = token
        log_event(log, "token_obtained", how=how, expires_in_s=round(token.expires_at - self._clock.timestamp()),
                  refresh_in_s=round(token.refresh_at(self.buffer_s) - self._clock.timestamp()))
        self._store.save(self._user, value)
        for listener in list(self._listeners):
            try:
                result = listener(value)
                if result is not None:
                    await result
            except Exception as exc:  # a listener's bug must not break token refresh
                log_event(log, "token_listener_failed", logging.ERROR, error=repr(exc))
        return token

    async def _refresh_loop(self) -> None:
        """Proactive refresh at the deadline. Sleeps in steps of at most 5 s so a virtual clock that
        jumps forward is noticed."""
        while True:
            token = self._token
            wait = 5.0
            if token is not None:
                wait = min(5.0, max(0.0, token.refresh_at(self.buffer_s) - self._clock.timestamp()))
            await asyncio.sleep(wait)
            if not self._fresh(self._token):
                try:
                    await self.get_valid_token()
                except Exception as exc:  # keep the loop alive; callers see the error on their own calls
                    log_event(log, "token_proactive_refresh_failed", logging.ERROR, error=str(exc))
                    await asyncio.sleep(1.0)

