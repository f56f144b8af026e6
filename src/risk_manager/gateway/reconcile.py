"""Reconciliation: after every (re)connect or gap, a REST snapshot diffed against what the caller holds.

There is no replay of missed hub events, so after a gap the `Reconciler` fetches accounts, open
positions, open orders and today's trades, compares them with the caller's view (anything with
`account`, `positions`, `open_orders`, `trade_ids` — e.g. `AccountMirror`) and hands the missed
changes to the caller as ordinary domain events, in the hub's own order (orders → trades →
positions → account):

- a missed fill: a `TradeEvent` per trade the view does not know (and the final `OrderEvent` of
  its order when the view never saw that order);
- a missed close: a `PositionEvent` with `size 0` for a position the broker no longer has;
- an order gone from the working list: an `OrderEvent` with its real final status from `Order/search`;
- changed or new positions / working orders / account balance or `canTrade`: their current state.

Then it signals "state fresh" (`fresh`, `on_fresh`, `wait_fresh`). Before the snapshot the
user hub's queue is drained (the view includes everything received so far); if user-hub events
arrived while the snapshot was being taken, the pass is repeated (up to 3 times) so an older
snapshot does not overwrite a newer event. Call `reconcile()` from outside hub event handlers
(inside one, use `request()`). Passes are at least `stateReconciliation.minInterval` apart (a request
inside the interval is deferred, never dropped). While the user hub stays down longer than
`pollAfter`, open positions and orders are polled every `pollInterval` (through the client, so
within the rate limit) and their changes emitted, until the hub is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol
from zoneinfo import ZoneInfo

from risk_manager.domain import (
    Account,
    AccountEvent,
    Order,
    OrderEvent,
    Position,
    PositionEvent,
    Trade,
    TradeEvent,
    UserEvent,
)
from risk_manager.gateway.config import StateReconciliationConfig
from risk_manager.gateway.hubs import HubConnection, HubState
from risk_manager.logs import log_event

if TYPE_CHECKING:
    from risk_manager.gateway.client import GatewayClient

log = logging.getLogger("risk_manager.gateway.reconcile")

_CHICAGO = ZoneInfo("America/Chicago")
_MAX_PASSES = 3


def cme_trading_day_start(now: datetime) -> datetime:
    """Start of the CME trading day containing `now`: the latest 17:00 America/Chicago at or before it."""
    local = now.astimezone(_CHICAGO)
    start = local.replace(hour=17, minute=0, second=0, microsecond=0)
    if start > local:
        start -= timedelta(days=1)
    return start.astimezone(now.tzinfo)


class HeldView(Protocol):
    """What the caller currently believes about one account."""

    @property
    def account(self) -> Account | None: ...
    @property
    def positions(self) -> Mapping[str, Position]: ...  # open positions by contract id
    @property
    def open_orders(self) -> Mapping[int, Order]: ...  # working orders by id
    @property
    def trade_ids(self) -> AbstractSet[int]: ...


@dataclass(slots=True)
class AccountMirror:
    """A minimal held view built by applying user events (the demo and tests use it; the engine
    keeps its own richer state and can expose the same four attributes)."""

    account_id: int
    account: Account | None = None
    positions: dict[str, Position] = field(default_factory=dict)
    open_orders: dict[int, Order] = field(default_factory=dict)
    trade_ids: set[int] = field(default_factory=set)
    trades: list[Trade] = field(default_factory=list)

    def apply(self, event: UserEvent) -> None:
        if event.account_id != self.account_id:
            return
        if isinstance(event, AccountEvent):
            self.account = event.account
        elif isinstance(event, OrderEvent):
            if event.order.is_working:
                self.open_orders[event.order.id] = event.order
            else:
                self.open_orders.pop(event.order.id, None)
        elif isinstance(event, PositionEvent):
            if event.position.size > 0:
                self.positions[event.position.contract_id] = event.position
            else:
                self.positions.pop(event.position.contract_id, None)
        elif isinstance(event, TradeEvent) and event.trade.id not in self.trade_ids:
            self.trade_ids.add(event.trade.id)
            self.trades.append(event.trade)


@dataclass(slots=True)
class ReconcileReport:
    reason: str
    events: list[UserEvent]
    passes: int
    duration_s: float
    missed_fills: int
    missed_closes: int


def _order_key(o: Order) -> tuple[object, ...]:
    return (o.status, o.size, o.limit_price, o.stop_price, o.fill_volume, o.filled_price, o.trail_price)


def _position_key(p: Position) -> tuple[object, ...]:
    return (p.type, p.size, p.average_price)


def _account_key(a: Account) -> tuple[object, ...]:
    return (a.balance, a.can_trade, a.name, a.is_visible)


Emit = Callable[[Sequence[UserEvent]], Awaitable[None]]


class Reconciler:
    def __init__(self, client: GatewayClient, account_ids: Sequence[int], view: Callable[[int], HeldView],
                 emit: Emit, config: StateReconciliationConfig | None = None,
                 trading_day_start: Callable[[datetime], datetime] = cme_trading_day_start) -> None:
        self._client = client
        self.account_ids = list(account_ids)
        self._view = view
        self._emit = emit
        self._config = config or client.config.state_reconciliation
        self._day_start = trading_day_start
        self._hub: HubConnection | None = None
        self._fresh = asyncio.Event()
        self._fresh_listeners: list[Callable[[bool], None]] = []
        self._last_run = float("-inf")
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self._pausing = False   # the scheduled run sleeps out minInterval or a failure back-off
        self._poller: asyncio.Task[None] | None = None
        self._run_lock = asyncio.Lock()
        self.reports: list[ReconcileReport] = []
        self.polls = 0

    # ----------------------------------------------------------------------------- freshness
    @property
    def fresh(self) -> bool:
        return self._fresh.is_set()

    @property
    def busy(self) -> bool:
        """A reconciliation is running or about to (requested, not sleeping out `minInterval` or a
        failure back-off). A reconciliation that does not follow a gap (token swap, market-hub
        reconnect) leaves the state fresh, so `fresh` alone does not tell a caller waiting for quiet
        (the replay runner, through `Daemon.busy`) that missed events may still be on their way."""
        if self._run_lock.locked():
            return True
        return self._task is not None and not self._task.done() and not self._pausing

    def on_fresh(self, listener: Callable[[bool], None]) -> None:
        """`listener(True)` when the state becomes fresh, `listener(False)` when it becomes stale."""
        self._fresh_listeners.append(listener)

    async def wait_fresh(self, timeout_s: float | None = None) -> None:
        async with asyncio.timeout(timeout_s):
            await self._fresh.wait()

    def _set_fresh(self, fresh: bool, reason: str) -> None:
        if fresh == self._fresh.is_set():
            return
        if fresh:
            self._fresh.set()
        else:
            self._fresh.clear()
        log_event(log, "state_fresh" if fresh else "state_stale", reason=reason)
        for listener in list(self._fresh_listeners):
            try:
                listener(fresh)
            except Exception as exc:  # an observer's bug must not stop reconciliation
                log_event(log, "fresh_listener_failed", logging.ERROR, error=repr(exc))

    # ----------------------------------------------------------------------------- wiring
    def attach(self, hub: HubConnection) -> None:
        """Follow the user hub: stale when it leaves `connected`, reconcile when it is back."""
        self._hub = hub
        hub.on_state(self._on_hub_state)
        if hub.state is HubState.CONNECTED:
            self.request("attached")

    def _on_hub_state(self, state: HubState) -> None:
        if state is HubState.CONNECTED:
            self._stop_poller()
            if self._config.on_reconnect or self._last_run == float("-inf"):
                self.request("hub_connected")
            else:
                self._set_fresh(True, "hub connected (stateReconciliation.onReconnect is off)")
        else:
            self._set_fresh(False, f"user hub {state.value}")
            if state is not HubState.DISCONNECTED and (self._poller is None or self._poller.done()):
                self._poller = asyncio.get_running_loop().create_task(self._poll_while_down(),
                                                                      name="reconcile-poll")

    async def aclose(self) -> None:
        self._stop_poller()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _stop_poller(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None

    def request(self, reason: str) -> None:
        """Ask for a reconciliation (after a gap); runs as soon as `minInterval` allows."""
        if not self._config.enabled:
            self._set_fresh(True, "reconciliation disabled")
            return
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._scheduled(reason), name="reconcile")

    async def _scheduled(self, reason: str) -> None:
        while True:
            self._again = False
            wait = self._last_run + self._config.min_interval / 1000.0 - time.monotonic()
            if wait > 0:
                await self._pause(wait)
            try:
                await self.reconcile(reason)
            except Exception as exc:  # GatewayError or a bug: log it, stay stale, try again
                log_event(log, "reconcile_failed", logging.ERROR, reason=reason, error=f"{type(exc).__name__}: {exc}",
                          action="retrying after minInterval")
                self._again = True
                await self._pause(max(self._config.min_interval / 1000.0, 0.5))
            if not self._again:
                return
            reason = "repeat"

    async def _pause(self, seconds: float) -> None:
        """Sleep between scheduled runs; not `busy` meanwhile (a REST outage must not look like work)."""
        self._pausing = True
        try:
            await asyncio.sleep(seconds)
        finally:
            self._pausing = False

    # ----------------------------------------------------------------------------- the work
    def _activity(self) -> int:
        return self._hub.stats.events if self._hub is not None else 0

    async def reconcile(self, reason: str = "requested") -> ReconcileReport:
        """One reconciliation now (ignores `minInterval`); emits the missed events, then marks fresh."""
        async with self._run_lock:
            started = time.perf_counter()
            self._last_run = time.monotonic()
            passes = 0
            events: list[UserEvent] = []
            while True:
                passes += 1
                if self._hub is not None:
                    await self._hub.drain()  # the view includes every event received before the snapshot
                before = self._activity()
                snapshot = await self._snapshot()
                if self._activity() != before and passes < _MAX_PASSES:
                    continue  # live events arrived meanwhile: they may be newer than the snapshot
                events = self._diff(snapshot)
                break
            if events:
                await self._emit(events)
            fills = sum(1 for e in events if isinstance(e, TradeEvent))
            closes = sum(1 for e in events if isinstance(e, PositionEvent) and e.position.size == 0)
            report = ReconcileReport(reason, events, passes, time.perf_counter() - started, fills, closes)
            self.reports.append(report)
            del self.reports[:-50]
            log_event(log, "reconciled", reason=reason, events=len(events), missed_fills=fills, missed_closes=closes,
                      passes=passes, ms=round(report.duration_s * 1000, 1))
            if self._hub is None or self._hub.state is HubState.CONNECTED:
                self._set_fresh(True, reason)
            return report

    async def _snapshot(self) -> _Snapshot:
        client = self._client
        accounts: dict[int, Account] = {}
        if self._config.compare_account:
            accounts = {a.id: a for a in await client.search_accounts(only_active=False)}
        per_account: dict[int, _AccountSnapshot] = {}
        for account_id in self.account_ids:
            positions = await client.search_open_positions(account_id) if self._config.compare_positions else None
            orders = await client.search_open_orders(account_id) if self._config.compare_orders else None
            since = self._day_start(client.clock.now())
            trades = await client.search_trades(account_id, since)
            view = self._view(account_id)
            history: list[Order] | None = None
            gone = orders is not None and any(oid not in {o.id for o in orders} for oid in view.open_orders)
            unknown_fill = any(t.id not in view.trade_ids for t in trades)
            if gone or unknown_fill:
                earliest = min([since, *(o.creation_timestamp for o in view.open_orders.values())])
                history = await client.search_orders(account_id, earliest)
            per_account[account_id] = _AccountSnapshot(accounts.get(account_id), positions, orders, trades, history)
        return _Snapshot(per_account, bool(self._config.compare_account))

    def _diff(self, snapshot: _Snapshot) -> list[UserEvent]:
        events: list[UserEvent] = []
        for account_id, snap in snapshot.accounts.items():
            events.extend(self._diff_account(account_id, snap, snapshot.compare_account))
        return events

    def _diff_account(self, account_id: int, snap: _AccountSnapshot, compare_account: bool) -> list[UserEvent]:
        view = self._view(account_id)
        orders: list[UserEvent] = []
        trades: list[UserEvent] = []
        positions: list[UserEvent] = []
        history = {o.id: o for o in snap.history or []}
        emitted_orders: set[int] = set()
        if snap.open_orders is not None:
            open_ids = {o.id for o in snap.open_orders}
            for held in view.open_orders.values():
                if held.id in open_ids:
                    continue
                final = history.get(held.id)
                if final is None or final.is_working:
                    log_event(log, "order_final_state_unknown", logging.WARNING, account_id=account_id,
                              order_id=held.id)
                    continue
                orders.append(OrderEvent(final))
                emitted_orders.add(final.id)
            for order in snap.open_orders:
                held_order = view.open_orders.get(order.id)
                if held_order is None or _order_key(held_order) != _order_key(order):
                    if held_order is not None and held_order.update_timestamp and order.update_timestamp and \
                            order.update_timestamp < held_order.update_timestamp:
                        continue  # the view already has a newer state of this order
                    orders.append(OrderEvent(order))
                    emitted_orders.add(order.id)
        missed = sorted((t for t in snap.trades if t.id not in view.trade_ids),
                        key=lambda t: (t.creation_timestamp, t.id))
        for trade in missed:
            of_trade = history.get(trade.order_id)
            if of_trade is not None and of_trade.id not in emitted_orders and of_trade.id not in view.open_orders:
                orders.append(OrderEvent(of_trade))
                emitted_orders.add(of_trade.id)
            trades.append(TradeEvent(trade))
        if snap.positions is not None:
            current = {p.contract_id: p for p in snap.positions if p.size > 0}
            for contract_id, held_pos in view.positions.items():
                if contract_id not in current and held_pos.size > 0:
                    positions.append(PositionEvent(replace(held_pos, size=0)))
            for contract_id, pos in current.items():
                known = view.positions.get(contract_id)
                if known is None or _position_key(known) != _position_key(pos):
                    positions.append(PositionEvent(pos))
        account_events: list[UserEvent] = []
        if compare_account and snap.account is not None and (
                view.account is None or _account_key(view.account) != _account_key(snap.account)):
            account_events.append(AccountEvent(snap.account))
        return orders + trades + positions + account_events

    async def _poll_while_down(self) -> None:
        """While the user hub is down: after `pollAfter`, poll positions and open orders."""
        await asyncio.sleep(self._config.poll_after / 1000.0)
        log_event(log, "rest_polling_started", logging.WARNING, reason="user hub down",
                  interval_s=self._config.poll_interval / 1000.0)
        while True:
            try:
                for account_id in self.account_ids:
                    positions = await self._client.search_open_positions(account_id)
                    orders = await self._client.search_open_orders(account_id)
                    view = self._view(account_id)
                    history = None
                    if any(oid not in {o.id for o in orders} for oid in view.open_orders):
                        history = await self._client.search_orders(
                            account_id, min(o.creation_timestamp for o in view.open_orders.values()))
                    snap = _AccountSnapshot(None, positions, orders, [], history)
                    events = [e for e in self._diff_account(account_id, snap, False)
                              if not isinstance(e, TradeEvent)]
                    if events:
                        await self._emit(events)
                self.polls += 1
            except Exception as exc:  # GatewayError or a bug: log it and keep polling
                log_event(log, "rest_poll_failed", logging.WARNING, error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(self._config.poll_interval / 1000.0)


@dataclass(slots=True)
class _AccountSnapshot:
    account: Account | None
    positions: list[Position] | None
    open_orders: list[Order] | None
    trades: list[Trade]
    history: list[Order] | None


@dataclass(slots=True)
class _Snapshot:
    accounts: dict[int, _AccountSnapshot]
    compare_account: bool
