"""Typed errors of the admin rules editor and readers. Each message says what is wrong and what to do."""

from __future__ import annotations


class AdminError(Exception):
    """Base class of every error raised by `risk_manager.admin`."""

    def __init__(self, problem: str, remedy: str = "") -> None:
        self.problem = problem
        self.remedy = remedy
        super().__init__(f"{problem}; {remedy}" if remedy else problem)


class RuleNameError(AdminError):
    """A rule (or section) name that the risk config does not have."""


class KeyPathError(AdminError):
    """A key path that cannot be set (it runs through a single value, or an index is out of range)."""


class DaemonFilesError(AdminError):
    """The daemon's config.yaml cannot be read to find the risk file, the database or the logs."""


class CommitmentRefusedError(AdminError):
    """Commitment mode: a loosening change while a lock is active. Names the change and the lock."""

    def __init__(self, problem: str, remedy: str, loosenings: list[str]) -> None:
        self.loosenings = loosenings
        super().__init__(problem, remedy)
