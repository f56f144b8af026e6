"""RULE-009 sessions and the trading calendar: resets across DST, holidays, early closes, overnight windows."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from risk_manager.domain import OrderSide
from risk_manager.engine import ActionKind, LockKind, SessionBook, TradingCalendar
from risk_manager.engine.config import SessionBlockOutsideConfig

from .harness import CL, ES, Harness, kinds, of, one

CHI = ZoneInfo("America/Chicago")
SESSION = {"session_block_outside": {"enabled": True}}


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def ts(*args: int) -> float:
    return utc(*args).timestamp()


def test_daily_reset_dst_spring_forward_and_fall_back() -> None:
    cal = TradingCalendar(time(17, 0), CHI)
    # Friday 2026-03-06 17:00 CST = 23:00 UTC; after the spring-forward (Sunday 03-08) 17:00 CDT = 22:00 UTC
    assert cal.next_reset(ts(2026, 3, 6, 22, 59)) == ts(2026, 3, 6, 23, 0)
    assert cal.next_reset(ts(2026, 3, 8, 12, 0)) == ts(2026, 3, 8, 22, 0)
    assert cal.trading_day(ts(2026, 3, 8, 21, 59, 59)) == date(2026, 3, 8)
    assert cal.trading_day(ts(2026, 3, 8, 22, 0)) == date(2026, 3, 9)
    # fall back on Sunday 2026-11-01: 17:00 CST = 23:00 UTC
    assert cal.next_reset(ts(2026, 10, 30, 12, 0)) == ts(2026, 10, 30, 22, 0)
    assert cal.next_reset(ts(2026, 11, 1, 12, 0)) == ts(2026, 11, 1, 23, 0)
    assert cal.trading_day(ts(2026, 11, 1, 22, 30)) == date(2026, 11, 1)


def test_engine_rolls_the_day_at_the_dst_correct_instant() -> None:
    h = Harness({"daily_realized_loss": {"enabled": True, "loss_limit": 500, "include_unrealized": False}},
                start=utc(2026, 3, 8, 20, 0))
    h.trade(-400.0)
    assert h.engine.next_deadline() == utc(2026, 3, 8, 22, 0)
    h.advance_to(utc(2026, 3, 8, 22, 0))
    assert h.engine.status(1001).realized_pnl == 0.0
    assert h.engine.status(1001).next_reset == utc(2026, 3, 9, 22, 0)


def test_session_windows_holidays_early_close_and_overnight() -> None:
    book = SessionBook(SessionBlockOutsideConfig(enabled=True), CHI)
    s = book.default
    assert s.is_open(ts(2026, 3, 3, 14, 30)) and not s.is_open(ts(2026, 3, 3, 14, 29, 59))
    assert not s.is_open(ts(2026, 3, 3, 21, 0))                       # 15:00 CST: the end is exclusive
    assert s.is_open(ts(2026, 3, 9, 13, 30))                          # 08:30 CDT after the change
    assert not s.is_open(ts(2026, 12, 25, 16, 0))                     # Christmas (shipped CME calendar)
    assert s.is_open(ts(2026, 11, 27, 18, 0)) and not s.is_open(ts(2026, 11, 27, 18, 15))  # early close 12:15
    assert s.next_start(ts(2026, 12, 24, 19, 0)) == ts(2026, 12, 28, 14, 30)
    no_holidays = SessionBook(SessionBlockOutsideConfig(enabled=True, holidays=[], early_close=[]), CHI).default
    assert no_holidays.is_open(ts(2026, 12, 25, 16, 0))
    overnight = SessionBook(SessionBlockOutsideConfig.model_validate(
        {"enabled": True, "sessions": [{"start": "17:00", "end": "16:00", "days": ["sun", "mon", "tue", "wed", "thu"]}],
         "holidays": []}), CHI).default
    assert overnight.is_open(ts(2026, 3, 4, 8, 0))                    # Wed 02:00 CST
    assert not overnight.is_open(ts(2026, 3, 4, 22, 30))              # 16:30 CST: the daily break
    assert overnight.is_open(ts(2026, 3, 6, 21, 59))                  # Fri 15:59 (Thursday's window)
    assert not overnight.is_open(ts(2026, 3, 7, 12, 0))               # Saturday
    assert overnight.next_start(ts(2026, 3, 7, 12, 0)) == ts(2026, 3, 8, 22, 0)  # Sunday 17:00 CDT


def test_rule009_position_outside_session_flattens_and_locks_until_next_session() -> None:
    h = Harness(SESSION, start=utc(2026, 3, 3, 22, 0))               # 16:00 CST
    actions = h.position(ES, 1)
    assert kinds(actions) == ["lock", "cancel_orders", "flatten_account", "alert"]
    lock = one(actions, ActionKind.LOCK).lock
    assert lock is not None and lock.kind is LockKind.UNTIL_SESSION and lock.until == utc(2026, 3, 4, 14, 30)
    _, placed = h.order(ES, OrderSide.BID)
    assert one(placed, ActionKind.CANCEL_ORDERS).rules == ("RULE-009",)
    assert one(h.advance_to(utc(2026, 3, 4, 14, 30)), ActionKind.UNLOCK)
    assert h.position(ES, 2) == []


def test_rule009_inside_session_is_fine() -> None:
    h = Harness(SESSION)
    assert h.position(ES, 1) == []
    assert h.order(ES, OrderSide.BID)[1] == []


def test_rule009_session_end_flattens_after_grace() -> None:
    h = Harness({"session_block_outside": {"enabled": True, "grace": "30s"}})
    h.position(ES, 1)
    assert h.engine.next_deadline() == utc(2026, 3, 3, 21, 0, 30)
    assert h.advance_to(utc(2026, 3, 3, 21, 0, 29)) == []
    actions = h.advance_to(utc(2026, 3, 3, 21, 0, 30))
    assert kinds(actions) == ["lock", "cancel_orders", "flatten_account", "alert"]
    assert one(actions, ActionKind.LOCK).idempotency_key.endswith("timer:session_end:*:1772571600|until_session:*")


def test_rule009_flatten_at_end_false_keeps_positions_but_blocks_new_ones() -> None:
    h = Harness({"session_block_outside": {"enabled": True, "flatten_at_end": False}})
    h.position(ES, 1)
    assert h.advance_to(utc(2026, 3, 3, 21, 30)) == []
    assert of(h.position(ES, 2), ActionKind.LOCK)                     # growing outside the session


def test_rule009_symbol_sessions_scope_the_lock() -> None:
    h = Harness({"session_block_outside": {"enabled": True, "symbol_sessions": {"CL": [
        {"start": "08:00", "end": "13:30"}]}}}, start=utc(2026, 3, 3, 20, 0))   # 14:00 CST
    actions = h.position(CL, 1)
    lock = one(actions, ActionKind.LOCK)
    assert lock.symbol == "CL" and one(actions, ActionKind.CLOSE_POSITION).contract_id == CL
    assert h.position(ES, 1) == []                                    # ES is still inside its session


@pytest.mark.parametrize("bad", [{"start": "08:00", "end": "08:00"}, {"start": "08:00", "end": "15:00", "days": []}])
def test_bad_windows_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"window|days"):
        SessionBlockOutsideConfig.model_validate({"sessions": [bad]})


def test_engine_rolls_the_day_at_the_fall_back_instant() -> None:
    h = Harness({"daily_realized_loss": {"enabled": True, "loss_limit": 500, "include_unrealized": False}},
                start=utc(2026, 10, 30, 21, 0))                       # Friday 16:00 CDT
    assert h.engine.next_deadline() == utc(2026, 10, 30, 22, 0)
    h.trade(-100.0)
    h.advance_to(utc(2026, 10, 30, 22, 0))
    assert h.engine.status(1001).realized_pnl == 0.0
    # after the fall-back on Sunday 11-01 the reset is 17:00 CST = 23:00 UTC
    h.advance_to(utc(2026, 11, 1, 22, 30))
    assert h.engine.status(1001).next_reset == utc(2026, 11, 1, 23, 0)
    assert h.engine.status(1001).trading_day == "2026-11-01"


def test_restore_under_a_new_reset_time_recomputes_the_reset() -> None:
    from risk_manager.engine import Engine, RiskConfig
    h = Harness()
    h.account()
    snap = h.engine.snapshot()
    later = RiskConfig.model_validate({"daily_reset": {"time": "16:00"}})
    restored = Engine.restore(snap, later, h.clock, h.engine.contracts)
    assert restored.next_deadline() == utc(2026, 3, 3, 22, 0)


def test_user_holidays_in_the_top_level_zone_with_shipped_early_closes() -> None:
    cfg = SessionBlockOutsideConfig.model_validate({"enabled": True, "holidays": ["2026-03-04"]})
    s = SessionBook(cfg, ZoneInfo("America/New_York")).default
    assert not s.is_open(ts(2026, 3, 4, 16, 0))                       # the user's holiday
    assert s.is_open(ts(2026, 11, 27, 18, 0)) and not s.is_open(ts(2026, 11, 27, 18, 15))  # shipped, Chicago


def test_watched_contracts() -> None:
    h = Harness()
    h.position(ES, 1)
    h.order(CL, OrderSide.BID)
    assert h.engine.watched_contracts() == [CL, ES]
    h.position(ES, 0)
    assert h.engine.watched_contracts() == [CL]


def test_reload_with_new_session_windows_moves_the_session_end_timer() -> None:
    h = Harness(SESSION)
    h.position(ES, 1)
    assert h.engine.next_deadline() == utc(2026, 3, 3, 21, 0)
    shorter = h.config.model_copy(update={"rules": h.config.rules.model_copy(update={
        "session_block_outside": SessionBlockOutsideConfig.model_validate(
            {"enabled": True, "sessions": [{"start": "08:30", "end": "12:00"}]})})})
    h.engine.update_config(shorter)
    assert h.engine.next_deadline() == utc(2026, 3, 3, 18, 0)
    assert kinds(h.advance_to(utc(2026, 3, 3, 18, 0)))[:3] == ["lock", "cancel_orders", "flatten_account"]


def test_rule009_closing_order_after_hours_is_not_a_breach() -> None:
    h = Harness({"session_block_outside": {"enabled": True, "flatten_at_end": False}})
    h.position(ES, 2)
    h.advance_to(utc(2026, 3, 3, 21, 30))
    assert h.order(ES, OrderSide.ASK, size=2)[1] == []                # the trader closes after hours
    assert of(h.order(ES, OrderSide.BID, size=1)[1], ActionKind.LOCK)  # but may not add
