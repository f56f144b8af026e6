"""What the enforcer does when the broker says no, the network fails or the login is refused."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from risk_manager.enforcement import OutcomeStatus, StoredActionError, action_from_json
from risk_manager.engine.actions import Action, ActionKind, AlertLevel, Lock, LockKind
from risk_manager.gateway import GatewayClient
from risk_manager.sim import BrokerReject, Simulator
from risk_manager.store import ActionState, Store

from .conftest import ACCOUNT, ES, MNQ, Rig, action, make_client


async def test_a_close_the_broker_keeps_rejecting_is_retried_then_fails(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    rig.sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=1, type="market")

    def reject(*args: Any, **kwargs: Any) -> Any:
        raise BrokerReject("order_rejected", "market closed for maintenance")

    monkeypatch.setattr(rig.sim.broker, "close_position", reject)
    outcome = await rig.one(action(ActionKind.CLOSE_POSITION, "close-rejected", contract_id=MNQ))
    assert outcome.status is OutcomeStatus.FAILED and outcome.attempts == 3
    assert outcome.reason is not None
    assert outcome.reason.startswith(f"still open after 3 attempt(s) in 0.6 s: {MNQ} 1 contract(s) (target 0)")
    assert "last refusal" in outcome.reason and "market closed for maintenance" in outcome.reason
    assert len(rig.intents("close")) == 3
    stored = await rig.store.action("close-rejected")
    assert stored is not None and stored.state is ActionState.FAILED


async def test_an_order_that_cannot_be_cancelled_fails_after_the_attempts(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    order = rig.sim.trader.place_order(ACCOUNT, "ES", side="buy", size=1, type="limit", limit_price=5000.0)

    def refuse(account_id: int, order_id: int) -> Any:
        raise BrokerReject("order_rejected", "busy")

    monkeypatch.setattr(rig.sim.broker, "cancel", refuse)
    outcome = await rig.one(action(ActionKind.CANCEL_ORDERS, "cancel-stuck", contract_id=ES))
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.reason is not None and f"still working after 3 attempt(s) in 0.6 s: {order.id} ({ES}, open)" \
        in outcome.reason
    assert len(rig.intents("cancel")) == 3


async def test_outcome_unknown_releases_the_key_and_the_retry_asks_first(sim: Simulator, store: Store) -> None:
    client = make_client(sim, errorHandling={"circuitBreaker": {"timeout": 100}})
    rig = Rig(sim, client, store)
    await rig.enforcer.start()
    try:
        sim.trader.place_order(ACCOUNT, "MNQ", side="sell", size=2, type="market")
        sim.faults.latency(rest_ms=40)
        close = action(ActionKind.CLOSE_POSITION, "close-unknown", contract_id=MNQ)
        rig.enforcer.submit(close)
        await asyncio.sleep(0.02)  # the close is on its way: cut the network under it
        sim.faults.cut("rest", 2.0)
        await rig.enforcer.idle()
        [failed] = rig.outcomes
        assert failed.status is OutcomeStatus.FAILED
        assert failed.reason is not None and "outcome unknown" in failed.reason
        assert "a retry asks the broker first" in failed.reason
        stored = await store.action("close-unknown")
        assert stored is not None and stored.state is ActionState.PENDING
        sim.faults.clear()
        await asyncio.sleep(0.15)  # the circuit breaker half-opens
        retried = await rig.one(close)
        assert retried.status is OutcomeStatus.DONE, retried.reason
        assert rig.position_sizes() == {}
        assert len([i for i in rig.intents("close") if i.outcome == "ok"]) <= 1  # never a second executed close
    finally:
        await rig.enforcer.aclose()
        await client.aclose()


async def test_a_refused_login_fails_with_nothing_sent_and_the_key_released(sim: Simulator, store: Store) -> None:
    client = GatewayClient(make_client(sim).config, "demo", "short")  # the simulator wants >= 8 characters
    rig = Rig(sim, client, store)
    await rig.enforcer.start()
    try:
        outcome = await rig.one(action(ActionKind.FLATTEN_ACCOUNT, "flatten-no-login"))
    finally:
        await rig.enforcer.aclose()
        await client.aclose()
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.reason is not None and "check the user name and API key" in outcome.reason
    assert "nothing was sent" in outcome.reason
    stored = await store.action("flatten-no-login")
    assert stored is not None and stored.state is ActionState.PENDING


async def test_a_broken_hint_is_logged_and_the_broker_search_still_finds_everything(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    def broken(account_id: int) -> Any:
        raise RuntimeError("view not ready")

    rig.enforcer._executor._positions_hint = broken
    rig.enforcer._executor._orders_hint = broken
    rig.sim.trader.place_order(ACCOUNT, "ES", side="buy", size=1, type="market")
    rig.sim.trader.place_order(ACCOUNT, "ES", side="buy", size=1, type="limit", limit_price=5000.0)
    flatten, cancel = await rig.run(action(ActionKind.FLATTEN_ACCOUNT, "f"), action(ActionKind.CANCEL_ORDERS, "c"))
    assert (flatten.status, cancel.status) == (OutcomeStatus.DONE, OutcomeStatus.DONE)
    assert rig.position_sizes() == {} and rig.sim.broker.open_orders(ACCOUNT) == []
    assert caplog.text.count("enforcement_hint_failed") == 2


async def test_malformed_actions_fail_with_a_clear_reason(rig: Rig) -> None:
    outcomes = await rig.run(action(ActionKind.CLOSE_POSITION, "no-contract"),
                             action(ActionKind.REDUCE_POSITION, "no-size", contract_id=MNQ),
                             action(ActionKind.MODIFY_STOP, "no-price", order_id=5),
                             action(ActionKind.PLACE_STOP, "no-stop-price", contract_id=MNQ))
    reasons = [o.reason for o in outcomes]
    assert all(o.status is OutcomeStatus.FAILED for o in outcomes)
    assert reasons == ["close_position needs a contract id (the engine sent none)",
                       f"reduce_position of {MNQ} needs a target size of 0 or more, got None",
                       "modify_stop needs the stop's order id and the new price",
                       f"place_stop on {MNQ} needs a stop price"]


def test_enforcer_limits_are_validated() -> None:
    from risk_manager.enforcement import Limits

    with pytest.raises(ValueError, match="max_attempts must be at least 1"):
        Limits(5.0, 0, 60.0)
    with pytest.raises(ValueError, match="verify_timeout_s must be > 0"):
        Limits(0.0, 3, 60.0)
    with pytest.raises(ValueError, match="partial_fill_timeout_s must be > 0"):
        Limits(5.0, 3, -1.0)


def test_stored_actions_round_trip_and_bad_ones_are_named() -> None:
    start = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)
    lock = Lock(ACCOUNT, LockKind.COOLDOWN, "cooling off", start, start + timedelta(minutes=5), rules=("r",))
    samples = [
        Action(ActionKind.LOCK, ACCOUNT, ("r",), "k1", lock=lock, message="cooling off"),
        Action(ActionKind.PLACE_STOP, ACCOUNT, ("r",), "k2", contract_id=MNQ, size=2, price=24990.25, side=1),
        Action(ActionKind.ALERT, ACCOUNT, ("r",), "k3", message="m", level=AlertLevel.WARNING),
    ]
    for sample in samples:
        assert action_from_json(sample.to_json()) == sample
    with pytest.raises(StoredActionError, match="must be a JSON object"):
        action_from_json([1, 2])
    with pytest.raises(StoredActionError, match="lacks the field 'account_id'"):
        action_from_json({"kind": "close_position", "idempotency_key": "k"})
    with pytest.raises(StoredActionError, match="bad value"):
        action_from_json({**samples[1].to_json(), "size": 2.5})
    with pytest.raises(StoredActionError, match="bad value"):
        action_from_json({**samples[1].to_json(), "price": "high"})
    with pytest.raises(StoredActionError, match="bad value"):
        action_from_json({**samples[1].to_json(), "kind": "teleport"})
