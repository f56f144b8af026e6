"""Opening the database file: permissions, WAL set-up, integrity check, and errors a trader can act on.

Every failure here is turned into a `StoreError` naming the file and the next step; nothing half-opens.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from pathlib import Path

from risk_manager.logs import log_event
from risk_manager.store.errors import StoreCorruptError, StoreError, StoreUnwritableError, StoreVersionError
from risk_manager.store.schema import LATEST_VERSION, schema_version

logger = logging.getLogger("risk_manager.store")

BUSY_TIMEOUT_MS = 5000
WAL_AUTOCHECKPOINT_PAGES = 1000        # SQLite's default: checkpoint when the WAL passes ~4 MB
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024  # truncate the WAL back to this after a checkpoint

# SQLite primary result codes that mean "the storage failed", as opposed to a bug in a statement.
_STORAGE_CODES = frozenset({
    3,   # SQLITE_PERM
    5,   # SQLITE_BUSY (another process holds the write lock past the busy timeout)
    8,   # SQLITE_READONLY
    10,  # SQLITE_IOERR
    11,  # SQLITE_CORRUPT
    13,  # SQLITE_FULL
    14,  # SQLITE_CANTOPEN
    15,  # SQLITE_PROTOCOL
    26,  # SQLITE_NOTADB
})
_CORRUPT_CODES = frozenset({11, 26})

_CORRUPT_REMEDY = ("stop risk-manager, move the file aside (e.g. `mv {path} {path}.corrupt`, with its -wal and -shm "
                   "files) and start again: a fresh database is created and positions are reconciled from the "
                   "broker, but locks stored in the old file are lost, so re-create them by hand")
_UNWRITABLE_REMEDY = ("give the user running risk-manager read and write access to it and its directory, "
                      "or set `database.path` in config.yaml to a writable place")


def is_storage_failure(exc: BaseException) -> bool:
    """True for errors of the disk or file (full, I/O, corrupt, read-only), False for bugs in a statement."""
    if not isinstance(exc, sqlite3.Error):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in _STORAGE_CODES
    return type(exc) in (sqlite3.OperationalError, sqlite3.DatabaseError)


def storage_error(path: Path, exc: sqlite3.Error, doing: str) -> StoreError:
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if code in _CORRUPT_CODES or (type(exc) is sqlite3.DatabaseError and code == 0):
        return StoreCorruptError(path, f"is not a sound SQLite database ({exc}) while {doing}",
                                 _CORRUPT_REMEDY.format(path=path))
    if code == 5:
        return StoreUnwritableError(path, f"is locked by another process ({exc}) while {doing}",
                                    "check that no other risk-manager daemon uses the same database.path")
    return StoreUnwritableError(path, f"cannot be used ({exc}) while {doing}", _UNWRITABLE_REMEDY)


def _prepare_directory(path: Path) -> None:
    parent = path.parent
    if parent.exists():
        if not parent.is_dir():
            raise StoreUnwritableError(path, f"{parent} is not a directory", _UNWRITABLE_REMEDY)
    else:
        missing = [parent, *(p for p in parent.parents if not p.exists())]
        for directory in reversed(missing):  # every directory we create is private to the service user
            try:
                directory.mkdir(mode=0o700, exist_ok=True)
                if os.name == "posix":
                    directory.chmod(0o700)  # mkdir's mode is filtered by the umask
            except OSError as exc:
                raise StoreUnwritableError(path, f"cannot create directory {directory} ({exc.strerror})",
                                           _UNWRITABLE_REMEDY) from exc
            log_event(logger, "store_directory_created", directory=directory, mode="0o700")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StoreUnwritableError(
            path, f"directory {parent} is not writable (SQLite keeps its -wal and -shm files next to the database)",
            _UNWRITABLE_REMEDY)


def _prepare_file(path: Path) -> bool:
    """Create the file 0600 if missing (True when created); tighten a group/world-readable one."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    except FileExistsError:
        if not path.is_file():
            raise StoreUnwritableError(path, "exists but is not a regular file", _UNWRITABLE_REMEDY) from None
        if not os.access(path, os.R_OK | os.W_OK):
            raise StoreUnwritableError(path, "is not readable and writable by this user", _UNWRITABLE_REMEDY) from None
        mode = stat.S_IMODE(path.stat().st_mode)
        if os.name == "posix" and mode & 0o077:
            try:
                path.chmod(0o600)
                log_event(logger, "store_permissions_tightened", path=path, was=oct(mode), now="0o600")
            except OSError as exc:
                log_event(logger, "store_permissions_open", logging.WARNING, path=path, mode=oct(mode),
                          error=exc.strerror)
        return False
    except OSError as exc:
        raise StoreUnwritableError(path, f"cannot be created ({exc.strerror})", _UNWRITABLE_REMEDY) from exc
    os.close(fd)
    if os.name == "posix":
        path.chmod(0o600)  # O_CREAT's mode is filtered by the umask; make sure
    return True


def connect_writer(path: Path) -> sqlite3.Connection:
    """The one read-write connection: WAL, synchronous=NORMAL, integrity-checked, write lock probed.

    Must be called on the thread that will use the connection.
    """
    _prepare_directory(path)
    _prepare_file(path)
    conn: sqlite3.Connection | None = None
    doing = "opening"
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        doing = "checking integrity"
        problems = [row[0] for row in conn.execute("PRAGMA quick_check").fetchall()]
        if problems != ["ok"]:
            raise StoreCorruptError(path, f"failed its integrity check ({'; '.join(problems[:3])})",
                                    _CORRUPT_REMEDY.format(path=path))
        doing = "setting up write-ahead logging"
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # takes effect only on a new, empty database
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreUnwritableError(path, f"cannot use write-ahead logging (journal mode stays {mode!r}; "
                                       "network file systems do not support it)", _UNWRITABLE_REMEDY)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
        conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
        conn.execute("PRAGMA temp_store = MEMORY")
        doing = "taking the write lock"
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
    except sqlite3.Error as exc:
        if conn is not None:
            conn.close()
        raise storage_error(path, exc, doing) from exc
    except StoreError:
        if conn is not None:
            conn.close()
        raise
    return conn


def connect_reader(path: Path) -> sqlite3.Connection:
    """A read-only connection (`mode=ro`) for a dashboard while the daemon writes."""
    path = path.resolve()
    if not path.is_file():
        raise StoreError(path, "does not exist", "start the daemon once with this `database.path`, "
                         "or point the dashboard at the daemon's database")
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, isolation_level=None,
                               timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as exc:
        raise storage_error(path, exc, "opening read-only") from exc
    try:
        version = schema_version(conn)
    except sqlite3.Error as exc:
        conn.close()
        raise storage_error(path, exc, "reading the schema version") from exc
    if version == 0 or version > LATEST_VERSION:
        conn.close()
        if version == 0:
            raise StoreCorruptError(path, "has no risk-manager schema", "point the dashboard at the daemon's database")
        raise StoreVersionError(path, f"has schema version {version}, this risk-manager reads up to {LATEST_VERSION}",
                                "upgrade risk-manager")
    return conn
