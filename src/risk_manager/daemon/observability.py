"""What `risk-manager run` serves besides protection: health endpoint, metrics, sd_notify, notifications,
rotating log files and the dashboard channel — wired to a running `Daemon` (docs/operations.md).

```python
ops = Observability(config.ops, config.directory)
await ops.start()              # log files, health endpoint (not ready: "starting"), notifier
await daemon.start()
await ops.attach(daemon)       # hubs + accounts on the readiness board, metrics and notifications fed,
                               # dashboard channel, sd_notify READY=1, watchdog, "daemon started"
...
await ops.shutdown(daemon)     # STOPPING=1, "daemon stopping", daemon.aclose, then everything else: ≤ 5 s
```

Everything is fed from hooks the daemon already has (hub listeners, `subscribe_status`,
`subscribe_activity`), so the event path pays one counter increment per event (an extra hub
listener) and nothing else; notifications and snapshots are queued, never awaited.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
from collections.abc import Coroutine, Mapping
from datetime import UTC
from pathlib import Path
from typing import Any

import httpx

from risk_manager.daemon.daemon import AlertRecord, Connection, Daemon
from risk_manager.daemon.dashboard_feed import DashboardFeed
from risk_manager.daemon.ops_config import OpsConfig
from risk_manager.domain import GatewayEvent
from risk_manager.enforcement import ActionOutcome
from risk_manager.engine import ActionKind
from risk_manager.engine.actions import Lock
from risk_manager.gateway import HubState
from risk_manager.health import DisabledMetrics, HealthServer, LivenessMonitor, Metrics, ReadinessBoard
from risk_manager.logs import log_event
from risk_manager.notify import DisconnectWatch, Notification, NotificationKind, Notifier, Severity
from risk_manager.service.logfiles import LogFiles, install_log_files
from risk_manager.service.paths import ServiceMode
from risk_manager.service.sdnotify import SdNotify, run_watchdog

log = logging.getLogger("risk_manager.daemon")

SHUTDOWN_BUDGET_S = 5.0
RESERVED_AFTER_DAEMON_S = 1.0   # of the budget, kept for the dashboard, health, notifier drain and log files
COUNTERS_EVERY_S = 1.0          # 429s are read from the clients' counters this often
# Actions a trader hears about as ENFORCEMENT (a LOCK action is a LOCK notification).
BROKER_ACTIONS = frozenset({ActionKind.CLOSE_POSITION, ActionKind.REDUCE_POSITION, ActionKind.FLATTEN_ACCOUNT,
                            ActionKind.CANCEL_ORDERS, ActionKind.MODIFY_STOP, ActionKind.PLACE_STOP})
# A breach is counted on the action that answers it: a lock, or a position cut by a per-position rule
# (a flatten or a cancel only follows a lock, so counting them too would count one breach twice).
BREACH_ACTIONS = frozenset({ActionKind.LOCK, ActionKind.CLOSE_POSITION, ActionKind.REDUCE_POSITION})
_SEVERITY = {"info": Severity.INFO, "warning": Severity.WARNING, "critical": Severity.CRITICAL}
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def _event_kind(event_type: type) -> str:
    """`MarketTradeEvent` → `market_trade` (a small fixed set: the metric's label values)."""
    return _CAMEL.sub("_", event_type.__name__.removesuffix("Event")).lower()


class Observability:
    def __init__(self, ops: OpsConfig, config_dir: Path, *, env: Mapping[str, str] | None = None,
                 http_client: httpx.AsyncClient | None = None) -> None:
        self.ops = ops
        self.config_dir = config_dir
        health_config = ops.health
        self.metrics = Metrics() if health_config.enabled and health_config.metrics else DisabledMetrics()
        self.board = ReadinessBoard(self.metrics)
        self.liveness = LivenessMonitor()
        self.sd = SdNotify(env)
        self.health: HealthServer | None = None
        self.notifier: Notifier | None = None
        self.disconnects: DisconnectWatch | None = None
        self.dashboard: DashboardFeed | None = None
        self.log_files: LogFiles | None = None
        self._http_client = http_client
        self._daemon: Daemon | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._kinds: dict[type, str] = {}
        self._seen_429: dict[int, int] = {}
        self._held_locks: dict[int, dict[tuple[Any, ...], Lock]] = {}
        self._closing = False

    # ================================================================================ before the daemon
    async def start(self) -> None:
        """Log files, the health endpoint (answering "starting" until `attach`) and the notifier.
        `configure_logging(level)` must have been called (it sets the levels the files use)."""
        self.log_files = install_log_files(self.ops.log_files, ServiceMode.USER)
        if self.log_files is not None:
            log_event(log, "log_files_installed", directory=str(self.log_files.directory),
                      retention_days=self.ops.log_files.retention_days)
        health = self.ops.health
        if health.enabled:
            self.health = HealthServer(health.host, health.port, live=self.liveness, ready=self.board,
                                       metrics=self.metrics if health.metrics else None,
                                       live_reasons=self.liveness.reasons)
            await self.health.start()
        notifications = self.ops.notifications
        if notifications.enabled and notifications.channels:
            self.notifier = Notifier(notifications, client=self._http_client)
            await self.notifier.start()
            self.disconnects = DisconnectWatch(self.notifier)

    # ================================================================================ once protecting
    async def attach(self, daemon: Daemon) -> None:
        """Follow the started daemon: readiness, metrics, notifications, the dashboard, sd_notify."""
        self._daemon = daemon
        several = len(daemon.connections) > 1
        for connection in daemon.connections:
            prefix = f"{connection.credential.name} " if several else ""
            names = {"user": f"{prefix}user hub", "market": f"{prefix}market hub"}
            accounts = [daemon.accounts[aid] for aid in connection.account_ids]
            who = ", ".join(p.account.name or str(p.account.id) for p in accounts) or None
            for hub_kind, hub in (("user", connection.client.user_hub), ("market", connection.client.market_hub)):
                self.board.watch_hub(hub, names[hub_kind])
                hub.on_event(self._count_event)
                hub.on_state(functools.partial(self._on_hub_state, names[hub_kind], who))
                if hub.state is not HubState.CONNECTED:   # started stale: the outage began before us
                    self._on_hub_state(names[hub_kind], who, hub.state)
            for protected in accounts:
                label = self._label(protected.account.id)
                self.board.add_account(label, names.values())
                self.board.set_fresh(label, connection.fresh, "reconciling after a gap")
        for name, task in daemon.core_tasks().items():
            self.liveness.watch(task, name)
        daemon.subscribe_activity(self._on_activity)
        daemon.subscribe_status(self._on_status)
        self._on_status()
        self._tasks.append(asyncio.create_task(self._sync_counters(daemon), name="ops-counters"))
        dashboard = self.ops.dashboard
        if dashboard.enabled:
            self.dashboard = DashboardFeed(daemon, dashboard.host, dashboard.port,
                                           dashboard.token_path(self.config_dir), dashboard.token_mode)
            await self.dashboard.start()
        accounts_text = ", ".join(self._label(aid) for aid in daemon.accounts)
        self.sd.ready(f"protecting {len(daemon.accounts)} account(s): {accounts_text}")
        self._tasks.append(asyncio.create_task(run_watchdog(self.sd, self.liveness), name="ops-watchdog"))
        self._notify(Notification(NotificationKind.DAEMON, f"risk-manager started: protecting {accounts_text}"
                                  + (" (state stale: reconciling)" if daemon.stale else "")))
        log_event(log, "operations_attached", health=None if self.health is None else self.health.url,
                  dashboard=None if self.dashboard is None else self.dashboard.url,
                  notifications=0 if self.notifier is None else len(self.ops.notifications.channels),
                  sd_notify=self.sd.enabled)

    def _label(self, account_id: int) -> str:
        daemon = self._daemon
        protected = None if daemon is None else daemon.accounts.get(account_id)
        return protected.account.name if protected is not None and protected.account.name else str(account_id)

    # ================================================================================ feeds
    async def _count_event(self, event: GatewayEvent) -> None:
        kind = self._kinds.get(type(event))
        if kind is None:
            kind = self._kinds[type(event)] = _event_kind(type(event))
        self.metrics.event(kind)

    def _on_hub_state(self, scope: str, account: str | None, state: HubState) -> None:
        if self.disconnects is None or self._closing:
            return
        if state is HubState.CONNECTED:
            self.disconnects.restored(scope)
        else:
            self.disconnects.lost(scope, account=account, reason=f"hub {state.value}")

    def _on_status(self, _status: object = None) -> None:
        daemon = self._daemon
        if daemon is None:
            return
        locked = 0
        for aid, protected in daemon.accounts.items():
            self.board.set_fresh(self._label(aid), protected.connection.fresh, "reconciling after a gap")
            locks = protected.engine.locks(aid)
            if locks:
                locked += 1
            self._notice_unlocks(aid, locks)
        self.metrics.set_active_locks(locked)

    def _notice_unlocks(self, account_id: int, locks: list[Lock]) -> None:
        """A lock that was held at the previous status and is gone now ended (expired, reset, condition
        cleared or an admin unlock): a LOCK notification, the counterpart of the one sent when it began."""
        held = {(lock.kind, lock.symbol, lock.start): lock for lock in locks}
        before = self._held_locks.get(account_id)
        self._held_locks[account_id] = held
        if before is None:
            return   # the first look (at attach): restored locks are not news
        for key, lock in before.items():
            if key not in held:
                what = f"{lock.kind.value}{f' {lock.symbol}' if lock.symbol else ''}"
                self._notify(Notification(NotificationKind.LOCK, f"account unlocked: the {what} lock ended "
                                          f"({lock.reason})", account=self._label(account_id), rules=lock.rules,
                                          severity=Severity.INFO))

    def _on_activity(self, item: ActionOutcome | AlertRecord) -> None:
        if isinstance(item, AlertRecord):
            self._notify(Notification(NotificationKind.WARN, item.message, account=self._label(item.account_id),
                                      rules=item.rules, time=item.at.astimezone(UTC),
                                      severity=_SEVERITY.get(item.level, Severity.WARNING)))
            return
        action = item.action
        status = str(item.status)
        self.metrics.enforcement(action.kind.value, status, item.duration_ms / 1000.0)
        if status == "skipped":
            return   # nothing had to be done: not news for the trader
        if action.kind in BREACH_ACTIONS and status == "done":
            for rule in action.rules:
                self.metrics.breach(rule)
        account = self._label(action.account_id)
        details = {"status": status, "ms": f"{item.duration_ms:.0f}"}
        if item.reason:
            details["reason"] = item.reason
        if action.kind is ActionKind.LOCK and action.lock is not None:
            lock = action.lock
            text = f"account locked ({lock.kind.value}{f' {lock.symbol}' if lock.symbol else ''}): {lock.reason}; " \
                   f"ends {lock.ends}"
            self._notify(Notification(NotificationKind.LOCK, text if status == "done" else f"lock FAILED: {text}",
                                      account=account, rules=action.rules, details=details))
        elif action.kind in BROKER_ACTIONS:
            what = action.kind.value.replace("_", " ") + (f" {action.contract_id}" if action.contract_id else "")
            if action.kind is ActionKind.REDUCE_POSITION and action.size is not None:
                what += f" to {action.size}"
            text = f"{what}: {status}" + (f" — {action.message}" if action.message else "")
            self._notify(Notification(NotificationKind.ENFORCEMENT, text, account=account, rules=action.rules,
                                      details=details))

    def _notify(self, note: Notification) -> None:
        if self.notifier is not None:
            self.notifier.notify(note)

    async def _sync_counters(self, daemon: Daemon) -> None:
        """429s are counted by each client; carried into the metric every second (off the event path)."""
        while True:
            for connection in daemon.connections:
                self._carry_429(connection)
            await asyncio.sleep(COUNTERS_EVERY_S)

    def _carry_429(self, connection: Connection) -> None:
        seen = self._seen_429.get(id(connection), 0)
        now = connection.client.stats.http_429
        for _ in range(now - seen):
            self.metrics.http_429()
        self._seen_429[id(connection)] = now

    # ================================================================================ shutdown
    async def shutdown(self, daemon: Daemon | None, timeout_s: float = SHUTDOWN_BUDGET_S) -> None:
        """STOPPING=1 and "daemon stopping" first, the daemon next (most of the budget), then the rest."""
        if self._closing:
            return
        self._closing = True
        deadline = time.monotonic() + timeout_s
        self.sd.stopping("stopping: finishing in-flight enforcement")
        self.liveness.forget_all()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.disconnects is not None:
            self.disconnects.close()   # the hubs are about to close: not an outage
        if daemon is not None and daemon.started_at is not None:
            self._notify(Notification(NotificationKind.DAEMON, "risk-manager stopping: accounts are NOT protected "
                                      "until it runs again", severity=Severity.WARNING))
        if daemon is not None:
            await daemon.aclose(timeout_s=max(0.5, deadline - time.monotonic() - RESERVED_AFTER_DAEMON_S))
        if self.dashboard is not None:
            await _bounded("dashboard", self.dashboard.aclose(), deadline)
        if self.health is not None:
            await _bounded("health", self.health.stop(), deadline)
        if self.notifier is not None:
            await self.notifier.aclose(drain_timeout=max(0.1, deadline - time.monotonic() - 0.1))
        log_event(log, "operations_stopped")
        if self.log_files is not None:
            self.log_files.close()
            self.log_files = None

    async def __aenter__(self) -> Observability:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.shutdown(self._daemon)


async def _bounded(part: str, closing: Coroutine[Any, Any, None], deadline: float) -> None:
    """Close one part within what is left of the shutdown budget (half a second kept for the rest)."""
    try:
        await asyncio.wait_for(closing, max(0.1, deadline - time.monotonic() - 0.5))
    except Exception as exc:
        log_event(log, "ops_close_failed", logging.ERROR, part=part, error=repr(exc))
