"""Liveness and readiness: what `/health/live` and `/health/ready` answer.

- **live**: the process still does its job: the event loop turns (the endpoint answering proves it)
  and none of the daemon's long-running tasks has ended. `LivenessMonitor` watches the tasks.
- **ready**: the daemon protects every account: each hub it needs is connected and each account's
  state is fresh (reconciled since the last connect or gap). `ReadinessBoard` follows the hubs'
  state changes and the accounts' freshness and builds a `ReadyState` naming what is not ready.

A broker outage makes the daemon not *ready*, never not *live*: restarting does not cure it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from risk_manager.health.metrics import Metrics
from risk_manager.logs import log_event

log = logging.getLogger("risk_manager.health")

CONNECTED = "connected"


@dataclass(frozen=True, slots=True)
class ReadyState:
    ready: bool
    reasons: list[str]
    accounts: dict[str, dict[str, Any]]  # label -> {"ready", "fresh", "hubs": {name: state}, "reason"}
    hubs: dict[str, str] = field(default_factory=dict)  # name -> state ("connected", "reconnecting", ...)

    def to_json(self) -> dict[str, Any]:
        return {"ready": self.ready, "reasons": list(self.reasons), "hubs": dict(self.hubs),
                "accounts": {label: dict(value) for label, value in self.accounts.items()}}


class ObservableHub(Protocol):
    """What the board needs of a hub (`risk_manager.gateway.HubConnection` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def state(self) -> Any: ...  # a `HubState` (a str enum); compared by value

    def on_state(self, listener: Callable[[Any], None]) -> None: ...


@dataclass(slots=True)
class _Account:
    hubs: tuple[str, ...]
    fresh: bool = False
    reason: str = "waiting for the first reconciliation"
    since: float = field(default_factory=time.monotonic)


class ReadinessBoard:
    """Hub states and account freshness in one place; `board.state()` (or `board()`) is the `ready` callable.

    Hubs are shared by the accounts of one login, so they are tracked by name and an account lists
    the hubs it depends on. With no account registered the board is ready when every hub is
    connected; with nothing registered at all it is not ready (the daemon is still starting).
    """

    def __init__(self, metrics: Metrics | None = None) -> None:
        self._metrics = metrics
        self._hubs: dict[str, str] = {}
        self._hub_since: dict[str, float] = {}
        self._ever_connected: set[str] = set()
        self._accounts: dict[str, _Account] = {}

    # --- hubs --------------------------------------------------------------------------------------

    def watch_hub(self, hub: ObservableHub, name: str | None = None) -> None:
        """Follow `hub`'s state changes from now on (its current state is taken at once)."""
        label = name or f"{hub.name} hub"
        hub.on_state(lambda state: self.set_hub(label, _value(state)))
        self.set_hub(label, _value(hub.state))

    def set_hub(self, name: str, state: str) -> None:
        previous = self._hubs.get(name)
        if previous == state:
            return
        self._hubs[name] = state
        self._hub_since[name] = time.monotonic()
        if state == CONNECTED:
            if name in self._ever_connected and self._metrics is not None:
                self._metrics.reconnect(name)
            self._ever_connected.add(name)
        self._update_gauges()

    # --- accounts ----------------------------------------------------------------------------------

    def add_account(self, label: str, hubs: Iterable[str]) -> None:
        """An account to protect; it is ready once `hubs` are connected and `set_fresh(label, True)` was called."""
        hub_names = tuple(hubs)
        unknown = [h for h in hub_names if h not in self._hubs]
        if unknown:
            raise ValueError(f"account {label!r} depends on hubs not watched yet: {', '.join(unknown)}; "
                             "call watch_hub/set_hub first")
        self._accounts[label] = _Account(hub_names)
        self._update_gauges()

    def remove_account(self, label: str) -> None:
        self._accounts.pop(label, None)
        self._update_gauges()

    def set_fresh(self, label: str, fresh: bool, reason: str = "") -> None:
        """The account's state was reconciled (`fresh=True`) or may be behind (`False`, say why)."""
        account = self._accounts.get(label)
        if account is None:
            raise KeyError(f"unknown account {label!r}; register it with add_account first")
        if account.fresh != fresh:
            account.since = time.monotonic()
        account.fresh = fresh
        account.reason = "" if fresh else (reason or "state not reconciled since the last connect or gap")
        self._update_gauges()

    # --- the answer --------------------------------------------------------------------------------

    def state(self) -> ReadyState:
        now = time.monotonic()
        reasons: list[str] = []
        down = {name: state for name, state in self._hubs.items() if state != CONNECTED}
        accounts: dict[str, dict[str, Any]] = {}
        for label, account in self._accounts.items():
            hubs = {name: self._hubs[name] for name in account.hubs}
            problems = [f"{name} is {state}" for name, state in hubs.items() if state != CONNECTED]
            if not account.fresh:
                problems.append(account.reason)
            ready = not problems
            accounts[label] = {"ready": ready, "fresh": account.fresh, "hubs": hubs,
                               "reason": "; ".join(problems), "for_s": round(now - account.since, 1)}
            if not ready:
                reasons.append(f"account {label}: " + "; ".join(problems))
        watched = {hub for account in self._accounts.values() for hub in account.hubs}
        for name, state in down.items():
            if name not in watched:  # an account's hubs are already named in its reason
                reasons.append(f"{name} is {state} (for {now - self._hub_since[name]:.1f} s)")
        if not self._hubs and not self._accounts:
            reasons.append("nothing to protect yet: the daemon is starting")
        return ReadyState(not reasons, reasons, accounts, dict(self._hubs))

    __call__ = state

    def _update_gauges(self) -> None:
        if self._metrics is None:
            return
        self._metrics.set_connected_hubs(sum(1 for state in self._hubs.values() if state == CONNECTED))
        self._metrics.set_stale_accounts(sum(1 for account in self._accounts.values() if not account.fresh))


def _value(state: Any) -> str:
    return str(getattr(state, "value", state))


class LivenessMonitor:
    """`monitor()` is False once one of the watched tasks has ended (crashed, cancelled or returned).

    Each ending is logged once, at ERROR, with the task's name and exception, when it happens.
    """

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._ended: dict[str, str] = {}

    def watch(self, task: asyncio.Task[Any], name: str | None = None) -> None:
        label = name or task.get_name()
        self._tasks[label] = task
        task.add_done_callback(lambda done: self._on_done(label, done))

    def forget(self, name: str) -> None:
        """Stop watching a task that is meant to end now (the daemon shutting it down)."""
        self._tasks.pop(name, None)
        self._ended.pop(name, None)

    def forget_all(self) -> None:
        """At shutdown, before the daemon cancels its tasks: their ending is then expected, not logged."""
        self._tasks.clear()
        self._ended.clear()

    def _on_done(self, name: str, task: asyncio.Task[Any]) -> None:
        if self._tasks.get(name) is not task:
            return  # forgotten or replaced
        if task.cancelled():
            why = "cancelled"
        elif task.exception() is not None:
            why = f"crashed: {task.exception()!r}"
        else:
            why = "returned"
        self._ended[name] = why
        log_event(log, "task_ended", logging.ERROR, task=name, why=why)

    def reasons(self) -> list[str]:
        return [f"task {name} {why}" for name, why in self._ended.items()]

    def __call__(self) -> bool:
        return not self._ended
