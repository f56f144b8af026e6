"""Row-level reads and writes of every table, as plain functions of an `sqlite3.Connection`.

The writer (`Store`) runs the write functions on its own thread inside its batched transactions;
the read functions are shared by `Store` (start-up/restore) and `StoreReader` (read-only fallback
for dashboards), so both see the same records.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from risk_manager.domain import Order
from risk_manager.store.records import (
    ActionState,
    AuditEntry,
    DailyPnl,
    EnforcementRecord,
    EngineSnapshot,
    JournalEntry,
    LockRecord,
    OrderRecord,
    PendingAction,
    SeenTrade,
    TimerRecord,
)

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # fixed width, so text order is time order


def iso(value: datetime | float) -> str:
    """A time as stored: UTC text with microseconds. Accepts an aware datetime or POSIX seconds."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store only takes aware (UTC) times")
        return value.astimezone(UTC).strftime(_TIME_FORMAT)
    return datetime.fromtimestamp(value, UTC).strftime(_TIME_FORMAT)


def parse_iso(text: str) -> datetime:
    return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)


def _opt_iso(value: datetime | None) -> str | None:
    return None if value is None else iso(value)


def _opt_time(text: str | None) -> datetime | None:
    return None if text is None else parse_iso(text)


def _json(value: Any) -> str:
    # ASCII escapes: any str survives, even a lone surrogate a broker's "\ud800" escape decodes to.
    return json.dumps(value, separators=(",", ":"))


# ---- writes (run on the writer thread, inside a transaction) ----------------------------------------

JOURNAL_INSERT = "INSERT INTO journal (seq, at, account_id, kind, payload) VALUES (?, ?, ?, ?, ?)"


def journal_row(seq: int, ts: float, account_id: int | None, kind: str, payload: Any) -> tuple[Any, ...]:
    """The JOURNAL_INSERT parameters of one append (raises TypeError/ValueError for a non-JSON payload)."""
    return (seq, iso(ts), account_id, kind, _json(payload))


def insert_lock(conn: sqlite3.Connection, lock: LockRecord) -> bool:
    """Store a new lock; False (and nothing changes) if a lock with this id exists, even cleared."""
    cursor = conn.execute(
        "INSERT OR IGNORE INTO locks (id, account_id, kind, symbol, start, until, condition, reason, rules, "
        "created_by, flatten, cleared_at, cleared_by, clear_reason) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (lock.id, lock.account_id, lock.kind, lock.symbol, iso(lock.start), _opt_iso(lock.until), lock.condition,
         lock.reason, _json(list(lock.rules)), lock.created_by, int(lock.flatten), _opt_iso(lock.cleared_at),
         lock.cleared_by, lock.clear_reason))
    return cursor.rowcount == 1


def clear_lock(conn: sqlite3.Connection, lock_id: str, at: float, by: str, why: str) -> bool:
    cursor = conn.execute(
        "UPDATE locks SET cleared_at = ?, cleared_by = ?, clear_reason = ? WHERE id = ? AND cleared_at IS NULL",
        (iso(at), by, why, lock_id))
    return cursor.rowcount == 1


def upsert_daily_pnl(conn: sqlite3.Connection, row: DailyPnl, at: float) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO daily_pnl (account_id, trading_day, realized, fees, trades, high_balance, updated) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (row.account_id, row.trading_day.isoformat(), row.realized, row.fees, row.trades, row.high_balance, iso(at)))


def insert_seen_trade(conn: sqlite3.Connection, trade: SeenTrade) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO seen_trades (account_id, trade_id, trading_day, at, contract_id, pnl) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (trade.account_id, trade.trade_id, trade.trading_day.isoformat(), iso(trade.at), trade.contract_id,
         trade.pnl))


def upsert_timer(conn: sqlite3.Connection, timer: TimerRecord) -> None:
    conn.execute("INSERT OR REPLACE INTO timers (id, account_id, kind, deadline, payload) VALUES (?, ?, ?, ?, ?)",
                 (timer.id, timer.account_id, timer.kind, iso(timer.deadline), _json(timer.payload)))


