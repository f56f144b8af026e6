"""The schema, as ordered migrations, and the ~40-line framework that applies them.

Why not a library: Alembic needs SQLAlchemy (a large dependency for eight tables) and yoyo-migrations
reads migration files from a directory and brings its own lock tables. We need migrations shipped
inside the package, applied at start-up on the store's own connection, each in one transaction
(SQLite DDL is transactional), recorded in `schema_version`. That is the loop below.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from risk_manager.store.errors import StoreCorruptError, StoreVersionError


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "journal, locks, daily P&L, seen trades, timers, pending actions, enforcement and audit logs", (
        # Times are UTC text 'YYYY-MM-DDTHH:MM:SS.ffffffZ' (fixed width: sorts and compares as text).
        """CREATE TABLE journal (
            seq INTEGER PRIMARY KEY, at TEXT NOT NULL, account_id INTEGER, kind TEXT NOT NULL,
            payload TEXT NOT NULL)""",
        "CREATE INDEX journal_at ON journal(at)",
        """CREATE TABLE locks (
            id TEXT PRIMARY KEY, account_id INTEGER NOT NULL, kind TEXT NOT NULL, symbol TEXT,
            start TEXT NOT NULL, until TEXT, condition TEXT, reason TEXT NOT NULL, rules TEXT NOT NULL,
            created_by TEXT NOT NULL, cleared_at TEXT, cleared_by TEXT, clear_reason TEXT)""",
        "CREATE INDEX locks_active ON locks(account_id) WHERE cleared_at IS NULL",
        """CREATE TABLE daily_pnl (
            account_id INTEGER NOT NULL, trading_day TEXT NOT NULL, realized REAL NOT NULL,
            fees REAL NOT NULL, trades INTEGER NOT NULL, high_balance REAL, updated TEXT NOT NULL,
            PRIMARY KEY (account_id, trading_day)) WITHOUT ROWID""",
        """CREATE TABLE seen_trades (
            account_id INTEGER NOT NULL, trade_id INTEGER NOT NULL, trading_day TEXT NOT NULL,
            at TEXT NOT NULL, contract_id TEXT NOT NULL, pnl REAL,
            PRIMARY KEY (account_id, trade_id)) WITHOUT ROWID""",
        "CREATE INDEX seen_trades_at ON seen_trades(account_id, at)",
        """CREATE TABLE timers (
            id TEXT PRIMARY KEY, account_id INTEGER NOT NULL, kind TEXT NOT NULL, deadline TEXT NOT NULL,
            payload TEXT NOT NULL)""",
        """CREATE TABLE pending_actions (
            idempotency_key TEXT NOT NULL UNIQUE, account_id INTEGER NOT NULL, action TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'in_flight', 'done', 'failed')),
            attempts INTEGER NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL, detail TEXT NOT NULL)""",
        "CREATE INDEX pending_actions_open ON pending_actions(state) WHERE state IN ('pending', 'in_flight')",
        """CREATE TABLE enforcement_log (
            id INTEGER PRIMARY KEY, idempotency_key TEXT NOT NULL, account_id INTEGER NOT NULL,
            action TEXT NOT NULL, rules TEXT NOT NULL, started TEXT NOT NULL, finished TEXT NOT NULL,
            duration_ms REAL NOT NULL, outcome TEXT NOT NULL, detail TEXT NOT NULL)""",
        "CREATE INDEX enforcement_log_started ON enforcement_log(started)",
        """CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY, at TEXT NOT NULL, who TEXT NOT NULL, what TEXT NOT NULL,
            why TEXT NOT NULL, terminal TEXT NOT NULL, account_id INTEGER)""",
    )),
    Migration(2, "engine state snapshots, order history, the flatten flag of locks", (
        """CREATE TABLE engine_state (
            scope TEXT PRIMARY KEY, version INTEGER NOT NULL, journal_seq INTEGER NOT NULL,
            state TEXT NOT NULL, saved_at TEXT NOT NULL)""",
        """CREATE TABLE orders (
            account_id INTEGER NOT NULL, order_id INTEGER NOT NULL, contract_id TEXT NOT NULL,
            status INTEGER NOT NULL, wire TEXT NOT NULL, first_seen TEXT NOT NULL, last_seen TEXT NOT NULL,
            PRIMARY KEY (account_id, order_id))""",
        "CREATE INDEX orders_last_seen ON orders(last_seen)",
        "CREATE INDEX enforcement_log_account ON enforcement_log(account_id, started)",
        "ALTER TABLE locks ADD COLUMN flatten INTEGER NOT NULL DEFAULT 0",
    )),
)
LATEST_VERSION = MIGRATIONS[-1].version


def schema_version(conn: sqlite3.Connection) -> int:
    """The version a database is at: 0 for an empty file."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").fetchone():
        return int(conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0])
    return 0


def migrate(conn: sqlite3.Connection, path: Path, applied_at: str, target: int = LATEST_VERSION) -> list[int]:
    """Bring the database to `target`, one transaction per migration; returns the versions applied.

    `conn` must be in autocommit mode (`isolation_level=None`): this function manages transactions.
    """
    current = schema_version(conn)
    if current == 0 and conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'").fetchone():
        raise StoreCorruptError(path, "is an SQLite database but not a risk-manager one (no schema_version table)",
                                "point the `database.path` setting at another file, or move this one aside")
    if current > LATEST_VERSION:
        raise StoreVersionError(path, f"has schema version {current}, this risk-manager knows up to "
                                f"{LATEST_VERSION}", "upgrade risk-manager, or move the file aside to start fresh")
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version ("
                 "version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL, description TEXT NOT NULL)")
    applied: list[int] = []
    for migration in MIGRATIONS:
        if not current < migration.version <= target:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in migration.statements:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version, applied_at, description) VALUES (?, ?, ?)",
                         (migration.version, applied_at, migration.description))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(migration.version)
    return applied
