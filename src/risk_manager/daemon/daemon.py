"""The daemon: the composition root. Start-up order, the event path, gaps, timers, shutdown.

Start-up (the seeds' order; docs/daemon.md): config (already validated) → token (one login per
credential) → rate limiter / circuit breaker (inside each `GatewayClient`) → store → accounts
resolved to ids (`Account/search`) → engines restored from their snapshots → enforcers started and
pending actions resumed → hubs (subscriptions first, then connect) → reconciliation → protecting.

The event path: every hub event (and every missed event a reconciliation finds) is put on ONE
queue and processed in order by one task: contract metadata ensured (`Contract/searchById`,
cached, registered in the engines before the event is evaluated) → journal append → engine.handle
→ lock and broker actions to the enforcer (each recorded pending in the store at once) → engine
snapshot queued after them (so it never commits without the actions it asked for, and no later
than the lock the enforcer stores) → alerts, unlocks and stop checks handled here →
outcomes journaled → status listeners called (off the event path, at most every 0.1 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from risk_manager.daemon.config_dir import AccountSpec, Credential, DaemonConfig
from risk_manager.domain import (
    Account,
    AccountEvent,
    Clock,
    Contract,
    GatewayEvent,
    LogoutEvent,
    OrderEvent,
    PositionEvent,
    QuoteEvent,
    SystemClock,
    TradeEvent,
    UserEvent,
)
from risk_manager.enforcement import ActionOutcome, Enforcer
from risk_manager.engine import (
    Action,
    ActionKind,
    ContractBook,
    Engine,
    EngineCommand,
    ManualLock,
    Reconciled,
    RiskConfig,
    SnapshotError,
    StopsChecked,
)
from risk_manager.engine.actions import make_key
from risk_manager.gateway import (
    AccountMirror,
    BreakerState,
    GatewayClient,
    GatewayConfig,
    GatewayError,
    HubState,
    Reconciler,
    TokenStore,
)
from risk_manager.gateway.circuit_breaker import urgent_calls
from risk_manager.logs import log_event
from risk_manager.store import Retention, Store

log = logging.getLogger("risk_manager.daemon")

ENFORCED_KINDS = frozenset({
    ActionKind.LOCK, ActionKind.CLOSE_POSITION, ActionKind.REDUCE_POSITION, ActionKind.FLATTEN_ACCOUNT,
    ActionKind.CANCEL_ORDERS, ActionKind.MODIFY_STOP, ActionKind.PLACE_STOP})
# A failed action whose key was released is submitted again after these delays (clock time), so a
# REST cut or an open circuit delays enforcement but never abandons it.
RETRY_DELAYS_S = (1.0, 2.0, 5.0, 15.0, 30.0, 60.0)
MAX_RESUBMITS = 20
SNAPSHOT_INTERVAL_S = 0.5
STATUS_INTERVAL_S = 0.1


class DaemonStartError(RuntimeError):
    """The daemon cannot start; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class DaemonOptions:
    gateway: GatewayConfig
    accounts: tuple[AccountSpec, ...]
    database_path: Path
    retention: Retention = field(default_factory=Retention)
    durable_fsync: bool = True
    clock: Clock = field(default_factory=SystemClock)
    run_timers: bool = True          # False: the caller drives time with `on_clock_advanced()` (virtual clock)
    start_timeout_s: float = 15.0    # hubs connected and first reconciliation done
    token_store: Callable[[], TokenStore] | None = None   # default: from config.yaml authentication.storage

    @classmethod
    def from_config(cls, config: DaemonConfig, gateway: GatewayConfig | None = None, **kwargs: Any) -> DaemonOptions:
        return cls(gateway=gateway or config.gateway, accounts=config.accounts, database_path=config.database_path,
                   retention=config.retention, durable_fsync=config.durable_fsync, **kwargs)



def _clock_time(at: float, now: datetime) -> datetime:
    """Clock timestamp `at` as clock time, from `now` and never before it. Computed from the very `now`
    a caller compares with, so a time already reached is exactly `now` on any clock."""
    return now + timedelta(seconds=max(0.0, at - now.timestamp()))

@dataclass(slots=True)
class Connection:
    """One login (credential): its client, hubs, reconciler and enforcer."""

    credential: Credential
    client: GatewayClient
    enforcer: Enforcer | None = None
    reconciler: Reconciler | None = None
    account_ids: list[int] = field(default_factory=list)
    fresh: bool = False
    probed_at: float | None = None   # the breaker probe time (clock timestamp) the daemon already acted on
    readmitted: int = 0              # times the breaker turned half-open or closed (waiting actions resubmitted)


@dataclass(slots=True)
class ProtectedAccount:
    spec: AccountSpec
    account: Account
    connection: Connection
    engine: Engine
    mirror: AccountMirror


@dataclass(frozen=True, slots=True)
class AlertRecord:
    at: datetime
    account_id: int
    rules: tuple[str, ...]
    level: str
    message: str


@dataclass(slots=True)
class DaemonStats:
    events_received: int = 0
    events_processed: int = 0
    reconciled_events: int = 0
    errors: int = 0               # events the engine could not process (logged)
    actions_submitted: int = 0
    resubmitted: int = 0
    alerts: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


class _Tick:
    """Queue marker: run the engines' due timers now."""


_TICK = _Tick()
QueueItem = tuple[GatewayEvent | EngineCommand | _Tick, "asyncio.Future[None] | None"]


def _contract_of(event: object) -> str | None:
    if isinstance(event, OrderEvent):
        return event.order.contract_id
    if isinstance(event, PositionEvent):
        return event.position.contract_id
    if isinstance(event, TradeEvent):
        return event.trade.contract_id
    if isinstance(event, QuoteEvent):
        return event.contract_id
    return None


