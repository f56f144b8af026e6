"""RULE-003, RULE-013, RULE-014 and the realized-P&L bookkeeping they read."""

from __future__ import annotations

from datetime import UTC, datetime

from risk_manager.engine import ActionKind, LockKind

from .harness import ES, Harness, kinds, of, one

RESET = datetime(2026, 3, 3, 23, 0, tzinfo=UTC)  # 17:00 CST


def test_rule003_realized_breach_locks_until_reset_flattens_and_cancels() -> None:
    h = Harness({"daily_realized_loss": {"enabled": True, "loss_limit": 500, "include_unrealized": False}})
    assert h.trade(-300.0) == []
    assert h.trade(-199.99) == []                    # −499.99: just not
    actions = h.trade(-0.01)                         # −500.00: reaching the limit is a breach
    assert kinds(actions) == ["lock", "cancel_orders", "flatten_account", "alert"]
    lock = one(actions, ActionKind.LOCK).lock
    assert lock is not None and lock.kind is LockKind.UNTIL_RESET and lock.until == RESET
    assert all(a.rules == ("RULE-003",) for a in actions)
    assert h.engine.locks(1001)[0].until == RESET
    # latched: further losses while locked do not fire again
    assert of(h.trade(-50.0), ActionKind.LOCK) == []


def test_rule003_fees_count_including_opening_fills() -> None:
    h = Harness({"daily_realized_loss": {"enabled": True, "loss_limit": 100, "include_unrealized": False}})
    assert h.trade(None, fees=2.0) == []             # opening fill: no P&L, but its fee is real money
    assert h.trade(-97.0, fees=0.99) == []           # −97 − 2.99 = −99.99
    assert of(h.trade(None, fees=0.01), ActionKind.LOCK)
    no_fees = Harness({"daily_realized_loss": {"enabled": True, "loss_limit": 100, "include_unrealized": False,
                                               "include_fees": False}})
    assert no_fees.trade(-99.0, fees=50.0) == []


def test_rule003_and_rule013_exact_limit_despite_float_noise() -> None:
    # −273.78 − 55.41 − 167.04 − 3.77 fees is −$500.00, but −499.9999999999999 when added up in floats.
    h = Harness({"daily_realized_loss": {"enabled": True, "loss_limit": 500, "include_unrealized": False}})
    assert h.trade(-273.78, fees=3.77) == [] and h.trade(-55.41) == []
    assert of(h.trade(-167.04), ActionKind.LOCK)
    # 38.08 + 55.18 + 6.74 is 99.99999999999999 in floats: the $100 target is reached.
    p = Harness({"daily_realized_profit": {"enabled": True, "target": 100, "include_fees": False}})
    assert p.trade(38.08) == [] and p.trade(55.18) == []
    assert of(p.trade(6.74), ActionKind.LOCK)


def test_rule003_voided_repeated_and_null_trades() -> None:
    h = Harness({"daily_realized_loss": {"enabled": True, "loss_limit": 100, "include_unrealized": False}})
    assert h.trade(-60.0, tid=7) == []
    assert h.trade(-60.0, tid=7) == []               # the same trade again (REST reconciliation): counted once
    assert h.trade(-60.0, tid=8, voided=True) == []  # voided: ignored
    assert h.trade(None, tid=9) == []                # opening half-turn: adds nothing
    assert h.engine.status(1001).realized_pnl == -60.0
    assert of(h.trade(-40.0, tid=10), ActionKind.LOCK)


def test_rule003_include_unrealized_judges_net_pnl_on_quotes() -> None:
    h = Harness({"daily_realized_loss": {"enabled": True, "loss_limit": 500}})
    h.trade(-300.0)
    h.position(ES, 1, avg=5000.0)
    assert h.quote(ES, 4996.25) == []                # −15 ticks = −187.5 → −487.5
    actions = h.quote(ES, 4996.0)                    # −200 → −500
    assert kinds(actions)[:3] == ["lock", "cancel_orders", "flatten_account"]
    assert one(actions, ActionKind.FLATTEN_ACCOUNT).idempotency_key.startswith(
        "flatten_account|1001|RULE-003|-|quote:CON.F.US.EP.Z26:")


def test_realized_pnl_is_per_trading_day_and_resets_at_1700_chicago() -> None:
    h = Harness({"daily_realized_loss": {"enabled": True, "loss_limit": 500, "include_unrealized": False}})
    h.trade(-400.0)
    h.advance_to(datetime(2026, 3, 3, 22, 59, 59, tzinfo=UTC))
    assert h.engine.status(1001).realized_pnl == -400.0
    h.advance_to(RESET)
    status = h.engine.status(1001)
    assert status.realized_pnl == 0.0 and status.trading_day == "2026-03-04"
    assert h.trade(-400.0) == []                     # a new day: −400 only


def test_late_trade_of_yesterday_counts_for_yesterday() -> None:
    h = Harness({"daily_realized_loss": {"enabled": True, "loss_limit": 500, "include_unrealized": False}},
                start=datetime(2026, 3, 4, 15, 0, tzinfo=UTC))
    h.trade(-400.0)
    assert h.trade(-400.0, at=datetime(2026, 3, 3, 20, 0, tzinfo=UTC)) == []  # yesterday's trade, reconciled late
    assert h.engine.status(1001).realized_pnl == -400.0


