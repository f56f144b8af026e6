"""The admin audit file: one JSON object per line, appended and fsynced, never rewritten.

Admin commands run without the daemon (and often as another user than the daemon's), so they do
not open the daemon's SQLite store; they append here, in the admin directory (0600). Each line:
`{"at", "who", "what", "why", "terminal", "account"}`. `risk-manager admin audit` (issue 7 item 6)
reads this file beside the store's audit table. Secrets never go in: callers pass names, not values.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from risk_manager.domain.clock import Clock
from risk_manager.domain.wire import format_time
from risk_manager.logs import log_event, redact
from risk_manager.security.paths import append_private

logger = logging.getLogger("risk_manager.security")


@dataclass(frozen=True)
class AuditEntry:
    at: str
    who: str
    what: str
    why: str
    terminal: str
    account: str | None = None


def current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no USER/LOGNAME and no passwd entry (containers): still audit the action
        return f"uid:{getattr(os, 'getuid', lambda: -1)()}"


def current_terminal() -> str:
    """The controlling terminal (`/dev/pts/3`), plus the SSH client when remote; `not a terminal` otherwise."""
    name = "not a terminal"
    try:
        if sys.stdin is not None and sys.stdin.isatty():
            name = os.ttyname(sys.stdin.fileno())
    except (OSError, ValueError, AttributeError):
        pass
    ssh = os.environ.get("SSH_CLIENT", "").split(" ")[0]
    return f"{name} via ssh from {ssh}" if ssh else name


class AuditFile:
    def __init__(self, path: Path, clock: Clock) -> None:
        self.path = path
        self.clock = clock

    def append(self, what: str, why: str = "", account: str | None = None,
               who: str | None = None, terminal: str | None = None) -> AuditEntry:
        entry = AuditEntry(format_time(self.clock.now()), who or current_user(), what, redact(why),
                           terminal or current_terminal(), account)
        append_private(self.path, (json.dumps(asdict(entry), ensure_ascii=True) + "\n").encode())
        log_event(logger, "admin_audit", what=what, account=account, who=entry.who)
        return entry

    def entries(self) -> Iterator[AuditEntry]:
        """Every readable line, oldest first; a damaged line is logged and skipped."""
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                yield AuditEntry(**json.loads(line))
            except (ValueError, TypeError) as exc:
                log_event(logger, "admin_audit_line_unreadable", logging.WARNING, path=self.path, line=number,
                          error=type(exc).__name__)
