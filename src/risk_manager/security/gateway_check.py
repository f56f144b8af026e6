"""`admin accounts test`: log in with a stored credential and list the accounts the key sees.

Written with plain httpx because `risk_manager.gateway` (the real client, with its token manager,
rate limiter and retries) did not exist in this tree yet; it makes exactly two calls, once, with no
retry: `POST {url}/api/Auth/loginKey` then `POST {url}/api/Account/search`. When the gateway client
lands, `check_credential` should call it instead. The token is never logged or returned.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from risk_manager.domain.errors import WireDecodeError
from risk_manager.domain.models import Account
from risk_manager.logs import log_event
from risk_manager.security.errors import GatewayCheckError
from risk_manager.security.vault import Credential

logger = logging.getLogger("risk_manager.security")

DEFAULT_GATEWAY = "https://api.topstepx.com"

LOGIN_ERRORS = {
    1: "user name not found",
    2: "password verification failed",
    3: "invalid credentials (user name or API key wrong)",
    9: "no API subscription on this account",
    10: "API key authentication is disabled for this user",
}


def api_base(url: str) -> str:
    """`http://host:port` or `http://host:port/api` → `http://host:port/api`."""
    base = url.rstrip("/")
    return base if base.endswith("/api") else base + "/api"


def _payload(response: httpx.Response, call: str) -> dict[str, Any]:
    if response.status_code != 200:
        raise GatewayCheckError(f"{call} answered HTTP {response.status_code}",
                                "check the --gateway URL and that the Gateway is up")
    try:
        body = response.json()
    except ValueError:
        raise GatewayCheckError(f"{call} did not answer JSON", "check the --gateway URL") from None
    if not isinstance(body, dict):
        raise GatewayCheckError(f"{call} answered an unexpected JSON value", "check the --gateway URL")
    return body


def check_credential(gateway_url: str, credential: Credential, timeout: float = 10.0,
                     transport: httpx.BaseTransport | None = None) -> list[Account]:
    """Log in with `credential` and return the active accounts it sees (typed `GatewayCheckError` otherwise)."""
    base = api_base(gateway_url)
    try:
        with httpx.Client(timeout=timeout, transport=transport) as client:
            login = _payload(client.post(f"{base}/Auth/loginKey",
                                         json={"userName": credential.user_name, "apiKey": credential.api_key}),
                             "Auth/loginKey")
            token = login.get("token")
            if not login.get("success") or not isinstance(token, str) or not token:
                code = login.get("errorCode")
                reason = LOGIN_ERRORS.get(code, f"error code {code}") if isinstance(code, int) else "no token"
                log_event(logger, "gateway_check_login_refused", logging.WARNING, error_code=code)
                raise GatewayCheckError(f"login refused: {reason}",
                                        "check the user name and API key (re-add the entry to change them)")
            found = _payload(client.post(f"{base}/Account/search", json={"onlyActiveAccounts": True},
                                         headers={"Authorization": f"Bearer {token}"}), "Account/search")
    except httpx.HTTPError as exc:
        raise GatewayCheckError(f"cannot reach the Gateway at {base} ({type(exc).__name__})",
                                "check the --gateway URL and the network") from None
    if not found.get("success") or not isinstance(found.get("accounts"), list):
        raise GatewayCheckError(f"Account/search failed (error code {found.get('errorCode')})",
                                "try again; if it persists, check the account's API access")
    try:
        accounts = [Account.from_wire(item) for item in found["accounts"]]
    except WireDecodeError as exc:
        raise GatewayCheckError(f"Account/search answered an account this version cannot read ({exc})",
                                "report it with the Gateway's answer") from exc
    log_event(logger, "gateway_check_ok", accounts=len(accounts))
    return accounts