def test_rule003_lock_expires_at_reset_with_an_unlock_record() -> None:
    h = Harness({"daily_realized_loss": {"enabled": True, "loss_limit": 100, "include_unrealized": False}})
    h.trade(-100.0)
    assert h.engine.next_deadline() == RESET
    actions = h.advance_to(RESET)
    unlock = one(actions, ActionKind.UNLOCK)
    assert unlock.lock is not None and unlock.lock.kind is LockKind.UNTIL_RESET
    assert h.engine.locks(1001) == []


def test_rule013_profit_target_locks_for_the_day() -> None:
    h = Harness({"daily_realized_profit": {"enabled": True, "target": 1000, "message": "well done"}})
    assert h.trade(999.0, fees=0.0) == []
    assert of(h.trade(1.5, fees=0.5), ActionKind.LOCK)  # 1000.5 − 0.5 = 1000.0 → reached
    h2 = Harness({"daily_realized_profit": {"enabled": True, "target": 1000, "message": "well done"}})
    actions = h2.trade(1000.0)
    lock = one(actions, ActionKind.LOCK)
    assert lock.lock is not None and lock.lock.kind is LockKind.UNTIL_RESET
    assert "well done" in (one(actions, ActionKind.ALERT).message or "")


def test_rule013_just_not() -> None:
    h = Harness({"daily_realized_profit": {"enabled": True, "target": 1000}})
    assert h.trade(1000.0, fees=0.01) == []


def test_rule014_trailing_floor_in_real_time_with_buffer() -> None:
    h = Harness({"trailing_max_loss": {"enabled": True, "max_loss": 2000, "buffer": 100}})
    assert h.account(50_000.0) == []                 # starting balance: first seen; floor 48,000, acts at 48,100
    h.position(ES, 1, avg=5000.0)
    assert h.account(48_500.0) == []
    assert h.quote(ES, 4992.25) == []                # −31 ticks = −387.5 → equity 48,112.5
    actions = h.quote(ES, 4992.0)                    # −400 → 48,100
    assert kinds(actions)[:3] == ["lock", "cancel_orders", "flatten_account"]
    assert all(a.rules == ("RULE-014",) for a in actions)


def test_rule014_floor_trails_end_of_day_highs_and_stops_at_starting_balance() -> None:
    h = Harness({"trailing_max_loss": {"enabled": True, "max_loss": 2000, "starting_balance": 50_000}})
    h.account(51_000.0)
    h.advance_to(RESET)                              # EOD high 51,000 → floor 49,000
    assert h.account(49_000.01) == []
    assert of(h.account(49_000.0), ActionKind.LOCK)
    h2 = Harness({"trailing_max_loss": {"enabled": True, "max_loss": 2000, "starting_balance": 50_000}})
    h2.account(53_000.0)
    h2.advance_to(RESET)                             # 53,000 − 2,000 = 51,000, capped at the start: 50,000
    assert h2.account(50_000.01) == []
    assert of(h2.account(50_000.0), ActionKind.LOCK)


def test_rule014_intraday_high_does_not_raise_the_floor() -> None:
    h = Harness({"trailing_max_loss": {"enabled": True, "max_loss": 2000, "starting_balance": 50_000}})
    h.account(51_500.0)                              # intraday high, not an end-of-day balance
    assert h.account(48_000.01) == []


def test_warn_at_ladder_with_hysteresis() -> None:
    h = Harness({"daily_realized_loss": {"enabled": True, "loss_limit": 1000, "warn_at": 0.8}})
    h.position(ES, 1, avg=5000.0)
    assert h.quote(ES, 4984.25) == []                # −787.5: 78.75 %
    warn = one(h.quote(ES, 4984.0), ActionKind.ALERT)  # −800: 80 %
    assert warn.rules == ("RULE-003",) and "80%" in (warn.message or "")
    assert h.quote(ES, 4984.5) == []                 # 77.5 %: still disarmed (re-arms below 70 %)
    assert h.quote(ES, 4983.0) == []                 # 85 %: no second alert
    assert h.quote(ES, 4986.5) == []                 # 67.5 %: re-armed
    assert one(h.quote(ES, 4984.0), ActionKind.ALERT)


def test_scenario_daily_loss_locks_the_account() -> None:
    """scenarios.md's example, at engine level: 3 MNQ bought at 20000.25, the market drops 100 points."""
    from .harness import MNQ
    h = Harness({"daily_realized_loss": {"enabled": True, "loss_limit": 500}})
    h.quote(MNQ, 20000.0, bid=19999.75, ask=20000.25)
    h.position(MNQ, 3, avg=20000.25)
    assert h.trade(None, contract=MNQ, fees=1.11) == []
    h.advance(28)
    actions = h.quote(MNQ, 19900.0, bid=19899.75, ask=19900.25)      # 3 × −401 ticks × $0.50 = −601.5
    assert kinds(actions) == ["lock", "cancel_orders", "flatten_account", "alert"]
    lock = one(actions, ActionKind.LOCK).lock
    assert lock is not None and lock.until == RESET and lock.rules == ("RULE-003",)


def test_damaged_numbers_are_ignored_with_a_critical_alert() -> None:
    h = Harness({"daily_realized_loss": {"enabled": True, "loss_limit": 100, "include_unrealized": False}})
    alert = one(h.trade(float("nan"), fees=float("inf")), ActionKind.ALERT)
    assert alert.rules == ("ENGINE",) and "not a number" in (alert.message or "")
    assert of(h.trade(-100.0), ActionKind.LOCK)          # the day's P&L was not poisoned
    assert one(h.account(float("nan")), ActionKind.ALERT).rules == ("ENGINE",)
