"""Locks (enforcement, several at once, manual, clearing), state edge cases, merging, snapshot/restore."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from risk_manager.domain import (
    Contract,
    OrderSide,
    OrderStatus,
    Position,
    PositionEvent,
    PositionType,
    Trade,
    TradeEvent,
)
from risk_manager.engine import (
    Action,
    ActionKind,
    ClearLock,
    Engine,
    LockKind,
    ManualLock,
    RiskConfig,
    UnlockNotAllowedError,
    merge_actions,
)
from risk_manager.engine.actions import Lock, make_key

from .harness import ES, MNQ, NQ, SHORT, T0, Harness, kinds, of, one

UNKNOWN = "CON.F.US.XYZ.Z26"


def test_locked_account_closes_new_positions_and_cancels_new_orders_but_keeps_stops() -> None:
    h = Harness({"cooldown_after_loss": {"enabled": True, "tiers": [{"loss": 50, "cooldown": "10m"}],
                                         "close_positions": False}})
    h.position(ES, 1)                                # held from before the lock
    h.trade(-60.0)
    assert h.position(ES, 1) == []                   # unchanged: nothing to enforce
    close = one(h.position(ES, 2), ActionKind.CLOSE_POSITION)  # grew while locked
    assert close.rules == ("RULE-007",) and close.message == "locked: no new positions"
    _, actions = h.order(NQ, OrderSide.BID)
    assert one(actions, ActionKind.CANCEL_ORDERS).order_id is not None
    _, actions = h.stop(ES, OrderSide.ASK, 90.0)     # a protective stop lowers risk: allowed
    assert actions == []


def test_locks_several_at_once_and_longest_of_a_kind_wins() -> None:
    h = Harness()
    h.command(ManualLock(1001, timedelta(minutes=30), "break", by="trader"))
    h.command(ManualLock(1001, timedelta(minutes=10), "short", by="trader"))
    locks = h.engine.locks(1001)
    assert len(locks) == 1 and locks[0].until == T0 + timedelta(minutes=30)
    h.command(ManualLock(1001, timedelta(minutes=5), "RTY only", symbol="rty"))
    assert {(lock.kind, lock.symbol) for lock in h.engine.locks(1001)} == {(LockKind.MANUAL, None),
                                                                         (LockKind.MANUAL, "RTY")}
    assert one(h.advance(300), ActionKind.UNLOCK).symbol == "RTY"
    assert len(h.engine.locks(1001)) == 1


def test_clear_lock_is_audited_and_can_be_forbidden() -> None:
    h = Harness()
    h.command(ManualLock(1001, timedelta(hours=1)))
    unlock = one(h.command(ClearLock(1001, by="admin", reason="mistake")), ActionKind.UNLOCK)
    assert "cleared by admin: mistake" in (unlock.message or "")
    strict = Harness(admin={"allow_manual_unlock": False})
    strict.command(ManualLock(1001, timedelta(hours=1)))
    with pytest.raises(UnlockNotAllowedError, match="allow_manual_unlock"):
        strict.command(ClearLock(1001))
    assert len(strict.engine.locks(1001)) == 1


def test_reversal_through_zero_partial_fills_and_direction_from_type() -> None:
    h = Harness({"daily_unrealized_loss": {"enabled": True, "loss_limit": 1000}})
    h.quote(ES, 5000.0)
    h.position(ES, 1, avg=5000.0)
    h.position(ES, 3, avg=5000.0)                    # partial fills growing the position
    assert h.engine.status(1001).positions[0].size == 3
    h.position(ES, 2, SHORT, avg=5001.0)             # reversed through zero in one event
    status = h.engine.status(1001)
    assert status.positions[0].side == "short" and status.positions[0].open_pnl == 2 * 4 * 12.5
    h.position(ES, 0, SHORT)
    assert h.engine.status(1001).positions == ()


def test_unknown_contract_fails_closed_with_an_alert_once() -> None:
    h = Harness({"max_contracts": {"enabled": True, "limit": 5}})
    actions = h.position(UNKNOWN, 1)
    assert kinds(actions) == ["close_position", "alert"]
    assert "no contract metadata" in (one(actions, ActionKind.ALERT).message or "")
    assert h.engine.status(1001).unknown_contracts == (UNKNOWN,)
    h.advance(6)
    assert kinds(h.position(UNKNOWN, 2)) == ["close_position"]  # alerted once
    h.engine.register_contract(Contract(UNKNOWN, "XYZZ6", "", 0.5, 5.0, True, None))
    assert h.position(UNKNOWN, 3) == []
    assert h.engine.status(1001).unknown_contracts == ()


def test_merge_flatten_subsumes_closes_and_keeps_every_rule() -> None:
    def act(kind: ActionKind, rule: str, contract: str | None = None) -> Action:
        return Action(kind, 1, (rule,), make_key(kind, 1, (rule,), contract, "e"), contract_id=contract)

    lock_a = Lock(1, LockKind.UNTIL_RESET, "a", T0, T0 + timedelta(hours=1), rules=("RULE-003",))
    lock_b = Lock(1, LockKind.UNTIL_RESET, "b", T0, T0 + timedelta(hours=2), rules=("RULE-014",))
    merged = merge_actions([
        act(ActionKind.CLOSE_POSITION, "RULE-004", ES), act(ActionKind.FLATTEN_ACCOUNT, "RULE-003"),
        act(ActionKind.FLATTEN_ACCOUNT, "RULE-014"), act(ActionKind.REDUCE_POSITION, "RULE-001", NQ),
        Action(ActionKind.LOCK, 1, ("RULE-003",), "k1", lock=lock_a),
        Action(ActionKind.LOCK, 1, ("RULE-014",), "k2", lock=lock_b),
    ])
    assert kinds(merged) == ["lock", "flatten_account"]
    flatten = one(merged, ActionKind.FLATTEN_ACCOUNT)
    assert flatten.rules == ("RULE-001", "RULE-003", "RULE-004", "RULE-014")
    assert "RULE-001+RULE-003+RULE-004+RULE-014" in flatten.idempotency_key
    lock = one(merged, ActionKind.LOCK).lock
    assert lock is not None and lock.until == T0 + timedelta(hours=2) and lock.rules == ("RULE-003", "RULE-014")


def test_same_breach_gives_the_same_key_after_restore() -> None:
    rules = {"daily_realized_loss": {"enabled": True, "loss_limit": 100, "include_unrealized": False}}
    h1, h2 = Harness(rules), Harness(rules)
    a1 = h1.trade(-150.0, tid=42)
    a2 = h2.trade(-150.0, tid=42)
    assert [a.idempotency_key for a in a1] == [a.idempotency_key for a in a2]


def test_snapshot_restore_round_trip_keeps_locks_timers_and_pnl() -> None:
    rules = {"daily_realized_loss": {"enabled": True, "loss_limit": 500, "warn_at": 0.5},
             "no_stop_loss_grace": {"enabled": True}, "cooldown_after_loss": {"enabled": True, "tiers": [
                 {"loss": 100, "cooldown": "15m"}]}, "trailing_max_loss": {"enabled": True, "max_loss": 2000}}
    h = Harness(rules)
    h.account(50_000.0)
    h.quote(ES, 5000.0)
    h.position(ES, 1, avg=5000.0)
    h.stop(MNQ, OrderSide.ASK, 100.0)
    h.trade(-300.0, tid=5)
    snap = h.engine.snapshot()
    text = json.dumps(snap)                          # JSON-serialisable
    restored = Engine.restore(json.loads(text), RiskConfig.model_validate({"rules": rules}), h.clock,
                              h.engine.contracts)
    assert restored.snapshot() == snap
    assert restored.locks(1001) == h.engine.locks(1001) and restored.locks(1001)
    assert restored.next_deadline() == h.engine.next_deadline()
    assert restored.status(1001) == h.engine.status(1001)
    # the restored engine behaves exactly like the original from here on
    h.clock.advance(timedelta(seconds=31))
    assert [a.idempotency_key for a in restored.on_time()] == [a.idempotency_key for a in h.engine.on_time()]
    trade = TradeEvent(Trade(99, 1001, ES, T0, 100.0, -250.0, 1.0, OrderSide.ASK, 1, False, 1))
    assert restored.handle(trade) == h.engine.handle(trade)
    assert restored.snapshot() == h.engine.snapshot()


def test_lock_survives_restore_and_still_enforces() -> None:
    h = Harness({"auth_loss_guard": {"enabled": True}})
    h.account(can_trade=False)
    restored = Engine.restore(h.engine.snapshot(), h.config, h.clock, h.engine.contracts)
    actions = restored.handle(PositionEvent(Position(1, 1001, ES, T0, PositionType.LONG, 1, 100.0)))
    assert one(actions, ActionKind.CLOSE_POSITION).rules == ("RULE-010",)


def test_cancelled_orders_leave_state_and_orders_while_locked_position_closed() -> None:
    h = Harness()
    oid, _ = h.order(ES, OrderSide.BID)
    h.order(ES, OrderSide.BID, oid=oid, status=OrderStatus.CANCELLED)
    assert h.engine.accounts[1001].orders == {}
    assert of(h.log, ActionKind.CANCEL_ORDERS) == []


def test_status_for_the_dashboard_is_json_ready() -> None:
    h = Harness({"daily_realized_loss": {"enabled": True, "loss_limit": 500},
                 "session_block_outside": {"enabled": True}, "symbol_blocks": {"enabled": True, "blocked": ["RTY"]}})
    h.account(50_000.0)
    h.quote(ES, 5000.0)
    h.position(ES, 2, avg=4999.0)
    h.trade(-100.0, fees=2.0)
    h.command(ManualLock(1001, timedelta(minutes=5), "coffee"))
    status = h.engine.status(1001)
    data = json.loads(json.dumps(status.to_json()))
    assert data["net_pnl"] == -100.0 - 2.0 + 2 * 4 * 12.5
    assert data["positions"][0]["side"] == "long" and data["locked"] is True
    assert [r["rule_id"] for r in data["rules"]] == ["RULE-003"]
    assert data["enabled_rules"] == ["RULE-003", "RULE-009", "RULE-011"]
    assert data["session_open"] is True and data["session_boundary"] == "2026-03-03T21:00:00+00:00"
    assert data["locks"][0]["kind"] == "manual"


def test_merge_contract_cancel_subsumes_single_order_cancels() -> None:
    def cancel(rule: str, order_id: int | None) -> Action:
        key = make_key(ActionKind.CANCEL_ORDERS, 1, (rule,), ES, "e", str(order_id or ""))
        return Action(ActionKind.CANCEL_ORDERS, 1, (rule,), key, contract_id=ES, order_id=order_id)

    merged = merge_actions([cancel("RULE-011", 7), cancel("RULE-009", None)])
    assert len(merged) == 1 and merged[0].order_id is None and merged[0].rules == ("RULE-009", "RULE-011")


def test_engine_accepts_a_plain_mapping_of_contracts() -> None:
    from risk_manager.domain import VirtualClock
    contract = Contract(ES, "ESZ6", "", 0.25, 12.5, True, "F.US.EP")
    engine = Engine(RiskConfig.model_validate({"rules": {"daily_unrealized_loss": {"enabled": True,
                                                                                    "loss_limit": 100}}}),
                    VirtualClock(T0), {ES: contract})
    engine.handle(PositionEvent(Position(1, 1001, ES, T0, PositionType.LONG, 1, 5000.0)))
    from risk_manager.domain import Quote, QuoteEvent
    actions = engine.handle(QuoteEvent(ES, Quote(last_price=4998.0)))
    assert one(actions, ActionKind.CLOSE_POSITION).contract_id == ES


def test_reconciliation_drops_positions_and_orders_the_broker_no_longer_lists() -> None:
    from risk_manager.engine import Reconciled
    h = Harness({"max_contracts": {"enabled": True, "limit": 1}})
    h.position(ES, 1)
    h.position(NQ, 0)
    oid, _ = h.order(MNQ, OrderSide.BID)
    keep, _ = h.order(ES, OrderSide.ASK)
    assert h.command(Reconciled(1001, (), (keep,))) == []
    acct = h.engine.accounts[1001]
    assert acct.positions == {} and set(acct.orders) == {keep} and oid not in acct.orders
    assert h.engine.watched_contracts() == [ES]
    assert h.position(NQ, 1) == []                   # the stale ES no longer counts towards the limit


def test_orders_that_only_reduce_a_position_survive_a_lock() -> None:
    h = Harness()
    h.position(ES, 2)
    h.command(ManualLock(1001, timedelta(hours=1)))
    assert h.order(ES, OrderSide.ASK, size=2)[1] == []               # a take-profit / the close's market order
    assert h.stop(ES, OrderSide.ASK, 90.0, size=2)[1] == []           # and its protective stop (OCO bracket)
    assert of(h.order(ES, OrderSide.ASK, size=1)[1], ActionKind.CANCEL_ORDERS)  # 3 to sell on a 2 position
    assert of(h.order(ES, OrderSide.BID, size=1)[1], ActionKind.CANCEL_ORDERS)  # adds to it
