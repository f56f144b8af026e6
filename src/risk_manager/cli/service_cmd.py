"""`risk-manager service install|uninstall|start|stop|status`: the daemon as a systemd unit (Linux, system or
`--user`) or a Windows service.

Every verb but `status` asks for the admin password (a hidden prompt, or one line on stdin with
`--password-stdin`), checked against the admin directory in the service's config directory, with
the same counter and back-off as `risk-manager admin`. `status` changes nothing and reveals no
secret, so anyone may run it. Exit codes: 0 done (status: running and ready), 1 refused (the
message says why and what to do), 3 wrong admin password or back-off running, 4 (status only)
the daemon is not installed, not running or not ready.
"""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from risk_manager.cli.refusals import refusals
from risk_manager.health.config import DEFAULT_HOST, DEFAULT_PORT, ConfigFileError, read_health_config
from risk_manager.health.probe import probe_ready
from risk_manager.logs import configure_logging
from risk_manager.security.admin_directory import AdminDirectory
from risk_manager.security.paths import AdminPaths
from risk_manager.security.prompts import SecretReader
from risk_manager.service import systemd, windows
from risk_manager.service.paths import ServiceMode, config_dir
from risk_manager.service.status import ServiceError, ServiceStatus

app = typer.Typer(help="Run the daemon as a service (systemd on Linux, the Windows service manager). "
                       "Changes need the admin password.", no_args_is_help=True)

out = Console()
err = Console(stderr=True)

NOT_PROTECTING = 4

USER = typer.Option(False, "--user", help="Linux: the current user's systemd (no root needed; the user can stop "
                                          "it). Default: the system service under its own account.")
CONFIG = typer.Option(None, "--config", file_okay=False,
                      help="The daemon's config directory, also holding the admin password (default: "
                           "/etc/risk-manager, with --user ~/.config/risk-manager, on Windows "
                           "%ProgramData%\\risk-manager\\config).")
PASSWORD_STDIN = typer.Option(False, "--password-stdin", help="Read the admin password from stdin (one line) "
                                                              "instead of a hidden prompt.")

# Seams for the tests: the platform, and how systemd / the Windows service manager are reached.
PLATFORM = sys.platform


def systemd_host() -> systemd.SystemdHost:
    return systemd.SystemdHost()


def windows_scm() -> windows.ServiceControlManager | None:
    return None  # None: the real one, through pywin32


@app.callback()
def _service() -> None:
    """Install and drive the risk-manager service."""
    configure_logging("WARNING")


def _refusals() -> AbstractContextManager[None]:
    return refusals(err, ServiceError, ConfigFileError, ValueError)


def _say(text: str) -> None:
    out.print(escape(text), highlight=False, soft_wrap=True)


def _mode(user: bool) -> ServiceMode:
    if PLATFORM == "win32":
        if user:
            raise ServiceError("--user is for Linux: on Windows there is only the system service; install it from "
                               "a terminal opened with 'Run as administrator'")
        return ServiceMode.SYSTEM
    if not PLATFORM.startswith("linux"):
        raise ServiceError(f"running as a service is supported on Linux (systemd) and Windows, not on {PLATFORM}; "
                           "run 'risk-manager run' under your system's supervisor (e.g. launchd)")
    return ServiceMode.USER if user else ServiceMode.SYSTEM


def _config_dir(config: Path | None, mode: ServiceMode) -> Path:
    if config is not None:
        return config.expanduser().absolute()
    return config_dir(mode, platform=PLATFORM)


def _authorised(config: Path, password_stdin: bool) -> AdminDirectory:
    directory = AdminDirectory(AdminPaths(config))
    password = SecretReader(password_stdin).read("Admin password: ", "admin password")
    try:
        directory.unlock(password)
    except PermissionError as exc:
        raise ServiceError(f"cannot read the admin files in {config} ({exc.strerror}): the system service's "
                           "config belongs to root; run the command with sudo") from None
    return directory


def _manager(mode: ServiceMode) -> str:
    if PLATFORM == "win32":
        return "Windows service"
    return "systemd user unit" if mode is ServiceMode.USER else "systemd unit"