def delete_timer(conn: sqlite3.Connection, timer_id: str) -> None:
    conn.execute("DELETE FROM timers WHERE id = ?", (timer_id,))


def insert_pending(conn: sqlite3.Connection, key: str, account_id: int, action: dict[str, Any], at: float) -> bool:
    cursor = conn.execute(
        "INSERT OR IGNORE INTO pending_actions (idempotency_key, account_id, action, state, attempts, created, "
        "updated, detail) VALUES (?, ?, ?, 'pending', 0, ?, ?, '')",
        (key, account_id, _json(action), iso(at), iso(at)))
    return cursor.rowcount == 1


def claim_action(conn: sqlite3.Connection, key: str, account_id: int, action: dict[str, Any], at: float) -> bool:
    """Move `key` to in_flight if it never ran; False if it is (or was) in flight, done or failed."""
    stamp = iso(at)
    cursor = conn.execute(
        "INSERT INTO pending_actions (idempotency_key, account_id, action, state, attempts, created, updated, "
        "detail) VALUES (?, ?, ?, 'in_flight', 1, ?, ?, '') ON CONFLICT (idempotency_key) DO UPDATE SET "
        "state = 'in_flight', attempts = attempts + 1, updated = excluded.updated WHERE state = 'pending'",
        (key, account_id, _json(action), stamp, stamp))
    return cursor.rowcount == 1


def action_states(conn: sqlite3.Connection) -> dict[str, ActionState]:
    """Every idempotency key the store knows, with its state (the writer's in-memory claim index)."""
    rows = conn.execute("SELECT idempotency_key, state FROM pending_actions")
    return {key: ActionState(state) for key, state in rows}


def finished_action_keys(conn: sqlite3.Connection, before: str) -> list[str]:
    """Keys of done/failed actions last updated before `before` (ISO): what retention is about to delete."""
    return [key for (key,) in conn.execute(
        "SELECT idempotency_key FROM pending_actions WHERE state IN ('done', 'failed') AND updated < ?", (before,))]


def set_action_state(conn: sqlite3.Connection, key: str, state: ActionState, detail: str, at: float,
                     only_from: ActionState | None = None) -> bool:
    sql = "UPDATE pending_actions SET state = ?, detail = ?, updated = ? WHERE idempotency_key = ?"
    params: tuple[Any, ...] = (state.value, detail, iso(at), key)
    if only_from is not None:
        sql += " AND state = ?"
        params += (only_from.value,)
    return conn.execute(sql, params).rowcount == 1


def insert_enforcement(conn: sqlite3.Connection, record: EnforcementRecord) -> None:
    conn.execute(
        "INSERT INTO enforcement_log (idempotency_key, account_id, action, rules, started, finished, duration_ms, "
        "outcome, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (record.key, record.account_id, _json(record.action), _json(list(record.rules)), iso(record.started),
         iso(record.finished), record.duration_ms, record.outcome, record.detail))


def insert_audit(conn: sqlite3.Connection, entry: AuditEntry) -> None:
    conn.execute("INSERT INTO audit_log (at, who, what, why, terminal, account_id) VALUES (?, ?, ?, ?, ?, ?)",
                 (iso(entry.at), entry.who, entry.what, entry.why, entry.terminal, entry.account_id))


def upsert_engine_state(conn: sqlite3.Connection, snapshot: EngineSnapshot) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO engine_state (scope, version, journal_seq, state, saved_at) VALUES (?, ?, ?, ?, ?)",
        (snapshot.scope, snapshot.version, snapshot.journal_seq, _json(snapshot.state), iso(snapshot.saved_at)))


