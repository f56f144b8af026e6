"""Typed errors of the notification layer."""

from __future__ import annotations


class NotificationError(Exception):
    """Base class of every error raised by `risk_manager.notify`."""


class NotificationConfigError(NotificationError, ValueError):
    """The `notifications:` section is invalid; the message lists every bad key and what is allowed."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: invalid notifications section:\n  " + "\n  ".join(problems))


class DeliveryError(NotificationError):
    """A channel refused or could not take a message. `transient` errors are retried."""

    def __init__(self, channel: str, problem: str, *, transient: bool, retry_after: float | None = None) -> None:
        self.channel = channel
        self.problem = problem
        self.transient = transient
        self.retry_after = retry_after
        super().__init__(f"notification channel {channel!r}: {problem}")
