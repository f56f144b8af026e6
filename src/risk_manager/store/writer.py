"""`Store`: the daemon's SQLite store, with ONE writer.

Callers on the event loop enqueue writes (plain method calls, no await, no disk) and await only what
must be on disk before they go on: `flush()` before an enforcement result is reported, and the
durable calls (`add_lock`, `clear_lock`, `finish_action`, …) before a broker call or a report. A single asyncio task
drains the queue into one transaction per batch ("group commit": whatever arrived while the
previous batch was committing goes into the next) and runs it on one dedicated thread, the only
thread that touches the connection.

Why stdlib `sqlite3` on a one-thread executor rather than `aiosqlite`: aiosqlite also runs one
thread per connection, but turns every statement into a future; we batch hundreds of statements
into one call, so a dependency would buy nothing.

The at-most-once claim has a fast path, `claim_now`: the store keeps every idempotency key it knows
with its state in memory (loaded at open, updated as calls are queued — the store is the only
writer), so a claim is decided on the event loop in microseconds and its row is queued like any
other write; the first broker request does not wait for the disk (docs/enforcement.md says why this
keeps restarts from repeating a placement).

If the disk fails while running (full, I/O error, corruption), the store copies what it can into
an in-memory database, logs `store_degraded` at ERROR and sets `degraded`; the event path never
sees an exception. What is written from then on is lost at exit: the daemon shows it.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Self, TypeVar

from risk_manager.domain import (
    Clock,
    DepthEvent,
    GatewayEvent,
    LogoutEvent,
    MarketTradeEvent,
    Order,
    QuoteEvent,
    encode_market_event,
    encode_user_event,
)
from risk_manager.logs import log_event
from risk_manager.store import tables
from risk_manager.store.database_file import connect_writer, is_storage_failure, storage_error
from risk_manager.store.errors import StoreClosedError
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
    PruneReport,
    SeenTrade,
    TimerRecord,
)
from risk_manager.store.retention import Retention, prune
from risk_manager.store.schema import LATEST_VERSION, migrate, schema_version

logger = logging.getLogger("risk_manager.store")

# In memory (degraded), the journal keeps only its newest entries, so a long degraded run cannot
# exhaust the daemon's memory (~10 MB of typical events); the other tables are small.
DEGRADED_JOURNAL_KEEP = 20_000

# Event-loop iterations the writer waits after being woken before it hands a batch to its thread: the
# daemon's event → engine → enforcer → HTTP request path is two hops.
YIELDS_BEFORE_BATCH = 2

T = TypeVar("T")
_JOURNAL = None  # the write-op function slot of a journal append (batched with executemany)
_WriteFn = Callable[..., object]


@dataclass(slots=True)
class _Call:
    """A function run on the writer thread after every write queued before it; its result is awaited."""

    fn: Callable[[sqlite3.Connection], Any] | None
    future: asyncio.Future[Any]
    durable: bool = False      # commit with synchronous=FULL (fsync of the WAL)
    transaction: bool = True   # run inside BEGIN IMMEDIATE … COMMIT


_Op = tuple[_WriteFn | None, tuple[Any, ...]]


@dataclass(slots=True)
class _Outcome:
    call: _Call
    result: Any = None
    error: BaseException | None = None


@dataclass(slots=True)
class _WriterState:
    """What only the writer thread touches."""

    conn: sqlite3.Connection
    degraded_reason: str | None = None
    rejected: int = 0
    applied_migrations: list[int] = field(default_factory=list)
    actions: dict[str, ActionState] = field(default_factory=dict)  # read once at open, then owned by the loop


class Store:
    """Open with `await Store.open(path, clock)`; close with `await store.close()` (or `async with`)."""

    def __init__(self, path: Path, clock: Clock, retention: Retention, executor: ThreadPoolExecutor,
                 state: _WriterState, last_seq: int, batch_max: int, durable_fsync: bool,
                 on_degraded: Callable[[str], None] | None) -> None:
        self.path = path
        self.retention = retention
        self._clock = clock
        self._executor = executor
        self._state = state
        self._seq = last_seq
        self._batch_max = batch_max
        self._durable_fsync = durable_fsync
        self._on_degraded = on_degraded
        self._ops: list[_Op | _Call] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._closed = False
        self._close_task: asyncio.Task[None] | None = None
        self._degraded_reason: str | None = None
        # Every idempotency key with its state, mirrored as calls are queued (queue order = disk order).
        self._actions: dict[str, ActionState] = state.actions
        state.actions = {}
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._writer(), name="store-writer")

    # ---- life cycle ---------------------------------------------------------------------------------

    @classmethod
    async def open(cls, path: Path | str, clock: Clock, *, retention: Retention | None = None,
                   batch_max: int = 2000, durable_fsync: bool = True,
                   on_degraded: Callable[[str], None] | None = None) -> Self:
        """Open (creating, migrating) the database at `path`; raises `StoreError` if it cannot be used.

        `durable_fsync`: the durable writes (locks, claims, action states, audit) fsync the WAL when
        they commit, so they survive a power cut too; False makes them as durable as `flush()` (a
        process kill, not a power cut) for disks where an fsync costs many milliseconds.
        `on_degraded(reason)` is called on the event loop if the disk fails later and the store
        switches to memory.
        """
        if batch_max < 1:
            raise ValueError(f"batch_max must be ≥ 1, got {batch_max}")
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        loop = asyncio.get_running_loop()
        try:
            where, state, last_seq = await loop.run_in_executor(executor, _open_on_writer_thread, Path(path), clock)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        store = cls(where, clock, retention or Retention(), executor, state, last_seq, batch_max, durable_fsync,
                    on_degraded)
        log_event(logger, "store_opened", path=where, schema_version=LATEST_VERSION,
                  migrated=",".join(map(str, state.applied_migrations)) or "none", journal_seq=last_seq)
        return store

    async def close(self) -> None:
        """Commit everything queued, checkpoint the WAL into the database file, close. Idempotent."""
        if self._close_task is None:
            self._close_task = self._loop.create_task(self._close(), name="store-close")
        await asyncio.shield(self._close_task)

    async def _close(self) -> None:
        self._closing = True
        self._wake.set()
        await self._task
        self._closed = True
        await self._loop.run_in_executor(self._executor, self._close_on_writer_thread)
        self._executor.shutdown(wait=True)
        log_event(logger, "store_closed", path=self.path, journal_seq=self._seq, degraded=self.degraded)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def degraded(self) -> bool:
        """True once a disk failure switched the store to memory (nothing written since survives a restart)."""
        return self._degraded_reason is not None

    @property
    def degraded_reason(self) -> str | None:
        return self._degraded_reason

    @property
    def journal_seq(self) -> int:
        """The seq of the last journal append (queued or committed)."""
        return self._seq

    @property
    def queued(self) -> int:
        """Writes and calls not yet handed to the writer thread."""
        return len(self._ops)

    # ---- the barrier --------------------------------------------------------------------------------

    async def flush(self) -> None:
        """Return once every write queued before this call is committed (survives a process kill)."""
        await self._call(None)

    # ---- fire-and-forget writes (the event path: no await, no disk) ----------------------------------

    def append_journal(self, kind: str, payload: Any, account_id: int | None = None) -> int:
        """Append one entry (JSON-serialisable `payload`, not mutated afterwards); returns its seq."""
        self._check_open()
        self._seq += 1
        self._enqueue((_JOURNAL, (self._seq, self._clock.timestamp(), account_id, kind, payload)))
        return self._seq

    def journal_event(self, event: GatewayEvent) -> int:
        """Append a decoded gateway event in its wire form (kind = the hub target)."""
        account_id: int | None = None
        if isinstance(event, LogoutEvent):
            kind, payload = "GatewayLogout", [event.reason]
        elif isinstance(event, QuoteEvent | MarketTradeEvent | DepthEvent):
            kind, payload = encode_market_event(event)
        else:
            kind, payload = encode_user_event(event)
            account_id = event.account_id
        return self.append_journal(kind, payload, account_id)

    def put_daily_pnl(self, row: DailyPnl) -> None:
        self._write(tables.upsert_daily_pnl, row, self._clock.timestamp())

    def mark_trade_seen(self, trade: SeenTrade) -> None:
        """Remember a counted fill (ignored if already there)."""
        self._write(tables.insert_seen_trade, trade)

    def put_timer(self, timer: TimerRecord) -> None:
        self._write(tables.upsert_timer, timer)

    def delete_timer(self, timer_id: str) -> None:
        self._write(tables.delete_timer, timer_id)

    def log_enforcement(self, record: EnforcementRecord) -> None:
        self._write(tables.insert_enforcement, record)

    def record_order(self, order: Order) -> None:
        """Keep the latest state of an order in the order history."""
        self._write(tables.upsert_order, order, self._clock.timestamp())

    def save_engine_state(self, state: dict[str, Any], *, version: int, scope: str = "engine",
                          journal_seq: int | None = None) -> None:
        """Replace the snapshot of `scope` (one row, atomic). `journal_seq` defaults to the last append."""
        snapshot = EngineSnapshot(scope, version, self._seq if journal_seq is None else journal_seq, state,
                                  self._clock.now())
        self._write(tables.upsert_engine_state, snapshot)

    # ---- durable writes (awaited: on disk, WAL fsynced, before they return) -------------------------

    async def add_lock(self, lock: LockRecord) -> bool:
        """Store a lock before any broker call is made for it; False if its id is already stored
        (a replayed event): the stored lock stays as it is, cleared or not."""
        return bool(await self._call(lambda conn: tables.insert_lock(conn, lock), durable=True))

    async def clear_lock(self, lock_id: str, *, by: str, why: str, terminal: str = "daemon") -> bool:
        """End an active lock and write the unlock to the audit log, atomically; False if not active."""
        at = self._clock.now()

        def clear(conn: sqlite3.Connection) -> bool:
            found = tables.lock(conn, lock_id)
            if not tables.clear_lock(conn, lock_id, at.timestamp(), by, why):
                return False
            account = found.account_id if found else None
            tables.insert_audit(conn, AuditEntry(at, by, f"unlock {lock_id}", why, terminal, account))
            return True

        return bool(await self._call(clear, durable=True))

    async def audit(self, who: str, what: str, why: str, terminal: str, account_id: int | None = None) -> None:
        entry = AuditEntry(self._clock.now(), who, what, why, terminal, account_id)
        await self._call(lambda conn: tables.insert_audit(conn, entry), durable=True)

    async def record_pending(self, key: str, account_id: int, action: dict[str, Any]) -> bool:
        """Persist a queued action (state pending) so it survives a restart; False if the key exists."""
        at = self._clock.timestamp()
        self._check_open()
        self._actions.setdefault(key, ActionState.PENDING)
        return bool(await self._call(lambda conn: tables.insert_pending(conn, key, account_id, action, at),
                                     durable=True))

    def queue_pending(self, key: str, account_id: int, action: dict[str, Any]) -> None:
        """Record a submitted action (state pending) without waiting: the row is queued behind every
        write queued before it and ahead of every later one — so an engine snapshot queued after the
        submission never commits without it (a kill between the two would lose the action: the
        restored engine has already handled the event that asked for it). Nothing if the key exists."""
        self._check_open()
        if key in self._actions:
            return
        self._actions[key] = ActionState.PENDING
        self._write(tables.insert_pending, key, account_id, action, self._clock.timestamp())

    async def claim(self, key: str, account_id: int, action: dict[str, Any]) -> bool:
        """At most once: True (now in flight, on disk) if `key` never ran; False if it ran or is running.

        Holds across restarts: a key claimed before a crash stays claimed, its state `in_flight` until
        the executor verifies with the broker and calls `finish_action` (or `release_action`).
        """
        if not self.claim_now(key, account_id, action):
            return False
        await self._call(None, durable=True)
        return True

    def claim_now(self, key: str, account_id: int, action: dict[str, Any]) -> bool:
        """`claim` decided at once, without waiting for the disk: True if `key` never ran (or was released)
        and is now in flight; False if it ran or is running — in this process or any earlier one.

        The row is queued and committed by the next batch (within about a millisecond; a process kill
        after that keeps it, `synchronous=NORMAL`); any later durable call (`finish_action`,
        `release_action`, `flush`) commits it first. Never awaits, never touches the disk.
        """
        self._check_open()
        state = self._actions.get(key)
        if state is not None and state is not ActionState.PENDING:
            return False
        self._actions[key] = ActionState.IN_FLIGHT
        self._enqueue((_write_claim, (key, account_id, action, self._clock.timestamp())))
        return True

    def action_state(self, key: str) -> ActionState | None:
        """The state of `key` as queued (what `claim_now` decides on); None if the store never saw it."""
        return self._actions.get(key)

    async def finish_action(self, key: str, *, ok: bool, detail: str = "") -> bool:
        """Mark a claimed action done (verified) or failed; False if the key is unknown."""
        state, at = (ActionState.DONE if ok else ActionState.FAILED), self._clock.timestamp()
        self._check_open()
        if key in self._actions:
            self._actions[key] = state
        return bool(await self._call(lambda conn: tables.set_action_state(conn, key, state, detail, at),
                                     durable=True))

    async def release_action(self, key: str, detail: str) -> bool:
        """Put an in-flight action back to pending (the broker shows it did not happen), so it can be
        claimed again; False if it was not in flight."""
        at = self._clock.timestamp()
        self._check_open()
        if self._actions.get(key) is ActionState.IN_FLIGHT:
            self._actions[key] = ActionState.PENDING
        return bool(await self._call(
            lambda conn: tables.set_action_state(conn, key, ActionState.PENDING, detail, at,
                                                 only_from=ActionState.IN_FLIGHT), durable=True))

    # ---- reads (after every write queued before them) -------------------------------------------------

    async def active_locks(self, account_id: int | None = None) -> list[LockRecord]:
        return await self._call(lambda conn: tables.active_locks(conn, account_id))

    async def get_lock(self, lock_id: str) -> LockRecord | None:
        return await self._call(lambda conn: tables.lock(conn, lock_id))

    async def daily_pnl(self, account_id: int, trading_day: date | None = None) -> list[DailyPnl]:
        return await self._call(lambda conn: tables.daily_pnl(conn, account_id, trading_day))

    async def seen_trades(self, account_id: int, *, since: datetime | None = None,
                          trading_day: date | None = None) -> list[SeenTrade]:
        return await self._call(lambda conn: tables.seen_trades(conn, account_id, since, trading_day))

    async def timers(self, account_id: int | None = None) -> list[TimerRecord]:
        return await self._call(lambda conn: tables.timers(conn, account_id))

    async def unfinished_actions(self) -> list[PendingAction]:
        """Pending and in-flight actions, oldest first: what the executor resumes at start-up."""
        states = (ActionState.PENDING, ActionState.IN_FLIGHT)
        return await self._call(lambda conn: tables.pending_actions(conn, states))

    async def action(self, key: str) -> PendingAction | None:
        found = await self._call(lambda conn: tables.pending_actions(conn, key=key))
        return found[0] if found else None

    async def enforcement_log(self, account_id: int | None = None, limit: int = 100) -> list[EnforcementRecord]:
        return await self._call(lambda conn: tables.enforcement_log(conn, account_id, limit))

    async def audit_log(self, since: datetime | None = None) -> list[AuditEntry]:
        return await self._call(lambda conn: tables.audit_log(conn, since))

    async def engine_state(self, scope: str = "engine") -> EngineSnapshot | None:
        return await self._call(lambda conn: tables.engine_state(conn, scope))

    async def orders(self, account_id: int, since: datetime | None = None) -> list[OrderRecord]:
        return await self._call(lambda conn: tables.orders(conn, account_id, since))

    async def journal(self, after_seq: int = 0, account_id: int | None = None,
                      limit: int | None = None) -> list[JournalEntry]:
        return await self._call(lambda conn: tables.journal(conn, after_seq, account_id, limit))

    async def schema_version(self) -> int:
        return await self._call(schema_version)

    # ---- maintenance --------------------------------------------------------------------------------

    async def prune(self, now: datetime | None = None) -> PruneReport:
        """Delete rows older than the retention allows (run daily), then return freed pages to the disk."""
        when = now or self._clock.now()
        keep_days = self.retention.finished_actions_days

        def run(conn: sqlite3.Connection) -> tuple[PruneReport, list[str]]:
            conn.execute("BEGIN IMMEDIATE")
            try:
                forgotten = ([] if keep_days is None
                             else tables.finished_action_keys(conn, tables.iso(when - timedelta(days=keep_days))))
                report = prune(conn, self.retention, when)
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
            conn.execute("PRAGMA incremental_vacuum").fetchall()
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            return report, forgotten

        report, forgotten = await self._call(run, transaction=False)
        for key in forgotten:  # done/failed is final: nothing queued since can have changed these keys
            if self._actions.get(key) in (ActionState.DONE, ActionState.FAILED):
                del self._actions[key]
        log_event(logger, "store_pruned", path=self.path, before=when.isoformat(), removed=report.total,
                  **report.removed)
        return report

    # ---- the writer ---------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closing or self._closed:
            raise StoreClosedError(f"the store {self.path} is closed")

    def _enqueue(self, item: _Op | _Call) -> None:
        self._ops.append(item)
        if not self._wake.is_set():
            self._wake.set()

    def _write(self, fn: _WriteFn, *args: Any) -> None:
        self._check_open()
        self._enqueue((fn, args))

    async def _call(self, fn: Callable[[sqlite3.Connection], T] | None, *, durable: bool = False,
                    transaction: bool = True) -> T:
        self._check_open()
        future: asyncio.Future[T] = self._loop.create_future()
        self._enqueue(_Call(fn, future, durable, transaction))
        return await future

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            # Let the tasks the same event made ready run first — above all the enforcer's first broker
            # request — before a batch goes to the writer thread, whose Python work contends for the GIL
            # with that request (paired runs: breach → request p99 5.1 → 2.8 ms; docs/performance.md).
            for _ in range(YIELDS_BEFORE_BATCH):
                await asyncio.sleep(0)
            while self._ops:
                batch, self._ops = self._ops[:self._batch_max], self._ops[self._batch_max:]
                try:
                    outcomes = await self._loop.run_in_executor(self._executor, self._execute, batch)
                except Exception as exc:  # a bug in the writer itself: fail the waiting calls, keep going
                    log_event(logger, "store_writer_error", logging.ERROR, path=self.path, error=repr(exc))
                    outcomes = [_Outcome(c, error=exc) for c in batch if isinstance(c, _Call)]
                for outcome in outcomes:
                    if outcome.call.future.done():
                        continue
                    if outcome.error is not None:
                        outcome.call.future.set_exception(outcome.error)
                    else:
                        outcome.call.future.set_result(outcome.result)
                self._note_degraded()
            if self._closing and not self._ops:
                return

    def _note_degraded(self) -> None:
        reason = self._state.degraded_reason
        if reason is not None and self._degraded_reason is None:
            self._degraded_reason = reason
            if self._on_degraded is not None:
                try:
                    self._on_degraded(reason)
                except Exception as exc:
                    log_event(logger, "store_degraded_callback_failed", logging.ERROR, error=repr(exc))

    # Everything below runs on the writer thread.

    def _execute(self, batch: Sequence[_Op | _Call]) -> list[_Outcome]:
        durable = self._durable_fsync and any(isinstance(item, _Call) and item.durable for item in batch)
        if durable:
            self._pragma_sync("FULL")
        outcomes: list[_Outcome] = []
        start = 0
        while start < len(batch):
            end = start
            while end < len(batch) and not isinstance(batch[end], _Call):
                end += 1
            if end > start:
                ops: list[_Op] = [op for op in batch[start:end] if not isinstance(op, _Call)]
                self._guarded(partial(self._write_ops, ops=ops), None)
            if end < len(batch):
                call = batch[end]
                assert isinstance(call, _Call)
                outcomes.append(self._run_call(call))
            start = end + 1
        if durable:
            self._pragma_sync("NORMAL")
        if self._state.degraded_reason is not None:
            self._trim_memory_journal()
        return outcomes

    def _trim_memory_journal(self) -> None:
        try:
            self._state.conn.execute("DELETE FROM journal WHERE seq <= (SELECT MAX(seq) FROM journal) - ?",
                                     (DEGRADED_JOURNAL_KEEP,))
        except sqlite3.Error as exc:
            log_event(logger, "store_trim_failed", logging.ERROR, error=repr(exc))

    def _pragma_sync(self, level: str) -> None:
        try:
            self._state.conn.execute(f"PRAGMA synchronous = {level}")
        except sqlite3.Error as exc:
            log_event(logger, "store_pragma_failed", logging.WARNING, synchronous=level, error=repr(exc))

    def _run_call(self, call: _Call) -> _Outcome:
        fn = call.fn
        if fn is None:
            return _Outcome(call)
        if call.transaction:
            fn = _in_transaction(fn)
        try:
            return _Outcome(call, result=self._guarded(fn, call))
        except Exception as exc:
            return _Outcome(call, error=exc)

    def _guarded(self, fn: Callable[[sqlite3.Connection], T], call: _Call | None) -> T | None:
        """Run `fn` on the connection; on a storage failure switch to memory and run it there."""
        try:
            return fn(self._state.conn)
        except Exception as exc:
            if not is_storage_failure(exc) or self._state.degraded_reason is not None:
                if call is None:  # a fire-and-forget batch: nobody to raise to
                    log_event(logger, "store_write_failed", logging.ERROR, path=self.path, error=repr(exc))
                    return None
                raise
            self._degrade(exc)
            return fn(self._state.conn)

    def _write_ops(self, conn: sqlite3.Connection, ops: list[_Op]) -> None:
        journal: list[tuple[int, float, int | None, str, Any]] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for fn, args in ops:
                if fn is _JOURNAL:
                    journal.append(args)
                    continue
                try:
                    fn(conn, *args)
                except Exception as exc:
                    if is_storage_failure(exc):
                        raise
                    self._reject(fn.__name__, exc)
            rows = []
            for append in journal:
                try:
                    rows.append(tables.journal_row(*append))
                except (TypeError, ValueError) as exc:
                    self._reject(f"journal {append[3]} seq={append[0]}", exc)
            conn.executemany(tables.JOURNAL_INSERT, rows)
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise

    def _reject(self, what: str, exc: Exception) -> None:
        self._state.rejected += 1
        log_event(logger, "store_write_rejected", logging.ERROR, path=self.path, write=what, error=repr(exc),
                  rejected_total=self._state.rejected)

    def _degrade(self, exc: BaseException) -> None:
        old = self._state.conn
        _rollback(old)
        memory = sqlite3.connect(":memory:", isolation_level=None)
        try:
            old.backup(memory)
            copied = True
        except sqlite3.Error as backup_exc:
            copied = False
            log_event(logger, "store_degraded_copy_failed", logging.ERROR, path=self.path, error=repr(backup_exc))
            memory.close()
            memory = sqlite3.connect(":memory:", isolation_level=None)
        if schema_version(memory) < LATEST_VERSION:
            migrate(memory, self.path, tables.iso(self._clock.timestamp()))
        try:
            old.close()
        except sqlite3.Error as close_exc:
            log_event(logger, "store_close_failed", logging.WARNING, path=self.path, error=repr(close_exc))
        self._state.conn = memory
        self._state.degraded_reason = f"{type(exc).__name__}: {exc}"
        log_event(logger, "store_degraded", logging.ERROR, path=self.path, error=repr(exc), state_copied=copied,
                  consequence="running in memory: locks, claims and the journal written from now on will NOT "
                  "survive a restart; free disk space or fix the file, then restart risk-manager")

    def _close_on_writer_thread(self) -> None:
        conn = self._state.conn
        try:
            if self._state.degraded_reason is None:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as exc:
            log_event(logger, "store_checkpoint_failed", logging.WARNING, path=self.path, error=repr(exc))
        finally:
            conn.close()


def _write_claim(conn: sqlite3.Connection, key: str, account_id: int, action: dict[str, Any], at: float) -> None:
    """The row of a `claim_now` (writer thread). The in-memory index already decided; the database
    disagreeing means something else wrote to it — worth a loud line, not a crash of the batch."""
    if not tables.claim_action(conn, key, account_id, action, at):
        log_event(logger, "store_claim_conflict", logging.ERROR, idempotency_key=key, account_id=account_id,
                  consequence="the database already held this key as running or finished; another process may "
                  "be writing to the store")


def _rollback(conn: sqlite3.Connection) -> None:
    if not conn.in_transaction:
        return
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error as exc:
        log_event(logger, "store_rollback_failed", logging.WARNING, error=repr(exc))


def _in_transaction(fn: Callable[[sqlite3.Connection], T]) -> Callable[[sqlite3.Connection], T]:
    def run(conn: sqlite3.Connection) -> T:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        return result

    return run


def _open_on_writer_thread(path: Path, clock: Clock) -> tuple[Path, _WriterState, int]:
    path = path.expanduser().absolute()
    conn = connect_writer(path)
    try:
        applied = migrate(conn, path, tables.iso(clock.timestamp()))
        last_seq = tables.last_journal_seq(conn)
        actions = tables.action_states(conn)
    except sqlite3.Error as exc:
        conn.close()
        raise storage_error(path, exc, "migrating the schema") from exc
    except BaseException:
        conn.close()
        raise
    return path, _WriterState(conn, applied_migrations=applied, actions=actions), last_seq