@app.command()
def install(
    user: bool = USER,
    config: Path | None = CONFIG,
    password_stdin: bool = PASSWORD_STDIN,
    exe: Path | None = typer.Option(None, "--exe", dir_okay=False,
                                    help="Linux: the installed 'risk-manager' script the unit runs (default: the "
                                         "one beside this Python, e.g. /opt/risk-manager/bin/risk-manager)."),
    data: Path | None = typer.Option(None, "--data", file_okay=False,
                                     help="Data directory (default: /var/lib/risk-manager, with --user "
                                          "~/.local/state/risk-manager, on Windows %ProgramData%\\risk-manager)."),
    start: bool = typer.Option(True, "--start/--no-start", help="Start it now (it starts at boot either way)."),
) -> None:
    """Install the service (restarts by itself, starts at boot). Stdin line: admin password."""
    with _refusals():
        mode = _mode(user)
        directory = _config_dir(config, mode)
        admin = _authorised(directory, password_stdin)
        data_dir = data.expanduser().absolute() if data is not None else None
        warnings: tuple[str, ...] = ()
        if PLATFORM == "win32":
            state = windows.install(windows.default_spec(directory, data_dir), scm=windows_scm(), start=start)
            where = f"service {windows.SERVICE_NAME!r} ({state.state})"
        else:
            result = systemd.install(mode, exe=exe.expanduser().absolute() if exe else None, config=directory,
                                     data=data_dir, start=start, host=systemd_host())
            where, warnings = str(result.unit_path), result.warnings
        admin.audit.append("service.install", f"{_manager(mode)} {where}; started={start}")
    _say(f"Installed the {_manager(mode)}: {where}" + (", started." if start else " (not started)."))
    for warning in warnings:
        err.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False, soft_wrap=True)


@app.command()
def uninstall(user: bool = USER, config: Path | None = CONFIG, password_stdin: bool = PASSWORD_STDIN) -> None:
    """Stop and remove the service; config, data and locks are kept. Stdin line: admin password."""
    with _refusals():
        mode = _mode(user)
        admin = _authorised(_config_dir(config, mode), password_stdin)
        if PLATFORM == "win32":
            windows.uninstall(scm=windows_scm())
            where = f"service {windows.SERVICE_NAME!r}"
        else:
            where = str(systemd.uninstall(mode, host=systemd_host()))
        admin.audit.append("service.uninstall", f"{_manager(mode)} {where}")
    _say(f"Removed the {_manager(mode)} ({where}); config and data are kept.")


@app.command()
def start(user: bool = USER, config: Path | None = CONFIG, password_stdin: bool = PASSWORD_STDIN) -> None:
    """Start the installed service. Stdin line: admin password."""
    with _refusals():
        mode = _mode(user)
        admin = _authorised(_config_dir(config, mode), password_stdin)
        if PLATFORM == "win32":
            windows.start(scm=windows_scm())
        else:
            systemd.start(mode, host=systemd_host())
        admin.audit.append("service.start", _manager(mode))
    _say(f"Started the {_manager(mode)}.")


@app.command()
def stop(user: bool = USER, config: Path | None = CONFIG, password_stdin: bool = PASSWORD_STDIN) -> None:
    """Stop the service: the accounts are NOT protected until it runs again. Stdin line: admin password."""
    with _refusals():
        mode = _mode(user)
        admin = _authorised(_config_dir(config, mode), password_stdin)
        if PLATFORM == "win32":
            windows.stop(scm=windows_scm())
        else:
            systemd.stop(mode, host=systemd_host())
        admin.audit.append("service.stop", _manager(mode))
    _say(f"Stopped the {_manager(mode)}: the accounts are not protected until it is started again.")


def _describe(state: ServiceStatus) -> str:
    if not state.installed:
        return "not installed"
    words = ["installed", "enabled" if state.enabled else "not enabled at boot",
             "running" if state.running else "not running"]
    extra = [state.state]
    if state.main_pid:
        extra.append(f"PID {state.main_pid}")
    if state.restarts:
        extra.append(f"{state.restarts} automatic restart(s)")
    return ", ".join(words) + f" — {'; '.join(extra)}"


@app.command()
def status(
    user: bool = USER,
    config: Path | None = CONFIG,
    health_port: int | None = typer.Option(None, "--health-port", min=1, max=65535,
                                           help="The daemon's health port (default: health.port in config.yaml, "
                                                "else 8766)."),
) -> None:
    """Installed/enabled/running, and the daemon's own health (GET /health/ready). No password needed."""
    with _refusals():
        mode = _mode(user)
        directory = _config_dir(config, mode)
    state: ServiceStatus | None = None
    try:
        state = windows.status(scm=windows_scm()) if PLATFORM == "win32" else systemd.status(mode, host=systemd_host())
    except ServiceError as exc:  # no service manager here: still say whether a daemon answers
        _say(f"{_manager(mode)}: unknown — {exc}")
    if state is not None:
        _say(f"{_manager(mode)}: {_describe(state)}")
        if state.unit_path is not None:
            _say(f"unit file: {state.unit_path}")
    running = state is not None and state.running
    host, port, note = DEFAULT_HOST, health_port, ""
    if port is None:
        try:
            health = read_health_config(directory)
        except ConfigFileError as exc:
            health, note = None, f" (config not read: {exc}; assumed port {DEFAULT_PORT})"
        if health is not None and not health.enabled:
            _say(f"health: disabled in {directory / 'config.yaml'} (health.enabled: false)")
            raise typer.Exit(0 if running else NOT_PROTECTING)
        host, port = (health.host, health.port) if health is not None else (host, DEFAULT_PORT)
    probe = probe_ready(host, port)
    _say(f"health ({probe.url}): {probe.describe()}{note}")
    if not (running and probe.ready):
        raise typer.Exit(NOT_PROTECTING)
