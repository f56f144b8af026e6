"""What `risk-manager service status` reports, whatever the service manager."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class ServiceError(Exception):
    """Base class of the service layer's errors; the message says what to do next."""


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    installed: bool
    running: bool
    enabled: bool  # starts by itself at boot (systemd: enabled; Windows: automatic start)
    state: str  # the manager's own words: "active (running)", "activating (auto-restart)", "RUNNING"...
    main_pid: int | None = None
    restarts: int | None = None  # automatic restarts since the unit was loaded (systemd NRestarts)
    unit_path: Path | None = None
