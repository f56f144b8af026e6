"""What the daemon tells a trader outside the dashboard: one `Notification` per event worth a message."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum


class NotificationKind(StrEnum):
    """The events a channel can subscribe to (`kinds:` in the config)."""

    ENFORCEMENT = "enforcement"  # an action was taken on an account (flatten, cancel, reduce)
    LOCK = "lock"  # an account was locked (or unlocked)
    WARN = "warn"  # a rule crossed its `warn_at` threshold
    DISCONNECT = "disconnect"  # the Gateway was unreachable for longer than `disconnect_after` (and came back)
    DAEMON = "daemon"  # the daemon started or stopped
    TEST = "test"  # `risk-manager admin notify-test`; every channel gets it whatever its kinds


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


DEFAULT_SEVERITY: Mapping[NotificationKind, Severity] = {
    NotificationKind.ENFORCEMENT: Severity.CRITICAL,
    NotificationKind.LOCK: Severity.CRITICAL,
    NotificationKind.WARN: Severity.WARNING,
    NotificationKind.DISCONNECT: Severity.WARNING,
    NotificationKind.DAEMON: Severity.INFO,
    NotificationKind.TEST: Severity.INFO,
}


@dataclass(frozen=True, slots=True)
class Notification:
    """One message. `account` is the account name or id as the trader knows it (None: not about one account)."""

    kind: NotificationKind
    message: str
    account: str | None = None
    rules: tuple[str, ...] = ()
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    severity: Severity | None = None
    details: Mapping[str, str] = field(default_factory=dict)

    @property
    def level(self) -> Severity:
        return self.severity or DEFAULT_SEVERITY[self.kind]

    @property
    def title(self) -> str:
        where = f" · {self.account}" if self.account else ""
        return f"risk-manager {self.kind.value}{where}"

    def to_json(self) -> dict[str, object]:
        """The generic webhook body (stable field names, documented in docs/operations.md)."""
        return {
            "source": "risk-manager",
            "kind": self.kind.value,
            "severity": self.level.value,
            "account": self.account,
            "rules": list(self.rules),
            "message": self.message,
            "time": self.time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "details": dict(self.details),
        }

    def to_text(self) -> str:
        """Plain text for chat channels: title line, message, rules, details, time."""
        lines = [self.title, self.message]
        if self.rules:
            lines.append("rules: " + ", ".join(self.rules))
        lines.extend(f"{key}: {value}" for key, value in self.details.items())
        lines.append(self.time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"))
        return "\n".join(lines)
