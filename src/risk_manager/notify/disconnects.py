"""`DisconnectWatch`: a notification when a connection stays down longer than `disconnect_after`.

The daemon calls `lost(scope)` when a hub or the REST API becomes unreachable and `restored(scope)`
when it is back. Short blips send nothing; an outage longer than the threshold sends one DISCONNECT
notification, and its end sends a second one saying how long it lasted.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import timedelta

from risk_manager.domain.durations import format_duration
from risk_manager.notify.notifications import Notification, NotificationKind, Severity
from risk_manager.notify.notifier import Notifier


@dataclass
class _Outage:
    since: float  # time.monotonic()
    account: str | None
    reason: str
    timer: asyncio.TimerHandle | None = None
    alerted: bool = False


class DisconnectWatch:
    def __init__(self, notifier: Notifier, after: timedelta | None = None) -> None:
        self._notifier = notifier
        self._after = (after if after is not None else notifier.config.disconnect_after).total_seconds()
        self._outages: dict[str, _Outage] = {}

    def lost(self, scope: str, *, account: str | None = None, reason: str = "") -> None:
        """`scope` (e.g. "user hub", "market hub", "REST") went down; repeated calls keep the first time."""
        if scope in self._outages:
            return
        outage = _Outage(time.monotonic(), account, reason)
        outage.timer = asyncio.get_running_loop().call_later(self._after, self._alert, scope, outage)
        self._outages[scope] = outage

    def _alert(self, scope: str, outage: _Outage) -> None:
        outage.alerted = True
        text = f"{scope} disconnected for more than {format_duration(timedelta(seconds=self._after))}"
        if outage.reason:
            text += f" ({outage.reason})"
        self._notifier.notify(Notification(NotificationKind.DISCONNECT, text + "; protection is degraded until "
                                           "it reconnects", account=outage.account, severity=Severity.CRITICAL))

    def restored(self, scope: str) -> None:
        outage = self._outages.pop(scope, None)
        if outage is None:
            return
        if outage.timer is not None:
            outage.timer.cancel()
        if outage.alerted:
            lasted = timedelta(seconds=round(time.monotonic() - outage.since))
            self._notifier.notify(Notification(NotificationKind.DISCONNECT,
                                               f"{scope} reconnected after {format_duration(lasted)}",
                                               account=outage.account, severity=Severity.INFO))

    def close(self) -> None:
        for outage in self._outages.values():
            if outage.timer is not None:
                outage.timer.cancel()
        self._outages.clear()
