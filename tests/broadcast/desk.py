"""A stand-in for the daemon's wiring in tests: a REAL engine on a VirtualClock, its status turned into
snapshots with `account_snapshot` and published on a REAL BroadcastServer on 127.0.0.1.

Enforcement is played by the test (as the broker would answer a flatten: a position event of size 0);
every action the engine returns is recorded as done, every alert as an alert.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from risk_manager.broadcast import (
    ActionEntry,
    AlertEntry,
    BroadcastServer,
    account_snapshot,
    build_snapshot,
)
from risk_manager.engine import Action, ActionKind
from tests.engine.harness import ACC, ES, LONG, Harness

RULE_003 = {"daily_realized_loss": {"enabled": True, "loss_limit": 500, "include_unrealized": False},
            "max_contracts": {"enabled": True, "limit": 5}}


class Desk:
    def __init__(self, token_file: Path, rules: dict[str, Any] | None = None) -> None:
        self.h = Harness(rules or RULE_003)
        self.server = BroadcastServer("127.0.0.1", 0, token_file=token_file)
        self.actions: list[ActionEntry] = []
        self.alerts: list[AlertEntry] = []
        self.last_event_at: datetime | None = None
        self.accounts = [ACC]

    async def start(self) -> Desk:
        await self.server.start()
        return self

    @property
    def url(self) -> str:
        return self.server.url

    def record(self, actions: list[Action]) -> list[Action]:
        now = self.h.clock.now()
        self.last_event_at = now
        for a in actions:
            if a.kind is ActionKind.ALERT:
                self.alerts.append(AlertEntry(now, a.level.value if a.level else "info", a.message or "", a.rules))
            else:
                self.actions.append(ActionEntry.of(a, "done", now, a.message))
        return actions

    def snapshot(self) -> dict[str, Any]:
        now = self.h.clock.now()
        # The harness trades on account ACC only: the other accounts are quiet ones.
        accounts = [account_snapshot(self.h.engine.status(aid), "connected", True,
                                     self.last_event_at if aid == ACC else None, [],
                                     self.actions if aid == ACC else [], self.alerts if aid == ACC else [], now)
                    for aid in self.accounts]
        return build_snapshot(accounts, now, daemon={"state": "fresh"})

    def publish(self) -> None:
        self.server.publish(self.snapshot())

    # --- a trading story -------------------------------------------------------------------------

    def open_long(self, size: int = 2) -> None:
        self.h.account()
        self.record(self.h.position(ES, size, LONG, avg=5000.0))
        self.record(self.h.quote(ES, last=4999.0))

    def lose(self, pnl: float) -> list[Action]:
        """A losing fill (realized `pnl`): past −500 it breaches RULE-003."""
        return self.record(self.h.trade(pnl))

    def flattened(self) -> None:
        """The broker's answer to the flatten: the position is gone."""
        self.record(self.h.position(ES, 0, LONG, avg=5000.0))

    def advance(self, seconds: float) -> None:
        self.record(self.h.advance(seconds))
