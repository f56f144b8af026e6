"""`risk-manager admin daemon start|stop|restart|status`: control the daemon of one config directory.

- **Installed as a service** for this config directory (a systemd unit, system or `--user`, whose
  `ExecStart` runs `run --config` on this directory): start/stop go through systemd, so the service
  manager keeps supervising it (restart on failure, start at boot).
- **Otherwise, directly**: `start` spawns `risk-manager run --config DIR` detached (its own session;
  output appended to `daemon.out` in the state directory) and waits until it protects; `stop` sends
  SIGTERM to the pid in `daemon.pid` and waits up to 5 s (the daemon's own shutdown bound).

`status` reads `daemon-status.json`, which the daemon rewrites every 2 s: PID, uptime, accounts and
their enabled rules and locks, connection state, age of the last event, database path and size.
start/stop/restart need the admin password and are audited; status needs none (like `service status`)
and changes nothing. Exit codes: 0 done / running, 1 refused or failed, 3 wrong admin password,
4 (status) not running.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import typer

from risk_manager.admin.errors import AdminError
from risk_manager.admin.locations import DaemonFiles
from risk_manager.cli import service_cmd
from risk_manager.cli.admin_cmd import CONFIG, PASSWORD_STDIN, _admin_refusals, _directory, _unlocked, err, out
from risk_manager.daemon.runtime_files import STATUS_INTERVAL_S, pid_alive, pid_path, read_pid, read_status
from risk_manager.domain.clock import SystemClock
from risk_manager.domain.wire import parse_time
from risk_manager.security.admin_directory import AdminDirectory
from risk_manager.security.paths import resolve_config_dir
from risk_manager.security.prompts import SecretReader
from risk_manager.service import systemd
from risk_manager.service.paths import ServiceMode
from risk_manager.service.status import ServiceError

app = typer.Typer(help="Start, stop, restart the daemon or show its status (through the service manager when "
                       "installed as a service).", no_args_is_help=True)

NOT_RUNNING = 4
STOP_TIMEOUT_S = 5.0
OUTPUT_FILE = "daemon.out"
START_TIMEOUT = typer.Option(30.0, "--timeout", min=1, help="Seconds to wait for the daemon to protect.")
GATEWAY = typer.Option(None, "--gateway", help="Run against this Gateway root URL (e.g. the simulator's "
                                               "http://127.0.0.1:5100) instead of config.yaml's; direct mode only.")


def _service(config_dir: Path) -> ServiceMode | None:
    """The systemd mode whose installed unit runs this config directory, or None (control it directly)."""
    if not service_cmd.PLATFORM.startswith("linux"):
        return None
    for mode in (ServiceMode.SYSTEM, ServiceMode.USER):
        try:
            state = systemd.status(mode, host=service_cmd.systemd_host())
        except ServiceError:
            return None   # no systemd here
        if not state.installed or state.unit_path is None:
            continue
        try:
            unit = state.unit_path.read_text(encoding="utf-8")
        except OSError:
            continue
        if any(_runs(line, config_dir) for line in unit.splitlines()):
            return mode
    return None


def _runs(line: str, config_dir: Path) -> bool:
    """An `ExecStart=… run --config DIR` line for exactly this directory."""
    if not line.startswith("ExecStart="):
        return False
    try:
        args = shlex.split(line.removeprefix("ExecStart="))
    except ValueError:
        return False
    return any(a == "--config" and i + 1 < len(args) and Path(args[i + 1]) == config_dir
               for i, a in enumerate(args))


def _session(config: Path | None, password_stdin: bool) -> tuple[AdminDirectory, DaemonFiles]:
    directory = _directory(config)
    _unlocked(directory, SecretReader(password_stdin))
    return directory, DaemonFiles.resolve(directory.paths.directory)


def _running_pid(state_dir: Path) -> int | None:
    pid = read_pid(state_dir)
    return pid if pid is not None and pid_alive(pid) else None


def _start_direct(files: DaemonFiles, timeout_s: float, gateway: str | None = None) -> str:
    state_dir = files.database.parent
    running = _running_pid(state_dir)
    if running is not None:
        return f"already running (pid {running})"
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    output = state_dir / OUTPUT_FILE
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "risk_manager", "run", "--config", str(files.config_dir),
             *(["--gateway", gateway] if gateway else [])],
            stdin=subprocess.DEVNULL, stdout=fd, stderr=fd, start_new_session=True, close_fds=True)
    finally:
        os.close(fd)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            tail = output.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
            raise AdminError(f"the daemon exited with code {code} before protecting: " + " | ".join(tail),
                             f"fix what it says, then start it again (full output: {output})")
        status = read_status(state_dir)
        if status is not None and status.get("pid") == process.pid and status.get("state") == "protecting":
            return f"started (pid {process.pid}), protecting {len(status.get('accounts', []))} account(s)"
        time.sleep(0.1)
    raise AdminError(f"the daemon (pid {process.pid}) did not report protecting within {timeout_s:g} s",
                     f"it is still starting or stuck: see {output} and `risk-manager admin daemon status`")


def _stop_direct(files: DaemonFiles) -> str:
    state_dir = files.database.parent
    pid = _running_pid(state_dir)
    if pid is None:
        pid_path(state_dir).unlink(missing_ok=True)
        return "not running"
    try:
        os.kill(pid, signal.SIGTERM)
    except PermissionError:
        raise AdminError(f"the daemon (pid {pid}) belongs to another user",
                         "run the command as that user (or with sudo)") from None
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while pid_alive(pid):
        if time.monotonic() > deadline:
            raise AdminError(f"the daemon (pid {pid}) did not stop within {STOP_TIMEOUT_S:g} s of SIGTERM",
                             f"it may be finishing an enforcement; `kill -9 {pid}` forces it (locks and claimed "
                             "actions are on disk, the next start finishes them)")
        time.sleep(0.05)
    return f"stopped (pid {pid})"


@app.command()
def start(config: Path | None = CONFIG, password_stdin: bool = PASSWORD_STDIN,
          timeout: float = START_TIMEOUT, gateway: str | None = GATEWAY) -> None:
    """Start the daemon (the service, or `risk-manager run` detached). Stdin line: admin password."""
    with _admin_refusals():
        admin, files = _session(config, password_stdin)
        mode = _service(files.config_dir)
        if mode is not None:
            systemd.start(mode, host=service_cmd.systemd_host())
            said = f"started the {mode.value} service"
        else:
            said = _start_direct(files, timeout, gateway)
        admin.audit.append("daemon.start", said)
    out.print(f"Daemon: {said}.", highlight=False)


@app.command()
def stop(config: Path | None = CONFIG, password_stdin: bool = PASSWORD_STDIN) -> None:
    """Stop the daemon: the accounts are NOT protected until it runs again. Stdin line: admin password."""
    with _admin_refusals():
        admin, files = _session(config, password_stdin)
        mode = _service(files.config_dir)
        if mode is not None:
            systemd.stop(mode, host=service_cmd.systemd_host())
            said = f"stopped the {mode.value} service"
        else:
            said = _stop_direct(files)
        admin.audit.append("daemon.stop", said)
    out.print(f"Daemon: {said}; the accounts are not protected until it is started again.", highlight=False)


@app.command()
def restart(config: Path | None = CONFIG, password_stdin: bool = PASSWORD_STDIN,
            timeout: float = START_TIMEOUT, gateway: str | None = GATEWAY) -> None:
    """Stop, then start the daemon (picks up new accounts and credentials). Stdin line: admin password."""
    with _admin_refusals():
        admin, files = _session(config, password_stdin)
        mode = _service(files.config_dir)
        if mode is not None:
            service_cmd.systemd_host().systemctl(mode, "restart", systemd.UNIT_NAME)
            said = f"restarted the {mode.value} service"
        else:
            said = f"{_stop_direct(files)}, then {_start_direct(files, timeout, gateway)}"
        admin.audit.append("daemon.restart", said)
    out.print(f"Daemon: {said}.", highlight=False)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _age(then: str | None, now: datetime) -> str:
    return f"{_duration((now - parse_time(then)).total_seconds())} ago" if then else "none yet"


def _when(text: Any) -> str:
    try:
        return f"{parse_time(str(text)):%Y-%m-%d %H:%M:%S} UTC"
    except ValueError:
        return str(text)


def _size(path: Path) -> str:
    try:
        size = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    return f"{size / 1024 / 1024:.1f} MiB" if size >= 1024 * 1024 else f"{size / 1024:.0f} KiB"


def describe(status: dict[str, Any], now: datetime) -> list[str]:
    """The status file in lines, for people."""
    lines = [f"PID {status.get('pid')}, up {_duration(float(status.get('uptime_s', 0)))} (since "
             f"{_when(status.get('started_at'))}), state {status.get('freshness')}"]
    for account in status.get("accounts", []):
        locks = "; ".join(f"{lk['kind']}{' until ' + _when(lk['until']) if lk.get('until') else ''}: {lk['reason']}"
                          for lk in account.get("locks", [])) or "none"
        lines.append(f"account {account['id']} {account.get('name', '')}: rules "
                     f"{', '.join(account.get('enabled_rules', [])) or 'none'}; locks: {locks}")
    for connection in status.get("connections", []):
        lines.append(f"connection {connection['credentials']}: user hub {connection['user_hub']}, market hub "
                     f"{connection['market_hub']}, {'fresh' if connection.get('fresh') else 'STALE'}, "
                     f"circuit {connection['breaker']}")
    lines.append(f"last event: {_age(status.get('last_event_at'), now)}; {status.get('events_processed', 0)} events, "
                 f"{status.get('actions', 0)} enforcement actions")
    database = Path(str(status.get("database", "")))
    lines.append(f"database: {database} ({_size(database)})"
                 + (", DEGRADED (writes failing)" if status.get("store_degraded") else ""))
    return lines


@app.command()
def status(config: Path | None = CONFIG) -> None:
    """PID, uptime, accounts, enabled rules, connection state, last event age, database. No password needed."""
    with _admin_refusals():
        files = DaemonFiles.resolve(resolve_config_dir(config))
    state_dir = files.database.parent
    mode = _service(files.config_dir)
    if mode is not None:
        state = systemd.status(mode, host=service_cmd.systemd_host())
        out.print(f"{mode.value} service: {state.state}" + (f", PID {state.main_pid}" if state.main_pid else ""),
                  highlight=False)
    pid = _running_pid(state_dir)
    try:
        data = read_status(state_dir)
    except PermissionError:
        err.print(f"[red]error:[/red] cannot read the daemon's status file in {state_dir}: it belongs to the "
                  "daemon's user; run the command as that user (or with sudo)", highlight=False)
        raise typer.Exit(1) from None
    now = SystemClock().now()
    if pid is None or data is None or data.get("pid") != pid:
        out.print(f"Daemon for {files.config_dir}: not running.", highlight=False)
        if data is not None:
            out.print(f"last seen: {data.get('updated_at')} ({data.get('state')})", highlight=False)
        raise typer.Exit(NOT_RUNNING)
    out.print(f"Daemon for {files.config_dir}: running.", highlight=False)
    for line in describe(data, now):
        out.print(line, highlight=False, markup=False, soft_wrap=True)
    age = (now - parse_time(str(data.get("updated_at")))).total_seconds()
    if age > 3 * STATUS_INTERVAL_S:
        err.print(f"[yellow]warning:[/yellow] the status file is {age:.0f} s old: the daemon may be hung",
                  highlight=False)


def register(admin: typer.Typer) -> None:
    admin.add_typer(app, name="daemon")


__all__ = ["app", "describe", "register"]
