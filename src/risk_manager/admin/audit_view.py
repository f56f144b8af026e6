"""One audit trail from three sources, oldest first: the admin audit file, the store's audit table
and the store's enforcement log.

- `admin-audit.jsonl` (admin directory): every admin command (password, accounts, rules changes and
  refusals), written by `AuditFile`;
- the store's `audit_log` table: what the daemon audited (unlocks, admin locks…);
- the store's `enforcement_log` table: every action the daemon took on an account, with its outcome.

The store is opened read-only (`mode=ro`); without a store (the daemon never ran) only the file is read.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from risk_manager.domain.wire import parse_time
from risk_manager.engine.config import parse_duration
from risk_manager.security.audit_file import AuditFile
from risk_manager.store import tables
from risk_manager.store.database_file import connect_reader, storage_error

ENFORCEMENT_ROWS = 1_000_000  # the enforcement log is pruned to 30 days; this only bounds a runaway table


@dataclass(frozen=True)
class AuditRecord:
    at: datetime
    source: str  # "admin" (the admin audit file), "daemon" (the store's audit table), "enforcement"
    who: str
    what: str
    detail: str
    account: str | None = None
    terminal: str = ""

    def matches(self, text: str) -> bool:
        needle = text.lower()
        return any(needle in (part or "").lower()
                   for part in (self.who, self.what, self.detail, self.account, self.terminal, self.source))


def _admin_records(audit: AuditFile) -> Iterable[AuditRecord]:
    for entry in audit.entries():
        yield AuditRecord(parse_time(entry.at), "admin", entry.who, entry.what, entry.why, entry.account,
                          entry.terminal)


def _store_records(database: Path, since: datetime | None) -> list[AuditRecord]:
    conn = connect_reader(database)
    try:
        audit = tables.audit_log(conn, since)
        enforcement = tables.enforcement_log(conn, None, ENFORCEMENT_ROWS)
    except sqlite3.Error as exc:
        raise storage_error(database, exc, "reading the audit and enforcement logs") from exc
    finally:
        conn.close()
    records = [AuditRecord(e.at, "daemon", e.who, e.what, e.why,
                           None if e.account_id is None else str(e.account_id), e.terminal) for e in audit]
    for r in enforcement:
        kind = str(r.action.get("kind", "action"))
        detail = f"{r.outcome} in {r.duration_ms:.0f} ms" + (f": {r.detail}" if r.detail else "")
        records.append(AuditRecord(r.started, "enforcement", ", ".join(r.rules) or "engine",
                                   f"enforcement.{kind}", detail, str(r.account_id)))
    return records


def audit_trail(audit: AuditFile, database: Path | None, *, since: datetime | None = None,
                account: str | None = None, grep: str | None = None) -> list[AuditRecord]:
    """Every record at or after `since`, for `account` (id or entry name) and containing `grep`, oldest first."""
    records = list(_admin_records(audit))
    if database is not None and database.exists():
        records += _store_records(database, since)
    if since is not None:
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
        records = [r for r in records if r.at >= since]
    if account is not None:
        records = [r for r in records if r.account == account]
    if grep:
        records = [r for r in records if r.matches(grep)]
    return sorted(records, key=lambda r: r.at)


def parse_since(text: str, now: datetime) -> datetime:
    """`2026-03-03`, `2026-03-03T15:00`, or an age like `2h`/`1d` (before `now`)."""
    value = text.strip()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:
            return now - parse_duration(value)
        except ValueError:
            raise ValueError(f"--since {text!r}: give a date (2026-03-03), a UTC time (2026-03-03T15:00) or "
                             "an age (30m, 2h, 1d)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


__all__ = ["AuditRecord", "audit_trail", "parse_since"]
