"""`Enforcer`: the queue between the engine's actions and the broker.

One FIFO and one worker task per account: an account's actions run in the order submitted (a lock
is on disk before the next action of its account touches the broker), different accounts run
concurrently. `submit` is O(1) and never blocks the event path.

Per action: `store.claim_now(key)` (at most once, decided in memory, its row committed in the
background) → the first broker request at once → verification against the broker
(`ActionExecutor`) → the enforcement log and a structured log line → `store.finish_action`
(durable, and it commits the claim first) → the outcome callback. Infrastructure failures (circuit
open, login refused, outcome unknown, network) end as `failed` and *release* the key so a
re-submission of the same key can run again; the re-run then asks the broker before it sends
anything (`verify_first`), which is what keeps "at most once" true of the broker's book.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from risk_manager.domain import Clock
from risk_manager.enforcement.errors import ActionFailed, EnforcerClosedError, StoredActionError, UnsupportedActionError
from risk_manager.enforcement.execution import ActionExecutor, Limits, OrdersHint, PositionsHint, Verified
from risk_manager.enforcement.outcomes import ActionOutcome, EnforcerStats, OutcomeStatus
from risk_manager.enforcement.stored_action import action_from_json
from risk_manager.engine.actions import Action, ActionKind, LockKind
from risk_manager.gateway import (
    AuthenticationError,
    CircuitOpenError,
    GatewayClient,
    GatewayError,
    OrderOutcomeUnknownError,
    TransientError,
)
from risk_manager.gateway.circuit_breaker import urgent_calls
from risk_manager.logs import log_event
from risk_manager.store import ActionState, EnforcementRecord, LockRecord, Store

log = logging.getLogger("risk_manager.enforcement")

OutcomeCallback = Callable[[ActionOutcome], None]
_LOCK_CONDITIONS = {LockKind.UNTIL_CAN_TRADE: "canTrade", LockKind.SYMBOL: "symbol blocked"}
ALREADY_EXECUTED = "already executed"


@dataclass(frozen=True, slots=True)
class _Job:
    action: Action
    submitted_ns: int
    owned: bool = False         # resumed in flight: the claim from before the crash is ours
    verify_first: bool = False  # ask the broker before sending anything


def lock_record(action: Action) -> LockRecord:
    """The store's row for a `lock` action; its id is the action's idempotency key (replays are no-ops)."""
    lock = action.lock
    if lock is None:
        raise UnsupportedActionError(f"lock action {action.idempotency_key!r} carries no lock")
    return LockRecord(id=action.idempotency_key, account_id=action.account_id, kind=lock.kind.value,
                      reason=lock.reason, start=lock.start, until=lock.until,
                      condition=_LOCK_CONDITIONS.get(lock.kind), symbol=lock.symbol,
                      rules=lock.rules or action.rules, created_by=lock.by, flatten=lock.flatten)


class Enforcer:
    """Executes engine actions through the Gateway client, at most once per idempotency key, verified.

    See docs/enforcement.md. Kinds handled: lock, close_position, reduce_position, flatten_account,
    cancel_orders, modify_stop, place_stop; anything else is refused by `submit` (ValueError).
    """

    def __init__(self, client: GatewayClient, store: Store, clock: Clock, *,
                 positions_hint: PositionsHint | None = None, orders_hint: OrdersHint | None = None,
                 verify_timeout_s: float = 5.0, max_attempts: int = 3, partial_fill_timeout_s: float = 60.0) -> None:
        self._store = store
        self._clock = clock
        self.limits = Limits(verify_timeout_s, max_attempts, partial_fill_timeout_s)
        self.stats = EnforcerStats()
        self._executor = ActionExecutor(client, self.limits, self.stats, positions_hint, orders_hint)
        self._kinds = self._executor.kinds | {ActionKind.LOCK}
        self._queues: dict[int, asyncio.Queue[_Job]] = {}
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._callbacks: list[OutcomeCallback] = []
        self._outstanding = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._verify_first: set[str] = set()
        self._state: Literal["new", "running", "closing", "closed"] = "new"

    # ------------------------------------------------------------------------------ life cycle
    def on_outcome(self, callback: OutcomeCallback) -> None:
        """Call `callback(outcome)` once per finished action (synchronously; exceptions are logged)."""
        self._callbacks.append(callback)

    async def start(self) -> None:
        """Start executing (actions submitted before are queued and start now)."""
        if self._state != "new":
            return
        self._state = "running"
        for account_id in self._queues:
            self._ensure_worker(account_id)
        log_event(log, "enforcer_started", verify_timeout_s=self.limits.verify_timeout_s,
                  max_attempts=self.limits.max_attempts, partial_fill_timeout_s=self.limits.partial_fill_timeout_s)

    async def resume_pending(self) -> int:
        """Queue what the store holds unfinished: pending actions run normally; in-flight ones (the
        daemon died between claim and finish) are verified with the broker before anything is sent.
        Returns how many were queued."""
        queued = 0
        for pending in await self._store.unfinished_actions():
            try:
                action = action_from_json(pending.action)
                if action.kind not in self._kinds or action.kind is ActionKind.LOCK:
                    raise StoredActionError(f"pending_actions: kind {action.kind.value!r} is not executed by the "
                                            "enforcer")
            except StoredActionError as exc:
                log_event(log, "enforcement_resume_unreadable", logging.ERROR, idempotency_key=pending.key,
                          error=str(exc))
                await self._store.finish_action(pending.key, ok=False, detail=str(exc))
                continue
            if action.idempotency_key != pending.key:
                action = replace(action, idempotency_key=pending.key)
            in_flight = pending.state is ActionState.IN_FLIGHT
            # attempts > 0 on a pending row: it was claimed before and released (outcome unknown, circuit
            # open...): it may have reached the broker, so it too asks the broker first.
            verify_first = in_flight or pending.attempts > 0
            if verify_first:
                self._verify_first.add(pending.key)
            log_event(log, "enforcement_resumed", idempotency_key=pending.key, account_id=pending.account_id,
                      kind=action.kind.value, state=pending.state.value, verify_first=verify_first)
            self.stats.resumed += 1
            self._enqueue(_Job(action, time.perf_counter_ns(), owned=in_flight, verify_first=verify_first))
            queued += 1
        return queued

    def submit(self, action: Action) -> None:
        """Queue `action` (O(1), never blocks). Raises `UnsupportedActionError` (a ValueError) for kinds
        the enforcer does not execute and `EnforcerClosedError` after `aclose()`."""
        if action.kind not in self._kinds:
            raise UnsupportedActionError(
                f"the enforcer does not execute {action.kind.value!r} actions (allowed: "
                f"{', '.join(sorted(k.value for k in self._kinds))}); alerts and stop checks belong to the daemon")
        if action.kind is ActionKind.LOCK and action.lock is None:
            raise UnsupportedActionError(f"lock action {action.idempotency_key!r} carries no lock")
        if action.kind is not ActionKind.LOCK:
            # Recorded pending at once (queued, not awaited): a kill before the worker claims it must not
            # lose it — `resume_pending` runs it after a restart. (A lock lives in the engine snapshot.)
            self._store.queue_pending(action.idempotency_key, action.account_id, action.to_json())
        self._enqueue(_Job(action, time.perf_counter_ns()))

    def _enqueue(self, job: _Job) -> None:
        if self._state in ("closing", "closed"):
            raise EnforcerClosedError("the enforcer is shut down: no new enforcement is accepted")
        account_id = job.action.account_id
        queue = self._queues.get(account_id)
        if queue is None:
            queue = self._queues[account_id] = asyncio.Queue()
        queue.put_nowait(job)
        self.stats.submitted += 1
        self._outstanding += 1
        self._idle.clear()
        if self._state == "running":
            self._ensure_worker(account_id)

    def _ensure_worker(self, account_id: int) -> None:
        worker = self._workers.get(account_id)
        if worker is None or worker.done():
            self._workers[account_id] = asyncio.create_task(self._work(account_id),
                                                            name=f"enforcement-{account_id}")

    @property
    def busy(self) -> bool:
        """True while an action is queued or being executed."""
        return self._outstanding > 0

    async def idle(self) -> None:
        """Return once nothing is queued or in flight."""
        await self._idle.wait()

    async def aclose(self, timeout_s: float = 5.0) -> None:
        """Stop accepting actions, let queued and in-flight ones finish for up to `timeout_s`, then stop.
        An action cut off here stays in flight in the store and is verified by `resume_pending` next time."""
        if self._state == "closed":
            return
        self._state = "closing"
        if self._workers:
            try:
                await asyncio.wait_for(self._idle.wait(), timeout_s)
            except TimeoutError:
                log_event(log, "enforcer_close_timeout", logging.WARNING, outstanding=self._outstanding,
                          timeout_s=timeout_s, action="in-flight actions are verified at the next start")
        for worker in self._workers.values():
            worker.cancel()
        for worker in self._workers.values():
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._workers.clear()
        self._state = "closed"
        log_event(log, "enforcer_stopped", **self.stats.as_dict())

    # ------------------------------------------------------------------------------ execution
    async def _work(self, account_id: int) -> None:
        queue = self._queues[account_id]
        while True:
            job = await queue.get()
            try:
                outcome = await self._execute(job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let the account's queue die: report and go on
                log.exception("enforcement_internal_error idempotency_key=%s", job.action.idempotency_key)
                outcome = await self._internal_error(job.action, exc)
            self._report(outcome)

    async def _internal_error(self, action: Action, exc: Exception) -> ActionOutcome:
        """A bug or a failing store: report `failed`, and hand the key back (verify-first) if possible."""
        outcome = self._outcome(action, OutcomeStatus.FAILED,
                                f"internal error in the enforcer ({type(exc).__name__}: {exc}); the action was "
                                "not completed — check the account", self._clock.now(), time.perf_counter_ns(), 0)
        if action.kind is not ActionKind.LOCK:
            self._verify_first.add(action.idempotency_key)
        try:
            self._log_record(outcome)
            if action.kind is not ActionKind.LOCK:
                await self._store.release_action(action.idempotency_key, outcome.reason or "internal error")
        except Exception:
            log.exception("enforcement_release_failed idempotency_key=%s", action.idempotency_key)
        return outcome

    async def _execute(self, job: _Job) -> ActionOutcome:
        action = job.action
        started = self._clock.now()
        t0 = time.perf_counter_ns()
        if action.kind is ActionKind.LOCK:
            return await self._lock(action, started, t0)
        key = action.idempotency_key
        # The claim is decided in memory and its row committed in the background: the broker request does
        # not wait for the disk. `finish_action`/`release_action` below are durable and commit it first,
        # before the outcome is reported (docs/enforcement.md § at most once, and why this is enough).
        if not job.owned and not self._store.claim_now(key, action.account_id, action.to_json()):
            self.stats.duplicates_skipped += 1
            outcome = self._outcome(action, OutcomeStatus.SKIPPED, ALREADY_EXECUTED, started, t0, 0)
            self._log_record(outcome)
            return outcome
        verify_first = job.verify_first or key in self._verify_first
        try:
            with urgent_calls():   # protection: may probe an open circuit breaker after 1 s, not 60 s
                verified: Verified = await self._executor.run(action, verify_first)
        except ActionFailed as exc:
            return await self._failed(action, exc.reason, started, t0, exc.attempts, release=exc.retryable)
        except GatewayError as exc:
            return await self._failed(action, _gateway_reason(exc), started, t0, 0, release=True)
        self._verify_first.discard(key)
        status = OutcomeStatus.SKIPPED if verified.skipped else OutcomeStatus.DONE
        outcome = self._outcome(action, status, verified.detail if verified.skipped else None, started, t0,
                                verified.attempts, detail=verified.detail)
        self._log_record(outcome)
        await self._store.finish_action(key, ok=True, detail=verified.detail)  # durable: the log is too
        return outcome

    async def _failed(self, action: Action, reason: str, started: datetime, t0: int, attempts: int, *,
                      release: bool) -> ActionOutcome:
        outcome = self._outcome(action, OutcomeStatus.FAILED, reason, started, t0, attempts)
        self._log_record(outcome)
        key = action.idempotency_key
        if release:
            # Retryable: the key goes back to pending; a re-submission asks the broker first.
            self._verify_first.add(key)
            self.stats.released += 1
            await self._store.release_action(key, reason)
        else:
            await self._store.finish_action(key, ok=False, detail=reason)
        return outcome

    async def _lock(self, action: Action, started: datetime, t0: int) -> ActionOutcome:
        stored = await self._store.add_lock(lock_record(action))  # fsync'd before the next broker call
        if stored:
            outcome = self._outcome(action, OutcomeStatus.DONE, None, started, t0, 0, detail="lock stored")
        else:
            self.stats.duplicates_skipped += 1
            outcome = self._outcome(action, OutcomeStatus.SKIPPED, ALREADY_EXECUTED, started, t0, 0,
                                    detail="lock already stored")
        self._log_record(outcome)
        return outcome

    # ------------------------------------------------------------------------------ reporting
    def _outcome(self, action: Action, status: OutcomeStatus, reason: str | None, started: datetime, t0: int,
                 attempts: int, detail: str = "") -> ActionOutcome:
        return ActionOutcome(action=action, status=status, reason=reason, started=started,
                             finished=self._clock.now(), duration_ms=(time.perf_counter_ns() - t0) / 1e6,
                             attempts=attempts, detail=detail or (reason or ""))

    def _log_record(self, outcome: ActionOutcome) -> None:
        action = outcome.action
        self._store.log_enforcement(EnforcementRecord(
            key=action.idempotency_key, account_id=action.account_id, action=action.to_json(), rules=action.rules,
            started=outcome.started, finished=outcome.finished, outcome=outcome.status.value,
            detail=outcome.reason or outcome.detail))
        level = logging.WARNING if outcome.status is OutcomeStatus.FAILED else logging.INFO
        log_event(log, "enforcement_outcome", level, account_id=action.account_id, kind=action.kind.value,
                  idempotency_key=action.idempotency_key, rules="+".join(action.rules),
                  contract_id=action.contract_id, order_id=action.order_id, status=outcome.status.value,
                  attempts=outcome.attempts, duration_ms=round(outcome.duration_ms, 3),
                  reason=outcome.reason, detail=outcome.detail)

    def _report(self, outcome: ActionOutcome) -> None:
        if outcome.status is OutcomeStatus.DONE:
            self.stats.done += 1
        elif outcome.status is OutcomeStatus.FAILED:
            self.stats.failed += 1
        else:
            self.stats.skipped += 1
        for callback in self._callbacks:
            try:
                callback(outcome)
            except Exception:
                log.exception("enforcement_callback_failed idempotency_key=%s", outcome.action.idempotency_key)
        self._outstanding -= 1
        if self._outstanding == 0:
            self._idle.set()


def _gateway_reason(exc: GatewayError) -> str:
    """A reason a trader can act on; every one of these released the key for a later retry."""
    if isinstance(exc, CircuitOpenError):
        return (f"the Gateway is failing repeatedly, so calls are paused (circuit breaker open, next probe in "
                f"{exc.retry_in_s:.1f} s); the action is retried as soon as the breaker admits a probe — "
                "watch the account in the broker's platform meanwhile")
    if isinstance(exc, AuthenticationError):
        return f"{exc}; nothing was sent to the broker"
    if isinstance(exc, OrderOutcomeUnknownError):
        return f"{exc}; a retry asks the broker first"
    if isinstance(exc, TransientError):
        return f"the Gateway could not be reached ({exc}); the action will be retried and re-verified"
    return f"{exc}; the action will be retried and re-verified"
