"""Typed errors of the store. Each message names the database file and says what to do."""

from __future__ import annotations

from pathlib import Path


class StoreError(Exception):
    """The store cannot be used. Raised at start-up; never on the event path while running."""

    def __init__(self, path: Path | str, problem: str, remedy: str) -> None:
        self.path = Path(path)
        self.problem = problem
        self.remedy = remedy
        super().__init__(f"database {self.path}: {problem}; {remedy}")


class StoreCorruptError(StoreError):
    """The file exists but is not a sound SQLite database (or not ours)."""


class StoreUnwritableError(StoreError):
    """The file or its directory cannot be created or written."""


class StoreVersionError(StoreError):
    """The database was written by a newer risk-manager than this one."""


class StoreClosedError(RuntimeError):
    """A call on a store that has been closed (a programming error in the caller)."""
