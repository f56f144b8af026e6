"""Live reload: the running daemon watches its risk file and accounts.yaml and applies a valid new version.

Every `POLL_INTERVAL_S` (0.25 s) the watched files are stat'ed (mtime in ns, size, inode). When the
signature changes, the whole configuration directory is loaded again exactly as at start-up (the
per-account overrides of accounts.yaml merged over the risk file, everything validated), then:

- invalid → nothing changes; the rules in force stay, and one ERROR line names the file, the key and
  what is allowed (`risk_reload_rejected`), plus an entry in the store's audit log;
- commitment mode (`admin.commitment_mode` in the config IN FORCE) and any active lock in the daemon →
  a change that `loosenings()` lists for any account refuses the whole new version (old config kept,
  CRITICAL `risk_reload_refused` + audit entry). This catches hand edits as well as `admin rules set`;
  the refused version is not retried when the lock ends: the file must be saved again;
- otherwise each account whose rules changed gets them through `Daemon.apply_risk_config` (state, locks
  and timers kept; enforcement never stops) and the change is logged and audited (`rules.reloaded`).

Accounts added or removed, other credentials and config.yaml's Gateway settings need a restart: that is
logged (WARNING), and the rules of the accounts that are running are still applied.

Why polling and not `watchfiles`/inotify: two or three stat calls every 250 ms cost nothing, work the
same on every platform and on network file systems, and see an atomic rename (what the rules editor
does) as well as an edit in place; the 1 s budget leaves room for the 250 ms period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from risk_manager.admin.loosening import loosenings
from risk_manager.admin.rules_file import changes
from risk_manager.daemon.config_dir import AccountSpec, DaemonConfig, DaemonConfigError
from risk_manager.daemon.daemon import Daemon
from risk_manager.engine import RiskConfig
from risk_manager.logs import log_event

log = logging.getLogger("risk_manager.daemon")

POLL_INTERVAL_S = 0.25
AUDIT_WHO = "live-reload"

Signature = tuple[tuple[int, int, int] | None, ...]


def signature(paths: Sequence[Path]) -> Signature:
    """(mtime_ns, size, inode) of each file; None for a missing one."""
    out: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            out.append(None)
            continue
        out.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(out)


@dataclass(slots=True)
class ReloadResult:
    """What one reload did: `applied` account ids, or why nothing was (`rejected` / `refused`)."""

    applied: list[int] = field(default_factory=list)
    rejected: str | None = None       # the new version is invalid
    refused: list[str] = field(default_factory=list)   # commitment mode: the loosenings refused
    restart_needed: list[str] = field(default_factory=list)


def _identity(spec: AccountSpec) -> tuple[int | None, str | None]:
    return spec.id, spec.name


class LiveReload:
    """Watches `paths` and applies `load()`'s new configuration to `daemon`. `start()` / `aclose()`."""

    def __init__(self, daemon: Daemon, load: Callable[[], DaemonConfig], paths: Sequence[Path],
                 interval_s: float = POLL_INTERVAL_S) -> None:
        self.daemon = daemon
        self.load = load
        self.paths = list(paths)
        self.interval_s = interval_s
        self.results: list[ReloadResult] = []
        self._signature = signature(self.paths)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch(), name="daemon-live-reload")
        log_event(log, "live_reload_watching", files=",".join(str(p) for p in self.paths),
                  every_ms=round(self.interval_s * 1000))

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            current = signature(self.paths)
            if current == self._signature:
                continue
            self._signature = current
            try:
                self.results.append(await self.reload())
            except Exception as exc:  # the watcher must outlive any one bad reload
                log_event(log, "risk_reload_failed", logging.ERROR, error=repr(exc),
                          action="keeping the rules in force; save the file again to retry")

    async def reload(self) -> ReloadResult:
        """Load the directory again and apply it (or keep the old one, saying why)."""
        result = ReloadResult()
        try:
            config = await asyncio.to_thread(self.load)
        except DaemonConfigError as exc:
            result.rejected = str(exc)
            log_event(log, "risk_reload_rejected", logging.ERROR, file=exc.file, key=exc.key or "(top level)",
                      allowed=exc.message, action="keeping the rules in force")
            await self._audit("rules.reload_rejected", f"invalid: {exc}; the rules in force are kept")
            return result
        pending = self._pending(config, result)
        if not pending:
            log_event(log, "risk_reload_unchanged", files=",".join(p.name for p in self.paths))
            return result
        refused = await self._refusal(pending)
        if refused:
            result.refused = refused
            return result
        for account_id, old, new in pending:
            self.daemon.apply_risk_config(account_id, new)
            diff = "; ".join(str(c) for c in changes(old, new))
            result.applied.append(account_id)
            log_event(log, "risk_reloaded", account=account_id, changes=diff,
                      rules=",".join(new.rules.enabled_ids()))
            await self._audit("rules.reloaded", diff, account_id)
        return result

    def _pending(self, config: DaemonConfig, result: ReloadResult) -> list[tuple[int, RiskConfig, RiskConfig]]:
        by_identity = {_identity(spec): spec for spec in config.accounts}
        running = {_identity(p.spec): p for p in self.daemon.accounts.values()}
        pending: list[tuple[int, RiskConfig, RiskConfig]] = []
        for identity, protected in running.items():
            spec = by_identity.get(identity)
            if spec is None:
                result.restart_needed.append(f"account {protected.spec.label} is no longer in accounts.yaml")
                continue
            if spec.credential != protected.spec.credential:
                result.restart_needed.append(f"account {spec.label}: other credentials")
            if spec.risk != protected.spec.risk:
                pending.append((protected.account.id, protected.spec.risk, spec.risk))
        result.restart_needed += [f"account {spec.label} is new in accounts.yaml" for identity, spec
                                  in by_identity.items() if identity not in running]
        for problem in result.restart_needed:
            log_event(log, "risk_reload_restart_needed", logging.WARNING, change=problem,
                      action="applied at the next start (risk-manager admin daemon restart)")
        return pending

    async def _refusal(self, pending: list[tuple[int, RiskConfig, RiskConfig]]) -> list[str]:
        """Commitment mode: the loosenings refused (empty: the new version may be applied)."""
        loose = [f"account {account_id}: {text}" for account_id, old, new in pending
                 if old.admin.commitment_mode for text in loosenings(old, new)]
        if not loose:
            return []
        now = self.daemon.clock.now()
        locks = [lock for account_id, p in self.daemon.accounts.items() for lock in p.engine.locks(account_id)
                 if lock.until is None or lock.until > now]
        if not locks:
            return []
        lock = locks[0]
        held = f"account {lock.account_id} is locked ({lock.kind.value}: {lock.reason})"
        log_event(log, "risk_reload_refused", logging.CRITICAL, loosenings="; ".join(loose), lock=held,
                  locks=len(locks), action="commitment mode: keeping the rules in force until no lock is active; "
                                           "the file now differs from what is enforced")
        await self._audit("rules.reload_refused",
                          f"commitment mode: {'; '.join(loose)} while {held}; the rules in force are kept")
        return loose

    async def _audit(self, what: str, why: str, account_id: int | None = None) -> None:
        await self.daemon.audit(AUDIT_WHO, what, why, terminal="daemon", account_id=account_id)


__all__ = ["POLL_INTERVAL_S", "LiveReload", "ReloadResult", "signature"]
