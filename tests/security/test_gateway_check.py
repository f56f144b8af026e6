"""`admin accounts test` through the real Gateway client: each way the Gateway can fail maps to one
clear `GatewayCheckError`, with exactly the two calls (no retry) and never a secret in the message."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from risk_manager.security.errors import GatewayCheckError
from risk_manager.security.gateway_check import api_base, check_credential_async
from risk_manager.security.vault import Credential
from risk_manager.sim import SimConfig, Simulator
from tests.gateway.scripted_gateway import ScriptedGateway

KEY = "a-long-enough-api-key"
CREDENTIAL = Credential("trader", KEY)


@pytest.fixture
async def front() -> AsyncIterator[ScriptedGateway]:
    async with Simulator(SimConfig(quote_feed="scripted")) as sim, ScriptedGateway(sim.base_url) as gateway:
        yield gateway


async def test_lists_the_active_accounts_with_two_calls(front: ScriptedGateway) -> None:
    accounts = await check_credential_async(front.base_url + "/api/", CREDENTIAL)
    assert [(a.id, a.name) for a in accounts] == [(1001, "SIM-1001")]
    assert front.requests == ["Auth/loginKey", "Account/search"]
    assert api_base("http://h:1") == api_base("http://h:1/api/") == "http://h:1/api"


@pytest.mark.parametrize(("path", "script", "message"), [
    ("Account/search", {"status": 503}, "Account/search answered HTTP 503; check the --gateway URL and that the "
                                        "Gateway is up"),
    ("Account/search", {"status": 403}, "Account/search answered HTTP 403"),
    ("Auth/loginKey", {"status": 404}, "Auth/loginKey answered HTTP 404"),
    ("Account/search", {"body": {"success": False, "errorCode": 1, "errorMessage": "no"}},
     "Account/search failed (error code 1); try again"),
    ("Auth/loginKey", {"body": {"success": False, "errorCode": 10, "token": None}},
     "login refused: API key authentication is disabled for this user"),
    ("Auth/loginKey", {"body": {"success": False, "errorCode": 42}}, "login refused: error code 42"),
    ("Auth/loginKey", {"body": {"success": True}}, "login refused: no token"),
    ("Auth/loginKey", {"raw": b"<html>maintenance</html>"}, "answered 200 with a body that is not JSON; check the "
                                                            "--gateway URL"),
    ("Account/search", {"body": {"success": True, "accounts": [{"id": "x"}]}}, "1 account(s) this version "
                                                                               "cannot read"),
])
async def test_each_failure_is_one_clear_error(front: ScriptedGateway, path: str, script: dict[str, Any],
                                               message: str) -> None:
    front.script(path, times=3, **script)
    with pytest.raises(GatewayCheckError) as caught:
        await check_credential_async(front.base_url, CREDENTIAL)
    assert message in str(caught.value)
    assert KEY not in str(caught.value)
    assert front.requests.count(path) == 1  # once, no retry


async def test_a_slow_gateway_is_reported_as_unreachable(front: ScriptedGateway) -> None:
    front.script("Account/search", delay_s=1.0, body={"success": True, "accounts": []})
    with pytest.raises(GatewayCheckError, match=r"cannot reach the Gateway at http://127\.0\.0\.1:\d+/api "
                                                r"\(ReadTimeout\)"):
        await check_credential_async(front.base_url, CREDENTIAL, request_timeout_s=0.2)
