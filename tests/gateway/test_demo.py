"""`python -m risk_manager.gateway.demo` against the in-process simulator: it logs in, prints live
events, survives a user-hub cut (the fill made during the cut is printed as reconciled) and ends
cleanly; refused logins and accountless users end with a message and exit code 1."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from risk_manager.domain import LogoutEvent
from risk_manager.gateway import GatewayConfig, demo

from .conftest import fast_config
from .scripted_gateway import ScriptedGateway
from .test_hubs_sim import eventually


class FastTimings(GatewayConfig):
    """The demo's configuration with the test suite's short reconnect/reconcile delays (the seed
    defaults — next reconnect after 2 s, reconciliations 5 s apart — would make this test slow)."""

    @classmethod
    def for_server(cls, base_url: str, overrides: dict[str, Any] | None = None) -> GatewayConfig:
        return fast_config(base_url, **(overrides or {}))


async def test_demo_prints_login_events_and_recovers_from_a_cut(sim: Any, capsys: pytest.CaptureFixture[str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "GatewayConfig", FastTimings)
    running = asyncio.create_task(demo.run(sim.base_url, "demo", "demo-key-123", 1001, "ES", 2.0))
    await eventually(lambda: len(sim.hubs.connections) == 2 and not sim.hubs.busy, 3)
    await asyncio.sleep(0.2)  # subscriptions confirmed, first reconciliation done
    sim.market.set_quote("ES", 5000.0)
    sim.trader.place_order(1001, "ES", side="buy", size=2, type="market")
    await asyncio.sleep(0.2)
    sim.faults.cut("user_hub", 0.3)
    sim.trader.place_order(1001, "ES", side="sell", size=1, type="market")  # nobody sees it live
    assert await running == 0
    out = capsys.readouterr().out
    assert "logged in as demo; watching account 1001 SIM-1001 balance=50000.00" in out
    assert "quotes of CON.F.US.EP." in out and "[market hub] quote CON.F.US.EP." in out
    assert "[user hub]   trade" in out and "BID 2" in out
    assert "user hub: reconnecting" in out and out.count("state: FRESH") >= 2 and "state: STALE" in out
    reconciled = [line for line in out.splitlines() if line.startswith("[reconciled] trade")]
    assert len(reconciled) == 1 and "ASK 1" in reconciled[0]
    assert "positions=1 open orders=0 trades=2 breaker=closed reconnects=1" in out


async def test_demo_refused_login_and_no_account_exit_1(sim: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code = await asyncio.to_thread(demo.main, ["--url", sim.base_url, "--key", "short", "--seconds", "1"])
    assert code == 1
    assert "error: login to the Gateway failed" in capsys.readouterr().err
    async with ScriptedGateway(sim.base_url) as front:
        front.script("Account/search", body={"success": True, "errorCode": 0, "accounts": []})
        assert await demo.run(front.base_url, "demo", "demo-key-123", None, "ES", 1.0) == 1
    assert "no active account for this user" in capsys.readouterr().err


def test_describe_names_every_event_kind() -> None:
    assert demo.describe(LogoutEvent("session ended")) == "logout   session ended"
    assert demo.describe(LogoutEvent(None)) == "logout   "
