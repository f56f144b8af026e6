"""`admin accounts test`: log in with a stored credential and list the accounts the key sees.

It uses the daemon's own client (`risk_manager.gateway.GatewayClient`), so the check exercises the
same login, envelope handling and error classification as `risk-manager run`. It makes exactly two
calls, once, with no retry (a diagnostic must answer fast): `Auth/loginKey` then `Account/search`.
The token is kept in memory only and is never logged or returned; the hubs are not connected.
"""

from __future__ import annotations

import asyncio
import logging

from risk_manager.domain.models import Account
from risk_manager.gateway import GatewayClient, GatewayConfig, MemoryTokenStore
from risk_manager.gateway.errors import (
    AuthenticationError,
    GatewayError,
    GatewayRequestError,
    HttpStatusError,
    PermanentHttpError,
    TransportError,
)
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


def check_config(gateway_url: str, timeout: float = 10.0) -> GatewayConfig:
    """The client configuration of the check: REST root from the URL, no retries, token in memory."""
    return GatewayConfig.load({
        "api": {"baseUrl": api_base(gateway_url), "timeout": max(1, round(timeout * 1000))},
        "authentication": {"tokenRefresh": {"maxRetries": 0}, "storage": {"type": "memory"}},
        "errorHandling": {"retries": {"maxAttempts": 0}},
    }, source="admin accounts test --gateway")


def check_credential(gateway_url: str, credential: Credential, timeout: float = 10.0) -> list[Account]:
    """Log in with `credential` and return the active accounts it sees (typed `GatewayCheckError` otherwise).
    Synchronous (the admin CLI's commands are); do not call it from a running event loop."""
    return asyncio.run(check_credential_async(gateway_url, credential, timeout))


async def check_credential_async(gateway_url: str, credential: Credential,
                                 request_timeout_s: float = 10.0) -> list[Account]:
    base = api_base(gateway_url)
    client = GatewayClient(check_config(gateway_url, request_timeout_s), credential.user_name, credential.api_key,
                           token_store=MemoryTokenStore())
    try:
        await client.start(connect_hubs=False)
        accounts = await client.search_accounts(only_active=True)
    except AuthenticationError as exc:
        reason = LOGIN_ERRORS.get(exc.code, f"error code {exc.code}") if exc.code is not None else "no token"
        log_event(logger, "gateway_check_login_refused", logging.WARNING, error_code=exc.code)
        raise GatewayCheckError(f"login refused: {reason}",
                                "check the user name and API key (re-add the entry to change them)") from None
    except TransportError as exc:
        cause = exc.__cause__
        if cause is None:  # the Gateway answered, but not with a JSON envelope
            raise GatewayCheckError(str(exc), "check the --gateway URL") from None
        raise GatewayCheckError(f"cannot reach the Gateway at {base} ({type(cause).__name__})",
                                "check the --gateway URL and the network") from None
    except (HttpStatusError, PermanentHttpError) as exc:
        raise GatewayCheckError(f"{exc.path} answered HTTP {exc.status}",
                                "check the --gateway URL and that the Gateway is up") from None
    except GatewayRequestError as exc:
        raise GatewayCheckError(f"{exc.path} failed (error code {exc.code})",
                                "try again; if it persists, check the account's API access") from None
    except GatewayError as exc:  # circuit open, rate-limit queue full: not expected for two calls
        raise GatewayCheckError(str(exc), "try again in a minute") from None
    finally:
        await client.aclose()
    if client.stats.malformed_items:
        raise GatewayCheckError(f"Account/search answered {client.stats.malformed_items} account(s) this version "
                                "cannot read (logged as malformed_item)", "report it with the Gateway's answer")
    log_event(logger, "gateway_check_ok", accounts=len(accounts))
    return accounts
