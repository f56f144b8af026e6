"""JWT-shaped session tokens (HS256 with a per-simulator secret), as the Gateway issues them.

Payload: `sub` (user name), `iat`, numeric `exp`, `jti`. `validate` issues a new token and the old
one stays valid until its own `exp`. `logout` revokes a token; the `expire_tokens` fault expires
every token issued so far. Times come from the simulator's clock.

HS256 is written here with `hmac`/`hashlib` rather than taken from PyJWT: the simulator only
issues and checks its own tokens (no key rotation, no other algorithms, no third-party tokens), and
the check must also consult the revocation set and the simulator's clock, which PyJWT would not do
for us — a new dependency for twenty lines of standard-library code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from risk_manager.domain import Clock


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_HEADER = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())


@dataclass(frozen=True, slots=True)
class Session:
    """A valid token's claims."""

    user: str
    jti: str
    issued_at: float
    expires_at: float


class TokenIssuer:
    def __init__(self, clock: Clock, lifetime: timedelta, secret: bytes | None = None) -> None:
        self._clock = clock
        self._lifetime = lifetime.total_seconds()
        self._secret = secret or secrets.token_bytes(32)
        self._issued: set[str] = set()
        self._revoked: set[str] = set()
        self._counter = 0

    def issue(self, user: str) -> str:
        now = self._clock.timestamp()
        self._counter += 1
        jti = f"{self._counter}-{secrets.token_hex(8)}"
        payload: dict[str, Any] = {"sub": user, "iat": int(now), "exp": int(now + self._lifetime), "jti": jti}
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        signing_input = f"{_HEADER}.{body}"
        self._issued.add(jti)
        return f"{signing_input}.{self._sign(signing_input)}"

    def _sign(self, signing_input: str) -> str:
        return _b64(hmac.new(self._secret, signing_input.encode("ascii"), hashlib.sha256).digest())

    def verify(self, token: str) -> Session | None:
        """The session of a valid token; None when malformed, forged, revoked or expired."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            expected = self._sign(f"{parts[0]}.{parts[1]}")
        except UnicodeEncodeError:
            return None
        if not hmac.compare_digest(expected, parts[2]):
            return None
        try:
            claims = json.loads(_unb64(parts[1]))
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(claims, dict):
            return None
        jti, sub, exp, iat = claims.get("jti"), claims.get("sub"), claims.get("exp"), claims.get("iat")
        if not (isinstance(jti, str) and isinstance(sub, str) and isinstance(exp, int) and isinstance(iat, int)):
            return None
        if jti in self._revoked or jti not in self._issued:
            return None
        if self._clock.timestamp() >= exp:
            return None
        return Session(user=sub, jti=jti, issued_at=float(iat), expires_at=float(exp))

    def revoke(self, jti: str) -> None:
        self._revoked.add(jti)

    def expire_all(self) -> int:
        """Expire every token issued so far (the `expire_tokens` fault); returns how many."""
        fresh = self._issued - self._revoked
        self._revoked |= self._issued
        return len(fresh)
