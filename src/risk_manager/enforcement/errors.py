"""Typed errors of the enforcement layer, each with a message a trader can act on."""

from __future__ import annotations


class EnforcementError(Exception):
    """Base class of every error raised by `risk_manager.enforcement`."""


class UnsupportedActionError(EnforcementError, ValueError):
    """`submit` got an action kind the enforcer does not execute (alerts, stop checks, unlocks...)."""


class EnforcerClosedError(EnforcementError, RuntimeError):
    """`submit` after `aclose()`: the daemon is shutting down and takes no new enforcement."""


class StoredActionError(EnforcementError, ValueError):
    """A pending action in the store cannot be read back (written by another version, or damaged)."""


class ActionFailed(EnforcementError):
    """An action could not be achieved. `retryable`: nothing irreversible is known to have happened
    (or the outcome is unknown), so the idempotency key is released for a later re-submission."""

    def __init__(self, reason: str, *, attempts: int = 0, retryable: bool = False) -> None:
        self.reason = reason
        self.attempts = attempts
        self.retryable = retryable
        super().__init__(reason)
