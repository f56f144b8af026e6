"""RULE-006, RULE-007, RULE-010, RULE-011: frequency, losses, broker permission, blocked symbols."""

from __future__ import annotations

from datetime import timedelta

from risk_manager.domain import OrderSide
from risk_manager.engine import ActionKind, LockKind

from .harness import ES, MNQ, RTY, Harness, kinds, of, one


def test_rule006_per_minute_breach_and_just_not() -> None:
    h = Harness({"trade_frequency_limit": {"enabled": True, "per_minute": 3}})
    for _ in range(3):
        assert h.trade(None) == []
        h.advance(10)
    actions = h.trade(None)                          # the 4th fill within a minute
    lock = one(actions, ActionKind.LOCK).lock
    assert lock is not None and lock.kind is LockKind.COOLDOWN
    assert lock.until == h.clock.now() + timedelta(seconds=60)
    assert ActionKind.FLATTEN_ACCOUNT.value in kinds(actions)


def test_rule006_rolling_window_forgets_old_fills() -> None:
    h = Harness({"trade_frequency_limit": {"enabled": True, "per_minute": 2, "close_positions": False}})
    h.trade(None)
    h.trade(None)
    h.advance(61)
    assert h.trade(None) == []
    assert kinds(h.trade(None)) == []  # 2 in the last minute
    actions = h.trade(None)
    assert kinds(actions) == ["lock", "alert"]       # close_positions false: lock only


def test_rule006_longest_breached_window_wins() -> None:
    h = Harness({"trade_frequency_limit": {"enabled": True, "per_minute": 1, "per_session": 1,
                                           "cooldowns": {"per_minute": "60s", "per_session": "2h"}}})
    h.trade(None)
    lock = one(h.trade(None), ActionKind.LOCK).lock
    assert lock is not None and lock.until == h.clock.now() + timedelta(hours=2)


def test_rule007_tiers_most_severe_applies() -> None:
    rules = {"cooldown_after_loss": {"enabled": True, "tiers": [{"loss": 100, "cooldown": "5m"},
                                                                {"loss": 200, "cooldown": "15m"}]}}
    h = Harness(rules)
    assert h.trade(-99.99) == []
    lock = one(h.trade(-100.0), ActionKind.LOCK).lock
    assert lock is not None and lock.until == h.clock.now() + timedelta(minutes=5)
    h2 = Harness(rules)
    lock = one(h2.trade(-250.0), ActionKind.LOCK).lock
    assert lock is not None and lock.until == h2.clock.now() + timedelta(minutes=15)


def test_rule007_consecutive_losses() -> None:
    h = Harness({"cooldown_after_loss": {"enabled": True, "consecutive_losses": 3, "consecutive_cooldown": "10m",
                                         "close_positions": False}})
    h.trade(-10.0)
    h.trade(-10.0)
    assert h.trade(5.0) == []                         # a win breaks the streak
    h.trade(-10.0)
    h.trade(-10.0)
    assert h.trade(None) == []                        # opening fills do not count either way
    lock = one(h.trade(-10.0), ActionKind.LOCK).lock
    assert lock is not None and lock.until == h.clock.now() + timedelta(minutes=10)


def test_rule007_cooldown_ends_and_trading_resumes() -> None:
    h = Harness({"cooldown_after_loss": {"enabled": True, "tiers": [{"loss": 100, "cooldown": "5m"}]}})
    h.trade(-150.0)
    assert h.engine.next_deadline() == h.clock.now() + timedelta(minutes=5)
    assert of(h.position(ES, 1), ActionKind.CLOSE_POSITION)  # locked: a new position is closed at once
    assert one(h.advance(300), ActionKind.UNLOCK)
    assert h.position(MNQ, 1) == []


def test_rule010_can_trade_false_locks_until_it_is_back() -> None:
    h = Harness({"auth_loss_guard": {"enabled": True}})
    assert h.account(can_trade=True) == []
    actions = h.account(can_trade=False)
    assert kinds(actions) == ["lock", "cancel_orders", "flatten_account", "alert"]
    lock = one(actions, ActionKind.LOCK).lock
    assert lock is not None and lock.kind is LockKind.UNTIL_CAN_TRADE and lock.until is None
    assert h.account(can_trade=False) == []           # the REST poll sees it again: nothing new
    assert kinds(h.account(can_trade=True)) == ["unlock"]
    assert h.engine.locks(1001) == []


def test_rule011_blocked_symbol_closes_cancels_and_locks_only_that_symbol() -> None:
    h = Harness({"symbol_blocks": {"enabled": True, "blocked": ["rty", "CL*"]}})
    actions = h.position(RTY, 1)
    assert kinds(actions) == ["lock", "cancel_orders", "close_position", "alert"]
    lock = one(actions, ActionKind.LOCK).lock
    assert lock is not None and lock.kind is LockKind.SYMBOL and lock.symbol == "RTY"
    assert h.position(ES, 1) == []                    # other symbols stay tradeable
    _, placed = h.order(RTY, OrderSide.BID)
    assert one(placed, ActionKind.CANCEL_ORDERS).order_id is not None


def test_rule011_working_order_in_blocked_symbol_and_wildcard() -> None:
    h = Harness({"symbol_blocks": {"enabled": True, "blocked": ["CL*"]}})
    _, actions = h.order("CON.F.US.CLE.F27", OrderSide.BID)
    assert one(actions, ActionKind.LOCK).symbol == "CL"
    assert one(actions, ActionKind.CANCEL_ORDERS).contract_id == "CON.F.US.CLE.F27"


def test_update_config_unblocking_a_symbol_ends_its_lock() -> None:
    h = Harness({"symbol_blocks": {"enabled": True, "blocked": ["RTY"]}})
    h.position(RTY, 1)
    unlocks = h.engine.update_config(h.config.model_copy(update={"rules": h.config.rules.model_copy(
        update={"symbol_blocks": h.config.rules.symbol_blocks.model_copy(update={"blocked": []})})}))
    assert kinds(unlocks) == ["unlock"] and h.engine.locks(1001) == []


def test_cooldowns_run_from_the_fill_so_old_fills_replayed_at_start_up_do_not_lock() -> None:
    rules = {"cooldown_after_loss": {"enabled": True, "tiers": [{"loss": 100, "cooldown": "5m"}]}}
    h = Harness(rules)
    assert h.trade(-200.0, at=h.clock.now() - timedelta(minutes=10)) == []   # reconciled, cooldown long over
    lock = one(h.trade(-200.0, at=h.clock.now() - timedelta(minutes=2)), ActionKind.LOCK).lock
    assert lock is not None and lock.until == h.clock.now() + timedelta(minutes=3)


def test_update_config_judges_open_positions_again() -> None:
    h = Harness({"symbol_blocks": {"enabled": True, "blocked": []}})
    h.position(RTY, 1)
    stricter = h.config.model_copy(update={"rules": h.config.rules.model_copy(
        update={"symbol_blocks": h.config.rules.symbol_blocks.model_copy(update={"blocked": ["RTY"]})})})
    actions = h.engine.update_config(stricter)
    assert one(actions, ActionKind.CLOSE_POSITION).contract_id == RTY
    assert one(actions, ActionKind.LOCK).symbol == "RTY"


def test_lock_says_when_it_ends() -> None:
    h = Harness({"auth_loss_guard": {"enabled": True}, "symbol_blocks": {"enabled": True, "blocked": ["RTY"]}})
    h.position(RTY, 1)
    h.account(can_trade=False)
    ends = sorted(lock.ends for lock in h.engine.locks(1001))
    assert ends == ["when RTY leaves the block list", "when the broker reports canTrade: true"]
