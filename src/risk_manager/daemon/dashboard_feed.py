"""`DashboardFeed`: the daemon's status and activity published on the broadcast channel (docs/dashboard.md).

The wiring of docs/dashboard.md § Wiring, in one place for `risk-manager run` and `risk-manager demo`:
a snapshot is published after every batch of events the daemon processed (its status hook, at most
every 0.1 s) and at once on every enforcement outcome and alert, so a breach reaches the screen
without waiting for the next status tick. `publish()` is synchronous and never waits for a client.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from risk_manager.broadcast import (
    ActionEntry,
    AlertEntry,
    BroadcastServer,
    RecentActivity,
    account_snapshot,
    build_snapshot,
    connection_state,
)
from risk_manager.daemon.daemon import AlertRecord, Daemon
from risk_manager.enforcement import ActionOutcome
from risk_manager.logs import log_event

log = logging.getLogger("risk_manager.broadcast")


class DashboardFeed:
    """`feed = DashboardFeed(daemon, host, port, token_file)`; `await feed.start()`; `await feed.aclose()`."""

    def __init__(self, daemon: Daemon, host: str, port: int, token_file: Path, token_mode: int = 0o600) -> None:
        self.daemon = daemon
        self.server = BroadcastServer(host, port, token_file=token_file, token_mode=token_mode)
        self.recent = RecentActivity()
        self._unsubscribe: Any = None
        self._active = False

    @property
    def url(self) -> str:
        return self.server.url

    async def start(self) -> None:
        """Listen (BroadcastBindError when the port is taken), publish the first snapshot, follow the daemon."""
        await self.server.start()
        self._active = True
        self.daemon.subscribe_activity(self._on_activity)
        self._unsubscribe = self.daemon.subscribe_status(self.publish)
        self.publish()
        log_event(log, "dashboard_feed_started", url=self.server.url, token_file=str(self.server.token_file))

    def publish(self, _status: object = None) -> None:
        if not self._active:
            return
        daemon = self.daemon
        now = daemon.clock.now()
        accounts = [
            account_snapshot(p.engine.status(aid), connection_state(p.connection.client.user_hub.state.value),
                             p.connection.fresh, daemon.last_event_at.get(aid), p.mirror.open_orders.values(),
                             self.recent.actions(aid), self.recent.alerts(aid), now)
            for aid, p in daemon.accounts.items()]
        self.server.publish(build_snapshot(accounts, now, daemon={"state": "stale" if daemon.stale else "fresh"}))

    def _on_activity(self, item: ActionOutcome | AlertRecord) -> None:
        if isinstance(item, AlertRecord):
            self.recent.add_alert(item.account_id, AlertEntry(item.at, item.level, item.message, item.rules))
        else:
            self.recent.add_action(item.action.account_id,
                                   ActionEntry.of(item.action, str(item.status), item.finished, item.reason))
        self.publish()

    async def aclose(self) -> None:
        self._active = False
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        await self.server.aclose()
