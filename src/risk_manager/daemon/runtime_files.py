"""The running daemon's pid file and status file, for `risk-manager admin daemon status|stop`.

Both live in the daemon's state directory (the directory of its database, `state/` in the config
directory by default), so a config directory names exactly one daemon:

- `daemon.pid`: the process id, written (0600) once the daemon protects, removed at a clean stop.
- `daemon-status.json`: rewritten atomically every `STATUS_INTERVAL_S` (2 s) and at the stop: pid,
  start time, accounts with their enabled rules and locks, the connection state, when the last event
  arrived, the database path. `admin daemon status` reads it (and `stat`s the database for its size);
  an `updated_at` older than a few intervals means the daemon is hung or gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from risk_manager.daemon.daemon import Daemon
from risk_manager.domain.wire import format_time
from risk_manager.logs import log_event
from risk_manager.security.paths import write_private_atomic

log = logging.getLogger("risk_manager.daemon")

PID_FILE = "daemon.pid"
STATUS_FILE = "daemon-status.json"
STATUS_INTERVAL_S = 2.0


def pid_path(state_dir: Path) -> Path:
    return state_dir / PID_FILE


def status_path(state_dir: Path) -> Path:
    return state_dir / STATUS_FILE


def read_pid(state_dir: Path) -> int | None:
    """The pid in the pid file, or None (no file, or not a number)."""
    try:
        return int(pid_path(state_dir).read_text(encoding="ascii").strip())
    except (FileNotFoundError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """The process exists and has not exited (a zombie waiting for its parent counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user (a service account)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return True  # no /proc (macOS): kill(0) is the answer
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def read_status(state_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(status_path(state_dir).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class RuntimeFiles:
    """Writes the pid file and, every STATUS_INTERVAL_S, the status file. `start()` / `aclose()`."""

    def __init__(self, daemon: Daemon, state_dir: Path, interval_s: float = STATUS_INTERVAL_S) -> None:
        self.daemon = daemon
        self.state_dir = state_dir
        self.interval_s = interval_s
        self.started_at = daemon.clock.now()
        self.last_event_at: datetime | None = None
        self._events_seen = 0
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe = daemon.subscribe_status(self._on_status)

    def _on_status(self, status: dict[str, Any]) -> None:
        received = int(status.get("stats", {}).get("events_processed", 0))
        if received != self._events_seen:
            self._events_seen = received
            self.last_event_at = self.daemon.clock.now()

    def snapshot(self, state: str = "protecting") -> dict[str, Any]:
        daemon = self.daemon
        now = daemon.clock.now()
        status = daemon.status()
        accounts = []
        for account_id, protected in daemon.accounts.items():
            accounts.append({
                "id": account_id, "name": protected.account.name,
                "enabled_rules": protected.spec.risk.rules.enabled_ids(),
                "locks": [{"kind": lock.kind.value, "until": format_time(lock.until) if lock.until else None,
                           "reason": lock.reason, "symbol": lock.symbol}
                          for lock in protected.engine.locks(account_id)],
            })
        return {
            "pid": os.getpid(), "state": state, "freshness": status["state"],
            "started_at": format_time(self.started_at), "updated_at": format_time(now),
            "uptime_s": round((now - self.started_at).total_seconds(), 1),
            "last_event_at": format_time(self.last_event_at) if self.last_event_at else None,
            "accounts": accounts, "connections": status["connections"],
            "database": str(daemon.options.database_path), "store_degraded": status["store"]["degraded"],
            "events_processed": status["stats"]["events_processed"], "actions": status["stats"]["actions"],
        }

    def write(self, state: str = "protecting") -> None:
        write_private_atomic(status_path(self.state_dir), (json.dumps(self.snapshot(state)) + "\n").encode())

    def start(self) -> None:
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private_atomic(pid_path(self.state_dir), f"{os.getpid()}\n".encode())
        self.write()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="daemon-status-file")
        log_event(log, "runtime_files_written", pid_file=pid_path(self.state_dir),
                  status_file=status_path(self.state_dir))

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                self.write()
            except OSError as exc:  # a full disk must not stop protection; said once per failure
                log_event(log, "status_file_failed", logging.WARNING, error=str(exc))

    async def aclose(self) -> None:
        self._unsubscribe()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(OSError):
            self.write("stopped")
        if read_pid(self.state_dir) == os.getpid():
            pid_path(self.state_dir).unlink(missing_ok=True)


__all__ = ["PID_FILE", "STATUS_FILE", "RuntimeFiles", "pid_alive", "pid_path", "read_pid", "read_status",
           "status_path"]
