"""Round trips of every table, through a close and reopen (what a restart sees)."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from risk_manager.domain import (
    Account,
    LogoutEvent,
    Order,
    OrderEvent,
    OrderSide,
    OrderStatus,
    OrderType,
    Quote,
    QuoteEvent,
    VirtualClock,
)
from risk_manager.store import (
    AuditEntry,
    DailyPnl,
    EnforcementRecord,
    LockRecord,
    SeenTrade,
    Store,
    TimerRecord,
)

T0 = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)


def _order(order_id: int, status: OrderStatus = OrderStatus.OPEN) -> Order:
    return Order(id=order_id, account_id=7, contract_id="CON.F.US.MNQ.H26", creation_timestamp=T0,
                 status=status, type=OrderType.STOP, side=OrderSide.ASK, size=2, stop_price=21000.25)


async def _reopen(store: Store, clock: VirtualClock) -> Store:
    await store.close()
    return await Store.open(store.path, clock)


async def test_journal_appends_get_increasing_seqs_that_continue_after_a_restart(
        store: Store, clock: VirtualClock) -> None:
    first = store.append_journal("action", {"close": "CON.F.US.MNQ.H26"}, account_id=7)
    clock.advance(1.5)
    second = store.append_journal("GatewayQuote", ["CON.F.US.EP.H26", {"lastPrice": 5600.25}])
    assert (first, second) == (1, 2)
    reopened = await _reopen(store, clock)
    try:
        entries = await reopened.journal()
        assert [(e.seq, e.account_id, e.kind, e.payload) for e in entries] == [
            (1, 7, "action", {"close": "CON.F.US.MNQ.H26"}),
            (2, None, "GatewayQuote", ["CON.F.US.EP.H26", {"lastPrice": 5600.25}]),
        ]
        assert entries[1].at - entries[0].at == timedelta(seconds=1.5)
        assert reopened.append_journal("action", {}) == 3
        assert [e.seq for e in await reopened.journal(after_seq=1, account_id=7)] == []
        assert [e.seq for e in await reopened.journal(after_seq=1)] == [2, 3]
    finally:
        await reopened.close()


async def test_journal_event_stores_the_wire_form_with_the_account(store: Store) -> None:
    order_seq = store.journal_event(OrderEvent(_order(1)))
    quote = Quote(symbol="F.US.EP", last_price=5600.25, timestamp=T0)
    store.journal_event(QuoteEvent("CON.F.US.EP.H26", quote))
    store.journal_event(LogoutEvent("session ended"))
    entries = await store.journal()
    assert entries[0].seq == order_seq
    assert (entries[0].kind, entries[0].account_id) == ("GatewayUserOrder", 7)
    assert Order.from_wire(entries[0].payload[0]["data"]) == _order(1)
    assert (entries[1].kind, entries[1].account_id, entries[1].payload[0]) == ("GatewayQuote", None,
                                                                               "CON.F.US.EP.H26")
    assert (entries[2].kind, entries[2].payload) == ("GatewayLogout", ["session ended"])


async def test_locks_round_trip_and_clearing_writes_the_audit_log(store: Store, clock: VirtualClock) -> None:
    cooldown = LockRecord("lock-1", 7, "cooldown", "3 trades in a minute", start=T0, until=T0 + timedelta(minutes=1),
                          rules=("trade_frequency_limit",))
    can_trade = LockRecord("lock-2", 7, "until_can_trade", "broker disabled trading", start=T0,
                           condition="canTrade", created_by="engine")
    symbol = LockRecord("lock-3", 8, "symbol", "blocked symbol", start=T0, symbol="RTY", rules=("symbol_block",),
                        flatten=True)
    for lock in (cooldown, can_trade, symbol):
        assert await store.add_lock(lock)
    clock.advance(30)
    assert await store.clear_lock("lock-1", by="admin", why="trader asked", terminal="tty1")
    assert not await store.add_lock(cooldown)  # a replayed event does not revive a cleared lock
    assert not await store.clear_lock("lock-1", by="admin", why="twice")
    assert not await store.clear_lock("no-such-lock", by="admin", why="typo")
    reopened = await _reopen(store, clock)
    try:
        assert await reopened.active_locks(7) == [can_trade]
        assert await reopened.active_locks() == [can_trade, symbol]
        cleared = await reopened.get_lock("lock-1")
        assert cleared is not None and not cleared.active
        assert (cleared.cleared_by, cleared.clear_reason, cleared.cleared_at) == ("admin", "trader asked",
                                                                                  T0 + timedelta(seconds=30))
        assert cleared.rules == ("trade_frequency_limit",) and cleared.until == T0 + timedelta(minutes=1)
        assert await reopened.audit_log() == [AuditEntry(T0 + timedelta(seconds=30), "admin", "unlock lock-1",
                                                         "trader asked", "tty1", 7)]
    finally:
        await reopened.close()


async def test_daily_pnl_is_one_row_per_account_and_trading_day(store: Store, clock: VirtualClock) -> None:
    monday, tuesday = date(2026, 3, 2), date(2026, 3, 3)
    store.put_daily_pnl(DailyPnl(7, monday, realized=-120.5, fees=8.4, trades=6, high_balance=50_120.0))
    store.put_daily_pnl(DailyPnl(7, tuesday, realized=10.0, fees=1.4, trades=1))
    store.put_daily_pnl(DailyPnl(7, tuesday, realized=-310.0, fees=4.2, trades=3, high_balance=50_010.0))
    store.put_daily_pnl(DailyPnl(8, tuesday, realized=5.0))
    reopened = await _reopen(store, clock)
    try:
        assert await reopened.daily_pnl(7) == [
            DailyPnl(7, monday, -120.5, 8.4, 6, 50_120.0), DailyPnl(7, tuesday, -310.0, 4.2, 3, 50_010.0)]
        assert await reopened.daily_pnl(8, tuesday) == [DailyPnl(8, tuesday, 5.0, 0.0, 0, None)]
        assert await reopened.daily_pnl(9) == []
    finally:
        await reopened.close()


async def test_seen_trades_are_counted_once_and_filter_by_time_and_day(store: Store, clock: VirtualClock) -> None:
    day = date(2026, 3, 3)
    trades = [SeenTrade(7, 100 + i, day, T0 + timedelta(minutes=i), "CON.F.US.MNQ.H26", pnl=-25.0 * i)
              for i in range(3)]
    for trade in trades:
        store.mark_trade_seen(trade)
    store.mark_trade_seen(SeenTrade(7, 100, day, T0 + timedelta(hours=5), "CON.F.US.OTHER", pnl=1.0))  # replayed
    reopened = await _reopen(store, clock)
    try:
        assert await reopened.seen_trades(7) == trades
        assert await reopened.seen_trades(7, since=T0 + timedelta(minutes=1)) == trades[1:]
        assert await reopened.seen_trades(7, trading_day=date(2026, 3, 2)) == []
    finally:
        await reopened.close()


async def test_timers_round_trip_replace_and_delete(store: Store, clock: VirtualClock) -> None:
    store.put_timer(TimerRecord("t1", 7, "no_stop_grace", T0 + timedelta(seconds=30), {"contract": "MNQ"}))
    store.put_timer(TimerRecord("t2", 7, "lock_expiry", T0 + timedelta(minutes=5), {"lock": "lock-1"}))
    store.put_timer(TimerRecord("t1", 7, "no_stop_grace", T0 + timedelta(seconds=10), {"contract": "MNQ"}))
    store.put_timer(TimerRecord("t3", 8, "lock_expiry", T0, {}))
    store.delete_timer("t3")
    reopened = await _reopen(store, clock)
    try:
        assert await reopened.timers(7) == [
            TimerRecord("t1", 7, "no_stop_grace", T0 + timedelta(seconds=10), {"contract": "MNQ"}),
            TimerRecord("t2", 7, "lock_expiry", T0 + timedelta(minutes=5), {"lock": "lock-1"})]
        assert await reopened.timers(8) == []
    finally:
        await reopened.close()


async def test_enforcement_log_newest_first_with_duration(store: Store, clock: VirtualClock) -> None:
    records = [EnforcementRecord(f"7:daily_loss:MNQ:{i}", 7, {"kind": "flatten_account"}, ("daily_realized_loss",),
                                 started=T0 + timedelta(seconds=i), finished=T0 + timedelta(seconds=i, milliseconds=3),
                                 outcome="verified", detail="flat") for i in range(3)]
    for record in records:
        store.log_enforcement(record)
    store.log_enforcement(EnforcementRecord("8:x", 8, {"kind": "cancel_orders"}, ("r",), T0, T0, "failed", "timeout"))
    reopened = await _reopen(store, clock)
    try:
        assert await reopened.enforcement_log(7) == records[::-1]
        assert await reopened.enforcement_log(limit=1) == [records[2]]
        assert records[0].duration_ms == 3.0
    finally:
        await reopened.close()


async def test_audit_entries_round_trip_and_filter_by_time(store: Store, clock: VirtualClock) -> None:
    await store.audit("admin", "config reload", "new daily limit", "pts/0")
    clock.advance(60)
    await store.audit("admin", "manual lock", "trader asked for a break", "pts/1", account_id=7)
    reopened = await _reopen(store, clock)
    try:
        entries = await reopened.audit_log()
        assert [(e.what, e.account_id) for e in entries] == [("config reload", None), ("manual lock", 7)]
        assert await reopened.audit_log(since=T0 + timedelta(seconds=1)) == entries[1:]
    finally:
        await reopened.close()


async def test_engine_state_is_one_snapshot_per_scope_replaced_whole(store: Store, clock: VirtualClock) -> None:
    store.append_journal("GatewayUserTrade", {"id": 1}, 7)
    store.save_engine_state({"version": 1, "accounts": [{"realized": -50.0}]}, version=1)
    store.append_journal("GatewayUserTrade", {"id": 2}, 7)
    clock.advance(5)
    store.save_engine_state({"version": 2, "accounts": [{"realized": -80.0}]}, version=2, journal_seq=1)
    account = Account(id=8, name="PRAC-8", balance=50_000.0, can_trade=True, is_visible=True, simulated=True)
    store.save_engine_state({"account": account.to_wire()}, version=2, scope="account:8")
    reopened = await _reopen(store, clock)
    try:
        whole = await reopened.engine_state()
        assert whole is not None
        assert (whole.scope, whole.version, whole.journal_seq, whole.state, whole.saved_at) == (
            "engine", 2, 1, {"version": 2, "accounts": [{"realized": -80.0}]}, T0 + timedelta(seconds=5))
        eight = await reopened.engine_state("account:8")
        assert eight is not None and Account.from_wire(eight.state["account"]) == account
        assert eight.journal_seq == 2
        assert await reopened.engine_state("account:9") is None
    finally:
        await reopened.close()


async def test_order_history_keeps_the_latest_state_and_first_seen(store: Store, clock: VirtualClock) -> None:
    store.record_order(_order(1))
    clock.advance(10)
    store.record_order(_order(1, OrderStatus.CANCELLED))
    store.record_order(_order(2))
    reopened = await _reopen(store, clock)
    try:
        history = await reopened.orders(7)
        assert [(r.order.id, r.order.status) for r in history] == [(1, OrderStatus.CANCELLED), (2, OrderStatus.OPEN)]
        assert history[0].first_seen == T0 and history[0].last_seen == T0 + timedelta(seconds=10)
        assert history[0].order == _order(1, OrderStatus.CANCELLED)
        assert await reopened.orders(7, since=T0 + timedelta(seconds=5)) == history
        assert await reopened.orders(8) == []
    finally:
        await reopened.close()


async def test_reads_see_every_write_queued_before_them(store: Store) -> None:
    for i in range(500):
        store.append_journal("e", {"i": i})
    store.put_daily_pnl(DailyPnl(7, date(2026, 3, 3), realized=-1.0))
    assert store.queued > 0
    assert len(await store.journal()) == 500
    assert (await store.daily_pnl(7))[0].realized == -1.0


async def test_close_checkpoints_the_wal_into_the_database_file(db_path: Path, clock: VirtualClock) -> None:
    store = await Store.open(db_path, clock)
    store.append_journal("e", {"x": "y" * 1000})
    await store.close()
    await store.close()  # idempotent
    wal = db_path.with_name(db_path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0


async def test_concurrent_closes_close_once(db_path: Path, clock: VirtualClock) -> None:
    store = await Store.open(db_path, clock, durable_fsync=False)
    await store.add_lock(LockRecord("l", 7, "manual", "break", T0))
    await asyncio.gather(store.close(), store.close())
    reopened = await Store.open(db_path, clock)
    try:
        assert [lock.id for lock in await reopened.active_locks()] == ["l"]
    finally:
        await reopened.close()


async def test_a_slow_disk_never_blocks_the_event_loop(store: Store) -> None:
    release = threading.Event()
    store._write(lambda conn: release.wait(5))  # the writer thread is stuck in a commit
    store.append_journal("e", {"n": 0})
    await asyncio.sleep(0.05)  # the batch is on the writer thread now
    start = time.perf_counter()
    for i in range(1000):
        store.append_journal("e", {"n": i + 1})
    flushed = asyncio.ensure_future(store.flush())
    await asyncio.sleep(0.05)
    assert time.perf_counter() - start < 0.5 and not flushed.done()
    release.set()
    await flushed
    assert len(await store.journal()) == 1001
