"""prune(now): enforcement log 30 days, order history 90 days, journal configurable; live rows stay."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from risk_manager.domain import Order, OrderSide, OrderStatus, OrderType, VirtualClock
from risk_manager.store import (
    ActionState,
    DailyPnl,
    EnforcementRecord,
    LockRecord,
    Retention,
    SeenTrade,
    Store,
    TimerRecord,
)
from tests.store.conftest import START


def _order(order_id: int) -> Order:
    return Order(id=order_id, account_id=7, contract_id="CON.F.US.MNQ.H26", creation_timestamp=START,
                 status=OrderStatus.FILLED, type=OrderType.MARKET, side=OrderSide.BID, size=1)


async def _age_of(store: Store, clock: VirtualClock, days: int) -> None:
    """Write one row of every kind `days` days before the final clock time."""
    at = clock.now()
    store.append_journal("e", {"age": days}, 7)
    store.log_enforcement(EnforcementRecord(f"k{days}", 7, {}, (), at, at, "verified"))
    store.record_order(_order(days))
    store.mark_trade_seen(SeenTrade(7, days, at.date(), at, "CON.F.US.MNQ.H26"))
    assert await store.claim(f"done-{days}", 7, {})
    await store.finish_action(f"done-{days}", ok=True)
    assert await store.claim(f"open-{days}", 7, {})  # in flight: never pruned
    await store.add_lock(LockRecord(f"active-{days}", 7, "manual", "", at))
    await store.add_lock(LockRecord(f"cleared-{days}", 7, "manual", "", at))
    await store.clear_lock(f"cleared-{days}", by="admin", why="done")
    store.put_daily_pnl(DailyPnl(7, date(2026, 1, 1) + timedelta(days=days)))
    store.put_timer(TimerRecord(f"t{days}", 7, "lock_expiry", at))


async def test_prune_removes_what_retention_no_longer_keeps(db_path: Path, clock: VirtualClock) -> None:
    store = await Store.open(db_path, clock, retention=Retention(journal_days=14))
    ages = (120, 60, 20, 10, 1)
    for previous, age in zip((None, *ages), ages, strict=False):
        if previous is not None:
            clock.advance(timedelta(days=previous - age))
        await _age_of(store, clock, age)
    try:
        report = await store.prune()
        assert report.removed == {
            "journal": 3,            # 120, 60, 20 > 14 days
            "enforcement_log": 2,    # 120, 60 > 30 days
            "orders": 1,             # 120 > 90 days
            "seen_trades": 4,        # 120, 60, 20, 10 > 7 days
            "pending_actions": 4,    # done ones > 7 days; in-flight ones stay
            "locks": 2,              # cleared > 30 days; active ones stay
        }
        assert report.total == 16
        assert [e.payload["age"] for e in await store.journal()] == [10, 1]
        assert len(await store.enforcement_log(limit=10)) == 3
        assert [r.order.id for r in await store.orders(7)] == [60, 20, 10, 1]
        assert len(await store.unfinished_actions()) == 5
        assert len(await store.active_locks()) == 5
        assert len(await store.daily_pnl(7)) == 5 and len(await store.timers()) == 5
        assert len(await store.audit_log()) == 5  # kept forever by default
        # The claim index forgets exactly the pruned keys; the kept ones stay refused.
        assert [store.action_state(f"done-{age}") for age in ages] == [None] * 4 + [ActionState.DONE]
        assert not store.claim_now("done-1", 7, {}) and not store.claim_now("open-120", 7, {})
        assert (await store.prune()).total == 0
    finally:
        await store.close()


async def test_prune_takes_an_explicit_time(store: Store, clock: VirtualClock) -> None:
    store.append_journal("e", {})
    assert (await store.prune(START + timedelta(days=29))).removed["journal"] == 0
    assert (await store.prune(START + timedelta(days=31))).removed["journal"] == 1


def test_retention_none_keeps_forever_and_bad_values_are_refused() -> None:
    assert Retention(journal_days=None).journal_days is None
    with pytest.raises(ValueError, match=r"database\.retention\.order_history_days: 0 is not allowed"):
        Retention(order_history_days=0)
    with pytest.raises(ValueError, match="journal_days"):
        Retention(journal_days=True)