def upsert_order(conn: sqlite3.Connection, order: Order, at: float) -> None:
    stamp = iso(at)
    conn.execute(
        "INSERT INTO orders (account_id, order_id, contract_id, status, wire, first_seen, last_seen) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account_id, order_id) DO UPDATE SET "
        "contract_id = excluded.contract_id, status = excluded.status, wire = excluded.wire, "
        "last_seen = excluded.last_seen",
        (order.account_id, order.id, order.contract_id, int(order.status), _json(order.to_wire()), stamp, stamp))


# ---- reads ----------------------------------------------------------------------------------------------

def _where(clauses: Sequence[tuple[str, Any]], fixed: Sequence[str] = ()) -> tuple[str, tuple[Any, ...]]:
    """`WHERE a AND b` from the `fixed` conditions and the (clause, value) pairs whose value is not None."""
    used = [(clause, value) for clause, value in clauses if value is not None]
    conditions = [*fixed, *(c for c, _ in used)]
    if not conditions:
        return "", ()
    return " WHERE " + " AND ".join(conditions), tuple(v for _, v in used)


def last_journal_seq(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM journal").fetchone()[0])


def journal(conn: sqlite3.Connection, after_seq: int = 0, account_id: int | None = None,
            limit: int | None = None) -> list[JournalEntry]:
    where, params = _where([("seq > ?", after_seq), ("account_id = ?", account_id)])
    sql = f"SELECT seq, at, account_id, kind, payload FROM journal{where} ORDER BY seq"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [JournalEntry(seq, parse_iso(at), acc, kind, json.loads(payload))
            for seq, at, acc, kind, payload in conn.execute(sql, params)]


def journal_tail(conn: sqlite3.Connection, count: int) -> list[JournalEntry]:
    """The last `count` entries, oldest first."""
    rows = conn.execute("SELECT seq, at, account_id, kind, payload FROM journal ORDER BY seq DESC LIMIT ?",
                        (count,)).fetchall()
    return [JournalEntry(seq, parse_iso(at), acc, kind, json.loads(payload))
            for seq, at, acc, kind, payload in reversed(rows)]


_LOCK_COLUMNS = ("id, account_id, kind, symbol, start, until, condition, reason, rules, created_by, flatten, "
                 "cleared_at, cleared_by, clear_reason")


def _lock(row: tuple[Any, ...]) -> LockRecord:
    (lock_id, account_id, kind, symbol, start, until, condition, reason, rules, created_by, flatten, cleared_at,
     cleared_by, clear_reason) = row
    return LockRecord(id=lock_id, account_id=account_id, kind=kind, reason=reason, start=parse_iso(start),
                      until=_opt_time(until), condition=condition, symbol=symbol, rules=tuple(json.loads(rules)),
                      created_by=created_by, flatten=bool(flatten), cleared_at=_opt_time(cleared_at),
                      cleared_by=cleared_by, clear_reason=clear_reason)


def active_locks(conn: sqlite3.Connection, account_id: int | None = None) -> list[LockRecord]:
    where, params = _where([("account_id = ?", account_id)], fixed=["cleared_at IS NULL"])
    return [_lock(r) for r in conn.execute(f"SELECT {_LOCK_COLUMNS} FROM locks{where} ORDER BY start, id", params)]


def lock(conn: sqlite3.Connection, lock_id: str) -> LockRecord | None:
    row = conn.execute(f"SELECT {_LOCK_COLUMNS} FROM locks WHERE id = ?", (lock_id,)).fetchone()
    return None if row is None else _lock(row)


def daily_pnl(conn: sqlite3.Connection, account_id: int, trading_day: date | None = None) -> list[DailyPnl]:
    where, params = _where([("account_id = ?", account_id),
                            ("trading_day = ?", None if trading_day is None else trading_day.isoformat())])
    return [DailyPnl(acc, date.fromisoformat(day), realized, fees, trades, high)
            for acc, day, realized, fees, trades, high in conn.execute(
                f"SELECT account_id, trading_day, realized, fees, trades, high_balance FROM daily_pnl{where} "
                "ORDER BY trading_day", params)]


def seen_trades(conn: sqlite3.Connection, account_id: int, since: datetime | None = None,
                trading_day: date | None = None) -> list[SeenTrade]:
    where, params = _where([("account_id = ?", account_id), ("at >= ?", None if since is None else iso(since)),
                            ("trading_day = ?", None if trading_day is None else trading_day.isoformat())])
    return [SeenTrade(acc, trade_id, date.fromisoformat(day), parse_iso(at), contract, pnl)
            for acc, trade_id, day, at, contract, pnl in conn.execute(
                f"SELECT account_id, trade_id, trading_day, at, contract_id, pnl FROM seen_trades{where} "
                "ORDER BY at, trade_id", params)]


def timers(conn: sqlite3.Connection, account_id: int | None = None) -> list[TimerRecord]:
    where, params = _where([("account_id = ?", account_id)])
    return [TimerRecord(timer_id, acc, kind, parse_iso(deadline), json.loads(payload))
            for timer_id, acc, kind, deadline, payload in conn.execute(
                f"SELECT id, account_id, kind, deadline, payload FROM timers{where} ORDER BY deadline, id", params)]


def pending_actions(conn: sqlite3.Connection, states: Sequence[ActionState] | None = None,
                    key: str | None = None) -> list[PendingAction]:
    sql = ("SELECT idempotency_key, account_id, action, state, attempts, created, updated, detail "
           "FROM pending_actions")
    params: tuple[Any, ...] = ()
    if key is not None:
        sql, params = sql + " WHERE idempotency_key = ?", (key,)
    elif states is not None:
        sql += f" WHERE state IN ({', '.join('?' for _ in states)})"
        params = tuple(s.value for s in states)
    return [PendingAction(k, acc, json.loads(action), ActionState(state), attempts, parse_iso(created),
                          parse_iso(updated), detail)
            for k, acc, action, state, attempts, created, updated, detail in conn.execute(
                sql + " ORDER BY created, idempotency_key", params)]


def enforcement_log(conn: sqlite3.Connection, account_id: int | None = None, limit: int = 100) -> list[
        EnforcementRecord]:
    """The most recent `limit` records, newest first."""
    where, params = _where([("account_id = ?", account_id)])
    return [EnforcementRecord(key, acc, json.loads(action), tuple(json.loads(rules)), parse_iso(started),
                              parse_iso(finished), outcome, detail)
            for key, acc, action, rules, started, finished, outcome, detail in conn.execute(
                "SELECT idempotency_key, account_id, action, rules, started, finished, outcome, detail "
                f"FROM enforcement_log{where} ORDER BY started DESC, id DESC LIMIT ?", (*params, limit))]


def audit_log(conn: sqlite3.Connection, since: datetime | None = None) -> list[AuditEntry]:
    where, params = _where([("at >= ?", None if since is None else iso(since))])
    return [AuditEntry(parse_iso(at), who, what, why, terminal, acc)
            for at, who, what, why, terminal, acc in conn.execute(
                f"SELECT at, who, what, why, terminal, account_id FROM audit_log{where} ORDER BY id", params)]


def engine_state(conn: sqlite3.Connection, scope: str) -> EngineSnapshot | None:
    row = conn.execute("SELECT scope, version, journal_seq, state, saved_at FROM engine_state WHERE scope = ?",
                       (scope,)).fetchone()
    if row is None:
        return None
    found, version, seq, state, saved_at = row
    return EngineSnapshot(found, version, seq, json.loads(state), parse_iso(saved_at))


def orders(conn: sqlite3.Connection, account_id: int, since: datetime | None = None) -> list[OrderRecord]:
    where, params = _where([("account_id = ?", account_id), ("last_seen >= ?", None if since is None else iso(since))])
    return [OrderRecord(Order.from_wire(json.loads(wire)), parse_iso(first), parse_iso(last))
            for wire, first, last in conn.execute(
                f"SELECT wire, first_seen, last_seen FROM orders{where} ORDER BY first_seen, order_id", params)]