def _account_of(event: object) -> int | None:
    if isinstance(event, AccountEvent | OrderEvent | PositionEvent | TradeEvent):
        return event.account_id
    account_id = getattr(event, "account_id", None)
    return account_id if isinstance(account_id, int) else None


class Daemon:
    """Protects the configured accounts until `aclose()`. See the module docstring."""

    def __init__(self, options: DaemonOptions) -> None:
        self.options = options
        self.clock = options.clock
        self.store: Store | None = None
        self.connections: list[Connection] = []
        self.accounts: dict[int, ProtectedAccount] = {}
        self.stats = DaemonStats()
        self.outcomes: deque[ActionOutcome] = deque(maxlen=10_000)
        self.alerts: deque[AlertRecord] = deque(maxlen=10_000)
        self.started_at: float | None = None
        self.last_event_at: dict[int, datetime] = {}   # account id -> when its last user event arrived
        self.protecting_after_s: float | None = None
        self._queue: asyncio.Queue[QueueItem] = asyncio.Queue()
        self._processing = False
        self._yield_now = False
        self._worker: asyncio.Task[None] | None = None
        self._timer: asyncio.Task[None] | None = None
        self._timer_wake = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._contracts: dict[str, Contract] = {}
        self._quote_subs: set[str] = set()
        self._dirty: set[int] = set()
        self._save_handle: asyncio.TimerHandle | None = None
        self._retry: dict[str, tuple[Action, int, datetime | None]] = {}  # due None: resubmitted, awaiting
        self._submitted_in: dict[str, int] = {}  # key → its connection's `readmitted` when it was submitted
        self._status_listeners: list[Callable[[dict[str, Any]], None]] = []
        self._activity_listeners: list[Callable[[ActionOutcome | AlertRecord], None]] = []
        self._status_handle: asyncio.TimerHandle | None = None
        self._status_sent = float("-inf")
        self._closing = False
        self._closed = False
        intervals = [a.risk.rules.auth_loss_guard.check_interval for a in options.accounts
                     if a.risk.rules.auth_loss_guard.enabled]
        self._account_poll_every: timedelta | None = min(intervals) if intervals else None
        self._next_account_poll: datetime | None = None

    # ================================================================================ start-up
    async def start(self) -> None:
        """Start in the seeds' order; returns once every account is protected (or raises DaemonStartError)."""
        started = time.perf_counter()
        self.started_at = started
        opts = self.options
        try:
            await self._login()
            self.store = await Store.open(opts.database_path, self.clock, retention=opts.retention,
                                          durable_fsync=opts.durable_fsync, on_degraded=self._store_degraded)
            await self._resolve_accounts()
            await self._restore_engines()
            await self._start_enforcers()
            self._worker = asyncio.create_task(self._work(), name="daemon-events")
            await self._start_hubs()
            await self._wait_protecting()
            self._enforce_restored_locks()
            await self.idle()
            if self._account_poll_every is not None:
                self._next_account_poll = self.clock.now() + self._account_poll_every
        except BaseException:
            await self.aclose()
            raise
        if opts.run_timers:
            self._timer = asyncio.create_task(self._timers(), name="daemon-timers")
        self.protecting_after_s = time.perf_counter() - started
        log_event(log, "daemon_protecting", accounts=",".join(map(str, self.accounts)),
                  ms=round(self.protecting_after_s * 1000, 1), stale=self.stale)
        self._notify_status()

    async def _login(self) -> None:
        by_name: dict[str, Connection] = {}
        for spec in self.options.accounts:
            if spec.credential.name in by_name:
                continue
            store = self.options.token_store() if self.options.token_store is not None else None
            client = GatewayClient(self.options.gateway, spec.credential.user_name, spec.credential.api_key,
                                   clock=self.clock, token_store=store)
            connection = Connection(spec.credential, client)
            by_name[spec.credential.name] = connection
            self.connections.append(connection)
            try:
                await client.start(connect_hubs=False)
            except GatewayError as exc:
                raise DaemonStartError(f"credentials {spec.credential.name!r} (user {spec.credential.user_name}): "
                                       f"{exc}") from exc
            log_event(log, "daemon_logged_in", credentials=spec.credential.name, user=spec.credential.user_name,
                      rate_limit=self.options.gateway.error_handling.rate_limit.general.requests,
                      breaker=client.breaker.state.value)

    def _connection_for(self, credential: Credential) -> Connection:
        return next(c for c in self.connections if c.credential.name == credential.name)

    async def _resolve_accounts(self) -> None:
        listed: dict[str, list[Account]] = {}
        for spec in self.options.accounts:
            connection = self._connection_for(spec.credential)
            if spec.credential.name not in listed:
                try:
                    listed[spec.credential.name] = await connection.client.search_accounts(only_active=False)
                except GatewayError as exc:
                    raise DaemonStartError(f"cannot list the accounts of {spec.credential.user_name}: {exc}") from exc
            accounts = listed[spec.credential.name]
            match = [a for a in accounts if (spec.id is None or a.id == spec.id)
                     and (spec.name is None or a.name == spec.name)]
            if not match:
                known = ", ".join(f"{a.id} {a.name}" for a in accounts) or "none"
                raise DaemonStartError(f"accounts.yaml: account {spec.label!r} is not visible to user "
                                       f"{spec.credential.user_name} (visible: {known})")
            account = match[0]
            if account.id in self.accounts:
                raise DaemonStartError(f"accounts.yaml: account {account.id} ({account.name}) is listed twice")
            connection.account_ids.append(account.id)
            engine = Engine(spec.risk, self.clock, ContractBook())
            self.accounts[account.id] = ProtectedAccount(spec, account, connection, engine, AccountMirror(account.id))
            log_event(log, "daemon_account", account=account.id, name=account.name, can_trade=account.can_trade,
                      rules=",".join(spec.risk.rules.enabled_ids()))

    async def _restore_engines(self) -> None:
        assert self.store is not None
        for account_id, protected in self.accounts.items():
            snapshot = await self.store.engine_state(f"account:{account_id}")
            if snapshot is not None:
                try:
                    protected.engine = Engine.restore(snapshot.state, protected.spec.risk, self.clock, ContractBook())
                    log_event(log, "engine_restored", account=account_id, saved_at=snapshot.saved_at.isoformat(),
                              locks=len(protected.engine.locks(account_id)), journal_seq=snapshot.journal_seq)
                except SnapshotError as exc:
                    log_event(log, "engine_snapshot_unusable", logging.ERROR, account=account_id, error=str(exc),
                              action="starting from the broker's state and the stored locks")
            await self._reimpose_stored_locks(protected)

    async def _reimpose_stored_locks(self, protected: ProtectedAccount) -> None:
        """Fail closed: a dated lock the store holds but the engine does not (snapshot missing or
        damaged) is imposed again until the same end, as a manual lock. Condition locks
        (`until_can_trade`, `symbol`) come back by themselves: their rules see the condition again."""
        assert self.store is not None
        account_id = protected.account.id
        held = {(lk.symbol, lk.until) for lk in protected.engine.locks(account_id)}
        now = self.clock.now()
        for record in await self.store.active_locks(account_id):
            if record.until is None or record.until <= now or (record.symbol, record.until) in held:
                continue
            log_event(log, "stored_lock_reimposed", logging.WARNING, account=account_id, lock=record.id,
                      kind=record.kind, until=record.until.isoformat(), reason=record.reason)
            self._enqueue(ManualLock(account_id, record.until - now, reason=f"{record.kind} lock restored from the "
                                     f"store: {record.reason}", by="restore", symbol=record.symbol,
                                     flatten=record.flatten))

    async def _start_enforcers(self) -> None:
        assert self.store is not None
        om = self.options.gateway.order_management
        for connection in self.connections:
            enforcer = Enforcer(connection.client, self.store, self.clock, positions_hint=self._positions_hint,
                                orders_hint=self._orders_hint, verify_timeout_s=om.verification.timeout / 1000.0,
                                max_attempts=om.verification.max_retries,
                                partial_fill_timeout_s=om.partial_fills.complete_timeout / 1000.0)
            enforcer.on_outcome(self._on_outcome)
            connection.enforcer = enforcer
            await enforcer.start()
            await enforcer.resume_pending()

    async def _start_hubs(self) -> None:
        for connection in self.connections:
            client = connection.client
            reconciler = Reconciler(client, connection.account_ids, view=self._view, emit=self._emit_reconciled)
            connection.reconciler = reconciler
            reconciler.on_fresh(functools.partial(self._on_fresh, connection))
            client.breaker.on_change(functools.partial(self._on_breaker, connection))
            client.user_hub.on_event(self._on_hub_event)
            client.market_hub.on_event(self._on_hub_event)
            client.user_hub.on_state(functools.partial(self._on_hub_state, connection, "user"))
            client.market_hub.on_state(functools.partial(self._on_hub_state, connection, "market"))
            for account_id in connection.account_ids:
                await client.user_hub.subscribe_account(account_id)
            reconciler.attach(client.user_hub)
            client.tokens.on_new_token(functools.partial(self._on_token_swap, connection))
        for protected in self.accounts.values():
            for cid in protected.engine.status(protected.account.id).positions:
                await self._watch_contract(cid.contract_id)
        for connection in self.connections:
            await connection.client.start_hubs()

    async def _wait_protecting(self) -> None:
        deadline = time.monotonic() + self.options.start_timeout_s
        for connection in self.connections:
            assert connection.reconciler is not None
            try:
                await connection.reconciler.wait_fresh(max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                log_event(log, "daemon_start_stale", logging.ERROR, credentials=connection.credential.name,
                          hub=connection.client.user_hub.state.value,
                          action="protecting with the last known state; locks stay enforced; retrying")
        await self.idle()

    def _enforce_restored_locks(self) -> None:
        """After a restart, make the broker match the restored locks: actions queued in the previous
        process but never started are not in the store, and the engine acts on changes only, so a
        position the lock should have closed would otherwise stay open. Fresh keys per boot; the
        enforcer verifies, so re-doing what is already done costs one check."""
        boot = f"restart:{self.clock.now().isoformat()}"
        for account_id in self.accounts:
            self.enforce_locks(account_id, boot, "restored at start-up")

    def enforce_locks(self, account_id: int, cause: str, why: str, positions: bool = True) -> None:
        """Make the broker match the account's locks now: cancel working orders (account locks), flatten
        (locks imposed with a flatten), close the symbol's positions (symbol locks). `positions=False`:
        working orders of account locks only. `cause` makes the idempotency keys (fresh per call site)."""
        protected = self.accounts[account_id]
        mirror = protected.mirror
        for lock in protected.engine.locks(account_id):
            rules = lock.rules or (lock.kind.value,)
            text = f"{lock.kind.value} lock {why}"
            if lock.symbol is None:
                if lock.flatten and positions and mirror.positions:
                    self._submit(protected, Action(ActionKind.FLATTEN_ACCOUNT, account_id, rules,
                                                   make_key(ActionKind.FLATTEN_ACCOUNT, account_id, rules, None,
                                                            cause), message=text))
                if mirror.open_orders:
                    self._submit(protected, Action(ActionKind.CANCEL_ORDERS, account_id, rules,
                                                   make_key(ActionKind.CANCEL_ORDERS, account_id, rules, None,
                                                            cause), message=text))
                continue
            if not positions:
                continue
            for position in protected.engine.status(account_id).positions:
                if position.symbol is not None and lock.applies_to(position.symbol):
                    cid = position.contract_id
                    self._submit(protected, Action(ActionKind.CLOSE_POSITION, account_id, rules,
                                                   make_key(ActionKind.CLOSE_POSITION, account_id, rules, cid,
                                                            cause), contract_id=cid, message=text))
                    if any(o.contract_id == cid for o in mirror.open_orders.values()):
                        self._submit(protected, Action(ActionKind.CANCEL_ORDERS, account_id, rules,
                                                       make_key(ActionKind.CANCEL_ORDERS, account_id, rules, cid,
                                                                cause), contract_id=cid, message=text))

    # ================================================================================ views and hints
    def _view(self, account_id: int) -> AccountMirror:
        protected = self.accounts.get(account_id)
        return protected.mirror if protected is not None else AccountMirror(account_id)

    def _positions_hint(self, account_id: int) -> list[tuple[str, int]]:
        return [(p.contract_id, p.size) for p in self._view(account_id).positions.values()]

    def _orders_hint(self, account_id: int) -> list[int]:
        return list(self._view(account_id).open_orders)

    # ================================================================================ inputs
    async def _on_hub_event(self, event: GatewayEvent) -> None:
        self.stats.events_received += 1
        self._enqueue(event)

    async def _emit_reconciled(self, events: Sequence[UserEvent]) -> None:
        """Missed events found by a reconciliation go through the engine like live ones (awaited)."""
        self.stats.reconciled_events += len(events)
        done: asyncio.Future[None] | None = None
        for event in events:
            log_event(log, "reconciled_event", account=event.account_id, kind=type(event).__name__)
            done = self._enqueue(event, wait=True)
        if done is not None:
            await done

    def _enqueue(self, item: GatewayEvent | EngineCommand | _Tick, wait: bool = False) -> asyncio.Future[None] | None:
        if isinstance(item, AccountEvent | OrderEvent | PositionEvent | TradeEvent):
            protected = self.accounts.get(item.account_id)
            if protected is not None:
                protected.mirror.apply(item)   # what the daemon knows, as soon as it knows it
                self.last_event_at[item.account_id] = self.clock.now()
        future: asyncio.Future[None] | None = asyncio.get_running_loop().create_future() if wait else None
        self._queue.put_nowait((item, future))
        return future

    def submit_command(self, command: EngineCommand) -> asyncio.Future[None] | None:
        """An admin command (ManualLock, ClearLock, ResetAccount) through the same ordered path."""
        return self._enqueue(command, wait=True)

    async def audit(self, who: str, what: str, why: str, terminal: str = "daemon",
                    account_id: int | None = None) -> None:
        """One entry in the store's audit log (durable); a store failure is logged, never raised."""
        if self.store is None or self._closed:
            return
        try:
            await self.store.audit(who, what, why, terminal, account_id)
        except Exception as exc:
            log_event(log, "audit_write_failed", logging.ERROR, what=what, error=repr(exc))

    def apply_risk_config(self, account_id: int, risk: RiskConfig) -> None:
        """Live reload of one account's rules: its engine takes `risk` (state, locks and timers kept) and
        what the new limits require now is enforced at once. Synchronous, so no event is processed
        half under the old rules and half under the new."""
        protected = self.accounts[account_id]
        protected.spec = dataclasses.replace(protected.spec, risk=risk)
        actions = protected.engine.update_config(risk)
        self._dirty.add(account_id)
        self._dispatch(account_id, actions)
        intervals = [p.spec.risk.rules.auth_loss_guard.check_interval for p in self.accounts.values()
                     if p.spec.risk.rules.auth_loss_guard.enabled]
        self._account_poll_every = min(intervals) if intervals else None
        if self._account_poll_every is None:
            self._next_account_poll = None   # RULE-010 turned off: no poll deadline left behind
        elif self._next_account_poll is None or self._next_account_poll > self.clock.now() + self._account_poll_every:
            self._next_account_poll = self.clock.now() + self._account_poll_every
        self._timer_wake.set()   # deadlines may have moved
        self._schedule_save()

    # ================================================================================ the event path
    async def _work(self) -> None:
        while True:
            item, done = await self._queue.get()
            self._processing = True
            try:
                await self._process(item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one bad event never stops protection
                self.stats.errors += 1
                log_event(log, "event_failed", logging.ERROR, kind=type(item).__name__, error=repr(exc))
            finally:
                if not isinstance(item, _Tick):
                    self.stats.events_processed += 1
                if done is not None and not done.done():
                    done.set_result(None)
                if self._yield_now:   # let the enforcer send its first request before the next event
                    self._yield_now = False
                    await asyncio.sleep(0)
                if self._queue.empty():
                    self._schedule_save()
                    self._processing = False
                    self._timer_wake.set()
                    self._notify_status()

    async def _process(self, item: GatewayEvent | EngineCommand | _Tick) -> None:
        if isinstance(item, _Tick):
            for holder_id, holder in self.accounts.items():
                self._dispatch(holder_id, holder.engine.on_time())
            self._resubmit_due()
            self._probe_breakers()
            if self._next_account_poll is not None and self._account_poll_every is not None \
                    and self.clock.now() >= self._next_account_poll:
                self._next_account_poll = self.clock.now() + self._account_poll_every
                self._spawn(self._poll_accounts(), "account-poll")
            return
        if isinstance(item, LogoutEvent):
            return
        contract_id = _contract_of(item)
        if contract_id is not None and contract_id not in self._contracts:
            await self._ensure_contract(contract_id)
        assert self.store is not None
        if isinstance(item, QuoteEvent):
            self.store.journal_event(item)
            for holder_id, holder in self.accounts.items():
                actions = holder.engine.handle(item)
                if contract_id in holder.mirror.positions:
                    self._dirty.add(holder_id)
                self._dispatch(holder_id, actions)
            return
        account_id = _account_of(item)
        protected = self.accounts.get(account_id) if account_id is not None else None
        if protected is None:
            return  # an account this daemon does not protect (the hub may list every account)
        if isinstance(item, AccountEvent | OrderEvent | PositionEvent | TradeEvent):
            self.store.journal_event(item)
            if isinstance(item, OrderEvent):
                self.store.record_order(item.order)
        else:
            self.store.append_journal("command", {"type": type(item).__name__, **_command_json(item)}, account_id)
        actions = protected.engine.handle(item)
        self._dirty.add(protected.account.id)
        self._dispatch(protected.account.id, actions)
        if contract_id is not None and (contract_id in protected.mirror.positions
                                        or any(o.contract_id == contract_id
                                               for o in protected.mirror.open_orders.values())):
            await self._watch_contract(contract_id)
        self._resubmit_due()

    def _dispatch(self, account_id: int, actions: list[Action]) -> None:
        if not actions:
            return
        assert self.store is not None
        protected = self.accounts[account_id]
        # Submitted first: each enforced action's pending row is queued to the store before the snapshot
        # below, so the snapshot of an engine that has handled the event never commits without the
        # actions it asked for (a kill -9 in between would lose them: the restored engine does not ask
        # again). The snapshot holding a new lock still commits no later than the lock (stored by the
        # enforcer's worker, which runs after this).
        handled_here = []
        for action in actions:
            if action.kind in ENFORCED_KINDS:
                self._submit(protected, action)
            else:
                handled_here.append(action)
        if any(a.kind in (ActionKind.LOCK, ActionKind.UNLOCK) for a in actions):
            self._save(account_id)
        for action in handled_here:
            if action.kind is ActionKind.ALERT:
                self._alert(action)
            elif action.kind is ActionKind.UNLOCK:
                self._spawn(self._record_unlock(action), "unlock")
            elif action.kind is ActionKind.CHECK_STOPS:
                self._spawn(self._check_stops(protected, action), "check-stops")
            else:
                log_event(log, "action_kind_unknown", logging.ERROR, kind=str(action.kind), account=account_id)

    def _submit(self, protected: ProtectedAccount, action: Action) -> None:
        enforcer = protected.connection.enforcer
        assert enforcer is not None and self.store is not None
        enforcer.submit(action)
        self._submitted_in[action.idempotency_key] = protected.connection.readmitted
        self._yield_now = True
        self.stats.actions_submitted += 1
        self.store.append_journal("action", action.to_json(), action.account_id)
        log_event(log, "action", account=action.account_id, kind=action.kind.value, rules="+".join(action.rules),
                  contract=action.contract_id, size=action.size,
                  idempotency_key=action.idempotency_key)

    def _alert(self, action: Action) -> None:
        level = action.level.value if action.level is not None else "warning"
        record = AlertRecord(self.clock.now(), action.account_id, action.rules, level, action.message or "")
        self.alerts.append(record)
        self.stats.alerts += 1
        assert self.store is not None
        self.store.append_journal("alert", {"rules": list(action.rules), "level": level, "message": record.message},
                                  action.account_id)
        log_event(log, "alert", logging.WARNING if level != "info" else logging.INFO, account=action.account_id,
                  rules="+".join(action.rules), severity=level, message=record.message)
        self._tell(record)

    def _on_outcome(self, outcome: ActionOutcome) -> None:
        action = outcome.action
        status = str(outcome.status)
        self.outcomes.append(outcome)
        self.stats.outcomes[status] = self.stats.outcomes.get(status, 0) + 1
        if self.store is not None and not self._closed:
            self.store.append_journal("outcome", {"key": action.idempotency_key, "status": status,
                                                  "reason": outcome.reason, "ms": round(outcome.duration_ms, 3),
                                                  "attempts": outcome.attempts}, action.account_id)
        level = logging.INFO if status != "failed" else logging.ERROR
        log_event(log, "action_outcome", level, account=action.account_id, kind=action.kind.value, status=status,
                  reason=outcome.reason, ms=round(outcome.duration_ms, 1),
                  idempotency_key=action.idempotency_key)
        self._tell(outcome)
        key = action.idempotency_key
        submitted_in = self._submitted_in.pop(key, None)
        if status == "failed" and action.kind is not ActionKind.LOCK and not self._closing:
            _, count, _ = self._retry.get(key, (action, 0, self.clock.now()))
            probe = self._probe_due(action.account_id)
            protected = self.accounts.get(action.account_id)
            if probe is not None:
                # The Gateway is unreachable (breaker open): retried at the breaker's next urgent probe,
                # and not counted towards MAX_RESUBMITS (nothing was decided by a reachable broker).
                self._retry[key] = (action, count, probe)
                self._timer_wake.set()
            elif (submitted_in is not None and protected is not None
                  and protected.connection.readmitted > submitted_in):
                # The breaker re-admitted calls while this action was in flight (it may have failed on
                # the breaker a moment before): the resubmission on that transition could not see it,
                # so it is retried now, not after RETRY_DELAYS_S (chaos finding "blocked").
                self._retry[key] = (action, count, self.clock.now())
                self._timer_wake.set()
            elif count < MAX_RESUBMITS:
                delay = RETRY_DELAYS_S[min(count, len(RETRY_DELAYS_S) - 1)]
                self._retry[key] = (action, count + 1, self.clock.now() + timedelta(seconds=delay))
                self._timer_wake.set()
            else:
                self._retry.pop(key, None)
                log_event(log, "action_abandoned", logging.CRITICAL, account=action.account_id,
                          kind=action.kind.value, attempts=count, idempotency_key=key,
                          action_needed="check the account in the broker's platform now; the daemon stopped retrying")
        elif status != "failed":
            self._retry.pop(key, None)
        self._notify_status()

    def _resubmit_due(self, force: bool = False, connection: Connection | None = None) -> None:
        if not self._retry:
            return
        now = self.clock.now()
        for key, (action, count, due) in list(self._retry.items()):
            if due is not None and (force or due <= now):
                protected = self.accounts.get(action.account_id)
                if protected is None or (connection is not None and protected.connection is not connection):
                    continue
                self._retry[key] = (action, count, None)
                self.stats.resubmitted += 1
                log_event(log, "action_resubmitted", logging.WARNING, account=action.account_id,
                          kind=action.kind.value, attempt=count + 1, idempotency_key=key)
                self._submit(protected, action)

    async def _poll_accounts(self) -> None:
        """RULE-010: `Account/search` every `auth_loss_guard.check_interval`, in case an event was missed;
        a change (canTrade, balance) goes through the engine as an AccountEvent."""
        for connection in self.connections:
            try:
                accounts = await connection.client.search_accounts(only_active=False)
            except GatewayError as exc:
                log_event(log, "account_poll_failed", logging.WARNING, credentials=connection.credential.name,
                          error=str(exc), action="trying again at the next interval")
                continue
            for account in accounts:
                protected = self.accounts.get(account.id)
                if protected is None or protected.connection is not connection:
                    continue
                held = protected.mirror.account
                if held is None or (held.can_trade, held.balance) != (account.can_trade, account.balance):
                    log_event(log, "account_poll_change", account=account.id, can_trade=account.can_trade,
                              balance=account.balance)
                    self._enqueue(AccountEvent(account))

    async def _record_unlock(self, action: Action) -> None:
        assert self.store is not None
        lock = action.lock
        if lock is None:
            return
        for record in await self.store.active_locks(action.account_id):
            if record.kind == lock.kind.value and record.symbol == lock.symbol and record.start == lock.start:
                await self.store.clear_lock(record.id, by=lock.by, why=action.message or lock.reason)
        log_event(log, "unlocked", account=action.account_id, kind=lock.kind.value, symbol=lock.symbol,
                  why=action.message)

    async def _check_stops(self, protected: ProtectedAccount, action: Action) -> None:
        """RULE-008: ask the broker for the open orders, feed them, answer with StopsChecked."""
        account_id = protected.account.id
        contract_id = action.contract_id or ""
        try:
            orders = await protected.connection.client.search_open_orders(account_id)
            ok = True
        except GatewayError as exc:
            log_event(log, "check_stops_failed", logging.ERROR, account=account_id, contract=contract_id,
                      error=str(exc), action="failing closed")
            orders, ok = [], False
        for order in orders:
            self._enqueue(OrderEvent(order))
        ids = tuple(o.id for o in orders if o.contract_id == contract_id) if ok else None
        done = self._enqueue(StopsChecked(account_id, contract_id, ok, ids, action.idempotency_key), wait=True)
        if done is not None:
            await done

    async def _ensure_contract(self, contract_id: str) -> None:
        connection = self.connections[0] if self.connections else None
        if connection is None:
            return
        try:
            contract = await connection.client.contract_by_id(contract_id)
        except GatewayError as exc:
            log_event(log, "contract_lookup_failed", logging.ERROR, contract=contract_id, error=str(exc),
                      action="evaluating without its metadata; size and P&L rules flag it")
            return
        self._contracts[contract_id] = contract
        for protected in self.accounts.values():
            protected.engine.register_contract(contract)
        log_event(log, "contract_registered", contract=contract_id, name=contract.name, tick_size=contract.tick_size,
                  tick_value=contract.tick_value)

    async def _watch_contract(self, contract_id: str) -> None:
        if contract_id in self._quote_subs or not self.connections:
            return
        self._quote_subs.add(contract_id)
        try:
            await self.connections[0].client.market_hub.subscribe_quotes(contract_id)
        except GatewayError as exc:  # remembered by the hub: sent again on the next (re)connect
            log_event(log, "quote_subscribe_failed", logging.WARNING, contract=contract_id, error=str(exc))
        log_event(log, "quotes_subscribed", contract=contract_id)

    # ================================================================================ persistence
    def _save(self, account_id: int) -> None:
        protected = self.accounts.get(account_id)
        if protected is None or self.store is None or self._closed:
            return
        state = protected.engine.snapshot()
        self.store.save_engine_state(state, version=int(state["version"]), scope=f"account:{account_id}")
        self._dirty.discard(account_id)

    def _save_dirty(self) -> None:
        self._save_handle = None
        for account_id in list(self._dirty):
            self._save(account_id)

    def _schedule_save(self) -> None:
        """Snapshots of changed engines at most every SNAPSHOT_INTERVAL_S, off the event path: a snapshot
        costs in proportion to the day's state, and everything but locks (saved at once) and timers is
        rebuilt from the broker by the start-up reconciliation anyway."""
        if self._dirty and self._save_handle is None and not self._closed:
            self._save_handle = asyncio.get_running_loop().call_later(SNAPSHOT_INTERVAL_S, self._save_dirty)

    def _store_degraded(self, reason: str) -> None:
        log_event(log, "store_degraded", logging.CRITICAL, reason=reason,
                  action="protecting from memory; state will not survive a restart until the disk is fixed")
        self._notify_status()

    # ================================================================================ gaps and freshness
    def _on_fresh(self, connection: Connection, fresh: bool) -> None:
        connection.fresh = fresh
        if fresh:
            self._drop_unlisted(connection)
            self._resubmit_due(force=True)   # what failed during the gap is tried again now
        self._notify_status()

    def _probe_due(self, account_id: int) -> datetime | None:
        """When the account's open circuit breaker admits an urgent probe (clock time); None when not open."""
        protected = self.accounts.get(account_id)
        if protected is None:
            return None
        at = protected.connection.client.breaker.probe_at(urgent=True)
        return None if at is None else _clock_time(at, self.clock.now())

    def _waits_on_breaker(self, connection: Connection) -> bool:
        """Something of this connection waits for REST: a stale state, or a failed action to retry."""
        return not connection.fresh or any(
            due is not None and self.accounts[a.account_id].connection is connection
            for a, _, due in self._retry.values() if a.account_id in self.accounts)

    def _breaker_probe_at(self, connection: Connection) -> float | None:
        """The open breaker's next urgent probe (clock timestamp), if something waits for it and the
        daemon has not acted on it yet."""
        at = connection.client.breaker.probe_at(urgent=True)
        if at is None or at == connection.probed_at or not self._waits_on_breaker(connection):
            return None
        return at

    def _probe_breakers(self) -> None:
        """At an open breaker's urgent probe time: retry what waits (the first request is the probe).
        The probe time is compared as clock time computed from the same `now` (`_clock_time`): from
        a later `now()`, on a wall clock a due probe always looked a few µs away — the probe never ran
        and the timer loop spun at 100 % CPU while the breaker stayed open."""
        now = self.clock.now()
        for connection in self.connections:
            at = self._breaker_probe_at(connection)
            if at is None or _clock_time(at, now) > now:
                continue
            connection.probed_at = at
            log_event(log, "breaker_probe", credentials=connection.credential.name, stale=not connection.fresh)
            self._resubmit_due(force=True, connection=connection)
            if not connection.fresh and connection.reconciler is not None:
                self._spawn(self._urgent_reconcile(connection), "reconcile-probe")

    async def _urgent_reconcile(self, connection: Connection) -> None:
        """A reconciliation whose requests are urgent (they may probe the open breaker); a failure is
        logged and left to the reconciler's own retries and the next probe time."""
        assert connection.reconciler is not None
        try:
            with urgent_calls():
                await connection.reconciler.reconcile("breaker_probe")
        except GatewayError as exc:
            log_event(log, "reconcile_probe_failed", logging.WARNING, credentials=connection.credential.name,
                      error=str(exc), action="retrying at the next probe")

    def _on_breaker(self, connection: Connection, state: BreakerState) -> None:
        """Half-open or closed: the Gateway may answer again, so what waits for it is tried now (a retry
        in half-open is one of the probes); open: the next probe time becomes a deadline."""
        if state is not BreakerState.OPEN and not self._closing:
            connection.readmitted += 1
            self._resubmit_due(force=True, connection=connection)
            if not connection.fresh and connection.reconciler is not None:
                connection.reconciler.request("breaker_" + state.value)
        self._timer_wake.set()
        self._notify_status()

    def _drop_unlisted(self, connection: Connection) -> None:
        """After a reconciliation the mirror matches the broker. The engine may still hold positions and
        working orders the mirror never had — those restored from a snapshot whose close/cancel came
        while the daemon was down (the reconciler diffs against the mirror, empty after a restart) — and
        a stale position makes an order under a lock look like one that only reduces it. `Reconciled`
        drops them; what the REST comparison does not cover is left as the engine holds it."""
        config = connection.client.config.state_reconciliation
        for account_id in connection.account_ids:
            protected = self.accounts[account_id]
            held = protected.engine.accounts.get(account_id)
            if held is None:
                continue
            mirror = protected.mirror
            contracts = (tuple(c for c, p in mirror.positions.items() if p.size > 0) if config.compare_positions
                         else tuple(held.positions))
            orders = tuple(mirror.open_orders) if config.compare_orders else tuple(held.orders)
            if set(held.positions) - set(contracts) or set(held.orders) - set(orders):
                log_event(log, "engine_state_dropped", account=account_id,
                          positions=",".join(sorted(set(held.positions) - set(contracts))),
                          orders=",".join(map(str, sorted(set(held.orders) - set(orders)))),
                          why="held by the engine (restored snapshot) but not listed by the broker")
                self._enqueue(Reconciled(account_id, contracts, orders))

    def _on_hub_state(self, connection: Connection, hub: str, state: HubState) -> None:
        log_event(log, "hub_state", credentials=connection.credential.name, hub=hub, state=state.value)
        if hub == "market" and state is HubState.CONNECTED and connection.reconciler is not None \
                and connection.client.market_hub.stats.reconnects:
            connection.reconciler.request("market_hub_reconnected")  # quotes missed: P&L re-checked on fresh state
        self._notify_status()

    def _on_token_swap(self, connection: Connection, _token: str) -> None:
        """A new session token (refresh or a fresh login after the old one died) is a possible gap."""
        log_event(log, "token_swapped", credentials=connection.credential.name, action="reconciling")
        if connection.reconciler is not None and not self._closing:
            connection.reconciler.request("token_swap")

    @property
    def stale(self) -> bool:
        return any(not c.fresh for c in self.connections)

    # ================================================================================ time
    def next_deadline(self) -> datetime | None:
        """The earliest engine deadline, action retry, RULE-010 poll or circuit-breaker probe that something
        waits for (clock time); None when nothing is scheduled."""
        deadlines = [d for p in self.accounts.values() if (d := p.engine.next_deadline()) is not None]
        deadlines += [due for _, _, due in self._retry.values() if due is not None]
        now = self.clock.now()
        deadlines += [_clock_time(at, now) for c in self.connections if (at := self._breaker_probe_at(c)) is not None]
        if self._next_account_poll is not None:
            deadlines.append(self._next_account_poll)
        return min(deadlines, default=None)

    async def on_clock_advanced(self) -> None:
        """Virtual-clock mode: the clock moved; run what is due (engine timers, action retries)."""
        done = self._enqueue(_TICK, wait=True)
        if done is not None:
            await done

    async def _timers(self) -> None:
        while True:
            self._timer_wake.clear()
            deadline = self.next_deadline()
            timeout = None if deadline is None else max(0.0, (deadline - self.clock.now()).total_seconds())
            try:
                await asyncio.wait_for(self._timer_wake.wait(), timeout)
                continue
            except TimeoutError:
                pass
            await self.on_clock_advanced()

    # ================================================================================ quiet / status
    @property
    def busy(self) -> bool:
        enforcing = any(c.enforcer is not None and c.enforcer.busy for c in self.connections)
        reconciling = any(c.reconciler is not None and c.reconciler.busy for c in self.connections)
        return self._processing or not self._queue.empty() or bool(self._tasks) or enforcing or reconciling

    async def idle(self) -> None:
        """Until no event is queued or being processed, no background task runs and enforcement is idle."""
        calm = 0
        while calm < 3:
            if self.busy:
                calm = 0
                await asyncio.sleep(0.001)
                for connection in self.connections:
                    if connection.enforcer is not None and not self._processing and self._queue.empty():
                        await connection.enforcer.idle()
            else:
                calm += 1
                await asyncio.sleep(0)

    def core_tasks(self) -> dict[str, asyncio.Task[Any]]:
        """The long-running tasks whose end means the daemon no longer protects (for liveness checks)."""
        tasks = {"daemon-events": self._worker, "daemon-timers": self._timer}
        return {name: task for name, task in tasks.items() if task is not None}

    def subscribe_status(self, callback: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """`callback(status)` after processed events and state changes, at most every 0.1 s (the latest
        state always arrives); returns an unsubscribe function."""
        self._status_listeners.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._status_listeners.remove(callback)
        return unsubscribe

    def subscribe_activity(self, callback: Callable[[ActionOutcome | AlertRecord], None]) -> None:
        """`callback(item)` for every enforcement outcome and every alert, as they happen (live logs)."""
        self._activity_listeners.append(callback)

    def _tell(self, item: ActionOutcome | AlertRecord) -> None:
        for listener in list(self._activity_listeners):
            try:
                listener(item)
            except Exception as exc:  # an observer's bug never stops the daemon
                log_event(log, "activity_listener_failed", logging.ERROR, error=repr(exc))

    def status(self) -> dict[str, Any]:
        """The dashboard's view: per account the engine's status, plus freshness and connection health."""
        accounts = {}
        for account_id, protected in self.accounts.items():
            data = protected.engine.status(account_id).to_json()
            data["name"] = data.get("name") or protected.account.name
            accounts[str(account_id)] = data
        return {
            "at": self.clock.now().isoformat(),
            "state": "stale" if self.stale else "fresh",
            "accounts": accounts,
            "connections": [{
                "credentials": c.credential.name, "user_hub": c.client.user_hub.state.value,
                "market_hub": c.client.market_hub.state.value, "breaker": c.client.breaker.state.value,
                "fresh": c.fresh} for c in self.connections],
            "store": {"degraded": bool(self.store and self.store.degraded)},
            "stats": {"events_received": self.stats.events_received, "events_processed": self.stats.events_processed,
                      "errors": self.stats.errors, "actions": self.stats.actions_submitted,
                      "alerts": self.stats.alerts, "outcomes": dict(self.stats.outcomes)},
        }

    def _notify_status(self) -> None:
        """Status listeners run off the event path, at most every STATUS_INTERVAL_S (the last change is
        always delivered: a change inside the interval schedules one call at its end)."""
        if not self._status_listeners or self._status_handle is not None:
            return
        wait = max(0.0, self._status_sent + STATUS_INTERVAL_S - time.monotonic())
        self._status_handle = asyncio.get_running_loop().call_later(wait, self._send_status)

    def _send_status(self) -> None:
        self._status_handle = None
        self._status_sent = time.monotonic()
        snapshot = self.status()
        for listener in list(self._status_listeners):
            try:
                listener(snapshot)
            except Exception as exc:  # a dashboard's bug never stops the daemon
                log_event(log, "status_listener_failed", logging.ERROR, error=repr(exc))

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"daemon-{name}")
        self._tasks.add(task)

        def finished(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                self.stats.errors += 1
                log_event(log, "daemon_task_failed", logging.ERROR, task=name, error=repr(t.exception()))
        task.add_done_callback(finished)

    # ================================================================================ shutdown
    async def aclose(self, timeout_s: float = 5.0) -> None:
        """Stop: hubs first (no new events), finish in-flight enforcement (bounded), flush, close."""
        if self._closing:
            return
        self._closing = True
        deadline = time.monotonic() + timeout_s
        if self._timer is not None:
            self._timer.cancel()
        for connection in self.connections:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.client.user_hub.stop(), 1.0)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.client.market_hub.stop(), 1.0)
            if connection.reconciler is not None:
                await connection.reconciler.aclose()
        if self._worker is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drain(), max(0.1, (deadline - time.monotonic()) / 3))
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        for task in list(self._tasks):
            task.cancel()
        for connection in self.connections:
            if connection.enforcer is not None:
                try:
                    await connection.enforcer.aclose(timeout_s=max(0.2, deadline - time.monotonic() - 0.5))
                except Exception as exc:
                    log_event(log, "enforcer_close_failed", logging.ERROR, error=repr(exc))
        for handle in (self._save_handle, self._status_handle):
            if handle is not None:
                handle.cancel()
        if self.store is not None:
            self._save_dirty()
            for account_id in self.accounts:
                self._save(account_id)
            try:
                await asyncio.wait_for(self.store.close(), max(0.2, deadline - time.monotonic()))
            except Exception as exc:
                log_event(log, "store_close_failed", logging.ERROR, error=repr(exc))
        self._closed = True
        for connection in self.connections:
            with contextlib.suppress(Exception):
                await connection.client.aclose()
        log_event(log, "daemon_stopped", events=self.stats.events_processed, actions=self.stats.actions_submitted)

    async def _drain(self) -> None:
        while not self._queue.empty() or self._processing:  # noqa: ASYNC110 - bounded by aclose's timeout
            await asyncio.sleep(0.001)


def _command_json(command: object) -> dict[str, Any]:
    fields = getattr(command, "__dataclass_fields__", {})
    out: dict[str, Any] = {}
    for name in fields:
        value = getattr(command, name)
        out[name] = value if isinstance(value, int | float | str | bool | type(None)) else str(value)
    return out
