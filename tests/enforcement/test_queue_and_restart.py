"""The enforcer's contract: at most once across restarts, locks first, per-account order, failures that
release the key, resuming after a crash, shutdown."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from risk_manager.domain import SystemClock
from risk_manager.enforcement import (
    ALREADY_EXECUTED,
    ActionOutcome,
    EnforcerClosedError,
    OutcomeStatus,
    UnsupportedActionError,
)
from risk_manager.engine.actions import ActionKind, Lock, LockKind
from risk_manager.gateway import BreakerState, GatewayClient
from risk_manager.sim import Simulator
from risk_manager.store import ActionState, Store

from .conftest import ACCOUNT, CL, ES, MNQ, OTHER, Rig, action, make_client


async def test_a_key_runs_at_most_once_even_after_a_restart(
        sim: Simulator, client: GatewayClient, store: Store, db_path: Path) -> None:
    sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=1, type="market")
    close = action(ActionKind.CLOSE_POSITION, "close|1001|r|MNQ|evt-7", contract_id=MNQ)
    first = Rig(sim, client, store)
    await first.enforcer.start()
    assert (await first.one(close)).status is OutcomeStatus.DONE
    again = await first.one(close)
    assert (again.status, again.reason) == (OutcomeStatus.SKIPPED, ALREADY_EXECUTED)
    await first.enforcer.aclose()
    await store.close()

    sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=1, type="market")  # the trader re-opens
    reopened = await Store.open(db_path, SystemClock())
    try:
        second = Rig(sim, client, reopened)
        await second.enforcer.start()
        outcome = await second.one(close)
        await second.enforcer.aclose()
    finally:
        await reopened.close()
    assert (outcome.status, outcome.reason) == (OutcomeStatus.SKIPPED, ALREADY_EXECUTED)
    assert second.enforcer.stats.duplicates_skipped == 1 and second.enforcer.stats.requests == 0
    assert len([i for i in sim.recorder.intents if i.kind == "close"]) == 1  # the old key never ran again


async def test_a_lock_is_stored_before_the_next_broker_call_and_only_once(rig: Rig) -> None:
    seen: list[tuple[str, int]] = []

    def on_outcome(outcome: ActionOutcome) -> None:
        seen.append((outcome.action.kind.value, len(rig.intents("close"))))

    rig.enforcer.on_outcome(on_outcome)
    rig.sim.trader.place_order(ACCOUNT, "ES", side="buy", size=1, type="market")
    start = datetime.now(UTC)
    lock = Lock(ACCOUNT, LockKind.UNTIL_RESET, "daily loss limit", start, start + timedelta(hours=3),
                rules=("daily_realized_loss",), flatten=True)
    lock_action = action(ActionKind.LOCK, "lock|1001|daily|evt-9", lock=lock)
    outcomes = await rig.run(lock_action, action(ActionKind.FLATTEN_ACCOUNT, "flatten|1001|evt-9"))
    assert [o.status for o in outcomes] == [OutcomeStatus.DONE, OutcomeStatus.DONE]
    assert seen == [("lock", 0), ("flatten_account", 1)]  # the lock was done before any close was sent
    [stored] = await rig.store.active_locks(ACCOUNT)
    assert (stored.id, stored.kind, stored.flatten, stored.rules) == (
        "lock|1001|daily|evt-9", "until_reset", True, ("daily_realized_loss",))
    repeat = await rig.one(lock_action)
    assert (repeat.status, repeat.reason) == (OutcomeStatus.SKIPPED, ALREADY_EXECUTED)


async def test_accounts_run_concurrently_and_each_in_order(rig: Rig) -> None:
    rig.sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=1, type="market")
    rig.sim.trader.place_order(OTHER, "ES", side="sell", size=1, type="market")
    rig.sim.faults.latency(rest_ms=30)
    order: list[str] = []
    rig.enforcer.on_outcome(lambda o: order.append(o.action.idempotency_key))
    await rig.run(action(ActionKind.CLOSE_POSITION, "a1", contract_id=MNQ),
                  action(ActionKind.CANCEL_ORDERS, "a2"),
                  action(ActionKind.CLOSE_POSITION, "b1", account_id=OTHER, contract_id=ES))
    assert order.index("a1") < order.index("a2")
    assert order.index("b1") < order.index("a2")  # the other account did not wait behind account 1001
    assert rig.position_sizes(ACCOUNT) == {} and rig.position_sizes(OTHER) == {}


async def test_circuit_open_fails_releases_the_key_and_a_resubmission_verifies_first(
        sim: Simulator, store: Store) -> None:
    client = make_client(sim, errorHandling={"circuitBreaker": {"timeout": 150}})
    await client.start(connect_hubs=False)
    rig = Rig(sim, client, store)
    await rig.enforcer.start()
    try:
        sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=2, type="market")
        for _ in range(5):
            client.breaker.record_failure(client.breaker.before_call())
        assert client.breaker.state is BreakerState.OPEN
        close = action(ActionKind.CLOSE_POSITION, "close-breaker", contract_id=MNQ)
        outcome = await rig.one(close)
        assert outcome.status is OutcomeStatus.FAILED
        assert outcome.reason is not None and "circuit breaker open" in outcome.reason
        stored = await store.action("close-breaker")
        assert stored is not None and stored.state is ActionState.PENDING  # released: may run again
        assert rig.enforcer.stats.released == 1 and sim.recorder.intents == type(sim.recorder.intents)()
        await asyncio.sleep(0.2)  # the breaker lets probes through again
        retried = await rig.one(close)
        assert retried.status is OutcomeStatus.DONE, retried.reason
        assert rig.position_sizes() == {}
        paths = [r.path for r in sim.recorder.requests if not r.path.lower().startswith("/api/auth")]
        assert paths[0].lower() == "/api/position/searchopen"  # verify first: the broker is asked before a close
    finally:
        await rig.enforcer.aclose()
        await client.aclose()


async def test_resume_pending_verifies_an_in_flight_claim_before_acting(
        sim: Simulator, client: GatewayClient, store: Store) -> None:
    sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=2, type="market")
    sim.trader.place_order(ACCOUNT, "ES", side="buy", size=1, type="market")
    close_mnq = action(ActionKind.CLOSE_POSITION, "crash-mnq", contract_id=MNQ)
    close_es = action(ActionKind.CLOSE_POSITION, "crash-es", contract_id=ES)
    # The previous daemon claimed both and died; its ES close reached the broker, the MNQ one did not.
    assert await store.claim(close_mnq.idempotency_key, ACCOUNT, close_mnq.to_json())
    assert await store.claim(close_es.idempotency_key, ACCOUNT, close_es.to_json())
    sim.trader.close_position(ACCOUNT, "ES")
    pending = action(ActionKind.CANCEL_ORDERS, "never-started")
    assert await store.record_pending(pending.idempotency_key, ACCOUNT, pending.to_json())
    # Released after an unknown outcome: its reduction did reach the broker (4 → 2) before the crash.
    sim.trader.place_order(ACCOUNT, "CL", side="buy", size=2, type="market")
    released = action(ActionKind.REDUCE_POSITION, "released-reduce", contract_id=CL, size=2)
    assert await store.claim(released.idempotency_key, ACCOUNT, released.to_json())
    assert await store.release_action(released.idempotency_key, "outcome unknown")
    assert await store.record_pending("garbage", ACCOUNT, {"kind": "close_position"})
    rig = Rig(sim, client, store)
    rig.positions[ACCOUNT] = {CL: 4}  # a stale view: a blind reduction would close 2 more
    await rig.enforcer.start()
    assert await rig.enforcer.resume_pending() == 4
    await rig.enforcer.idle()
    await rig.enforcer.aclose()
    by_key = {o.action.idempotency_key: o for o in rig.outcomes}
    assert by_key["crash-mnq"].status is OutcomeStatus.DONE and by_key["crash-mnq"].attempts == 1
    assert by_key["crash-es"].status is OutcomeStatus.DONE and by_key["crash-es"].attempts == 0
    assert by_key["never-started"].status is OutcomeStatus.DONE
    assert by_key["released-reduce"].status is OutcomeStatus.DONE and by_key["released-reduce"].attempts == 0
    assert rig.position_sizes() == {CL: 2}  # verified first: nothing more was closed
    assert [i.contract_id for i in rig.intents("close")] == [MNQ]  # ES was already flat: no second close
    assert await store.unfinished_actions() == []
    garbage = await store.action("garbage")
    assert garbage is not None and garbage.state is ActionState.FAILED and "lacks the field" in garbage.detail
    assert rig.enforcer.stats.resumed == 4


async def test_submit_refuses_unknown_kinds_and_anything_after_close(rig: Rig) -> None:
    with pytest.raises(UnsupportedActionError, match="does not execute 'alert'"):
        rig.enforcer.submit(action(ActionKind.ALERT, "alert-1", message="hi"))
    with pytest.raises(ValueError, match="check_stops"):
        rig.enforcer.submit(action(ActionKind.CHECK_STOPS, "check-1"))
    with pytest.raises(UnsupportedActionError, match="carries no lock"):
        rig.enforcer.submit(action(ActionKind.LOCK, "lock-without-lock"))
    await rig.enforcer.aclose()
    with pytest.raises(EnforcerClosedError):
        rig.enforcer.submit(action(ActionKind.FLATTEN_ACCOUNT, "late"))


async def test_actions_submitted_before_start_run_at_start_and_callback_errors_are_contained(
        sim: Simulator, client: GatewayClient, store: Store, caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig(sim, client, store)

    def broken(outcome: ActionOutcome) -> None:
        raise RuntimeError("dashboard bug")

    rig.enforcer.on_outcome(broken)
    rig.enforcer.submit(action(ActionKind.FLATTEN_ACCOUNT, "early"))
    assert rig.enforcer.busy
    await rig.enforcer.start()
    await rig.enforcer.idle()
    assert not rig.enforcer.busy and [o.status for o in rig.outcomes] == [OutcomeStatus.DONE]
    assert "enforcement_callback_failed" in caplog.text
    await rig.enforcer.aclose()


async def test_an_internal_error_fails_the_action_and_the_queue_goes_on(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    original = rig.client.search_open_positions

    async def flaky(account_id: int) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise KeyError("bug")
        return await original(account_id)

    monkeypatch.setattr(rig.client, "search_open_positions", flaky)
    first, second = await rig.run(action(ActionKind.FLATTEN_ACCOUNT, "f1"), action(ActionKind.FLATTEN_ACCOUNT, "f2"))
    assert first.status is OutcomeStatus.FAILED and "internal error" in (first.reason or "")
    assert second.status is OutcomeStatus.DONE
    stored = await rig.store.action("f1")
    assert stored is not None and stored.state is ActionState.PENDING  # handed back for a retry
    [logged] = [r for r in await rig.store.enforcement_log(ACCOUNT) if r.key == "f1"]
    assert logged.outcome == "failed"


async def test_aclose_waits_for_in_flight_work_within_its_bound(rig: Rig) -> None:
    rig.sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=1, type="market")
    rig.sim.faults.latency(rest_ms=50)
    rig.enforcer.submit(action(ActionKind.CLOSE_POSITION, "closing-at-shutdown", contract_id=MNQ))
    await asyncio.sleep(0.01)
    await rig.enforcer.aclose(timeout_s=5.0)
    assert [o.status for o in rig.outcomes] == [OutcomeStatus.DONE]
    assert rig.position_sizes() == {}


async def test_aclose_timeout_leaves_the_claim_in_flight_for_the_next_start(rig: Rig) -> None:
    rig.sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=1, type="market")
    rig.sim.faults.latency(rest_ms=400)
    rig.enforcer.submit(action(ActionKind.CLOSE_POSITION, "cut-off", contract_id=MNQ))
    await asyncio.sleep(0.05)
    await rig.enforcer.aclose(timeout_s=0.05)
    assert rig.outcomes == []
    stored = await rig.store.action("cut-off")
    assert stored is not None and stored.state is ActionState.IN_FLIGHT
    rig.sim.faults.clear()


async def test_a_submitted_action_is_on_disk_before_its_worker_runs_and_resumes_after_a_kill(
        sim: Simulator, client: GatewayClient, store: Store, db_path: Path) -> None:
    """A kill -9 between the engine's decision and the worker's claim must not lose the action: the
    restored engine has already handled the event that asked for it and will not ask again (chaos
    finding 10: a cancel in a blocked symbol lost that way)."""
    sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=1, type="market")
    close = action(ActionKind.CLOSE_POSITION, "close|1001|RULE-011|MNQ|evt-1", contract_id=MNQ)
    lock = action(ActionKind.LOCK, "lock|1001|RULE-011|evt-1",
                  lock=Lock(ACCOUNT, LockKind.SYMBOL, "MNQ is blocked", datetime.now(UTC), symbol="MNQ"))
    dead = Rig(sim, client, store)          # never started: its worker never claims anything
    dead.enforcer.submit(lock)
    dead.enforcer.submit(close)
    assert store.action_state(close.idempotency_key) is ActionState.PENDING
    await store.flush()                     # what the writer commits within a millisecond or so
    await store.close()                     # (no enforcer shutdown: as a kill leaves it)

    reopened = await Store.open(db_path, SystemClock())
    try:
        pending = await reopened.unfinished_actions()
        assert [(p.key, p.state, p.attempts) for p in pending] == [
            (close.idempotency_key, ActionState.PENDING, 0)]   # the lock lives in the engine's snapshot
        second = Rig(sim, client, reopened)
        await second.enforcer.start()
        assert await second.enforcer.resume_pending() == 1
        await second.enforcer.idle()
        await second.enforcer.aclose()
        assert [(o.action.idempotency_key, o.status) for o in second.outcomes] == [
            (close.idempotency_key, OutcomeStatus.DONE)]
        assert second.position_sizes() == {}
        assert await reopened.unfinished_actions() == []
    finally:
        await reopened.close()
