"""Applying an edit of the risk file: validate, commitment mode, atomic write, audit entry.

Order of checks (nothing is written unless all pass):
1. the whole edited file validates with the engine's schema (`ConfigError` names the key);
2. commitment mode: when the file in force has `admin.commitment_mode: true`, a change that
   `loosenings()` lists is refused while any lock in the daemon's store is active
   (`CommitmentRefusedError` names the loosening and the lock; the refusal is audited);
3. the file was not changed by someone else since it was loaded;
then the file is replaced atomically (0600) and one audit entry records who, when, what changed
(old → new), why (`--reason`) and from which terminal.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

from risk_manager.admin.errors import AdminError, CommitmentRefusedError
from risk_manager.admin.locations import DaemonFiles
from risk_manager.admin.loosening import loosenings
from risk_manager.admin.rules_file import Change, RulesDocument, changes
from risk_manager.domain.clock import Clock
from risk_manager.logs import log_event
from risk_manager.security.audit_file import AuditFile
from risk_manager.store import LockRecord, StoreReader

logger = logging.getLogger("risk_manager.admin")


@dataclass(frozen=True)
class EditResult:
    path: Path
    changes: list[Change]
    loosenings: list[str]
    written: bool


def active_locks(database: Path, clock: Clock) -> list[LockRecord]:
    """Locks in the daemon's store that are not cleared and not past their end (no store: none).

    A store that exists but cannot be read raises `StoreError`: commitment mode then fails closed.
    """
    if not database.exists():
        return []
    with StoreReader(database) as reader:
        locks = reader.active_locks()
    now = clock.now()
    return [lock for lock in locks if lock.until is None or lock.until > now]


def describe_lock(lock: LockRecord) -> str:
    by = ", ".join(lock.rules) or lock.created_by
    until = f" until {lock.until.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if lock.until else ""
    what = f"symbol {lock.symbol} of account {lock.account_id}" if lock.symbol else f"account {lock.account_id}"
    return f"{what} is locked by {by} ({lock.kind}{until}: {lock.reason})"


class RulesEditor:
    """Edits one risk file for one admin session. `clock` dates the audit entries and lock ends."""

    def __init__(self, files: DaemonFiles, audit: AuditFile, clock: Clock,
                 environ: Mapping[str, str] | None = None) -> None:
        self.files = files
        self.audit = audit
        self.clock = clock
        self.environ = environ

    def load(self) -> RulesDocument:
        return RulesDocument.load(self.files.risk_file, self.environ)

    def commit(self, document: RulesDocument, what: str, reason: str = "") -> EditResult:
        new = document.validated()
        diff = changes(document.config, new)
        if not diff:
            return EditResult(document.path, [], [], written=False)
        loose = loosenings(document.config, new)
        if loose and document.config.admin.commitment_mode:
            self._refuse_if_locked(document, loose, what)
        if not self._unchanged_on_disk(document):
            raise AdminError(f"{document.path} was changed by someone else since it was loaded",
                             "run the command again (nothing was written)")
        document.write()
        why = "; ".join(str(c) for c in diff) + f" (reason: {reason or 'none given'})"
        self.audit.append(what, why)
        log_event(logger, "risk_file_changed", path=document.path, changes=len(diff), loosenings=len(loose))
        return EditResult(document.path, diff, loose, written=True)

    def _refuse_if_locked(self, document: RulesDocument, loose: list[str], what: str) -> None:
        locks = active_locks(self.files.database, self.clock)
        if not locks:
            return
        reset = document.config.daily_reset
        self.audit.append("rules.refused", f"commitment mode: {'; '.join(loose)} while {describe_lock(locks[0])}")
        log_event(logger, "risk_change_refused", logging.WARNING, path=document.path, what=what,
                  loosenings=len(loose), locks=len(locks))
        more = f" (and {len(locks) - 1} more lock(s))" if len(locks) > 1 else ""
        raise CommitmentRefusedError(
            f"commitment mode is on and {describe_lock(locks[0])}{more}: refused, because it loosens "
            f"protection: {'; '.join(loose)}",
            f"tightening is always allowed; loosening is accepted again once no lock is active (until-reset "
            f"locks end at the daily reset, {reset.time:%H:%M} {reset.timezone}). Nothing was written",
            loose)

    def _unchanged_on_disk(self, document: RulesDocument) -> bool:
        try:
            current: str | None = document.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            current = None
        return current == document.original


__all__ = ["EditResult", "RulesEditor", "active_locks", "describe_lock"]
