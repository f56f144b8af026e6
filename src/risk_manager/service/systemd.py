"""Linux service: render, install and drive the systemd unit (system mode or `--user`).

Every `systemctl`/`useradd`/`install` call goes through a `SystemdHost`, whose runner, unit
directory and "is systemd running" marker are replaced in tests. The unit text comes from the
package's templates (`risk_manager/data/templates/*.service.in`).
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from risk_manager.service.paths import DATA_DIR_ENV, ServiceMode, config_dir, data_dir
from risk_manager.service.status import ServiceError, ServiceStatus

UNIT_NAME = "risk-manager.service"
SERVICE_USER = "risk-manager"
_DEFAULT_DATA = Path("/var/lib/risk-manager")
_DEFAULT_CONFIG = Path("/etc/risk-manager")
_NEEDS_QUOTES = re.compile(r"[\s\"'\\;]")
_SHOW_PROPERTIES = ("LoadState", "ActiveState", "SubState", "UnitFileState", "MainPID", "NRestarts", "FragmentPath")


class SystemdUnavailableError(ServiceError):
    def __init__(self) -> None:
        super().__init__(
            "systemd is not running on this machine, so there is no service manager to install into. "
            "On WSL: add '[boot]' and 'systemd=true' to /etc/wsl.conf, run 'wsl --shutdown' from Windows and "
            "reopen the terminal. In a container: run 'risk-manager run' under the container's supervisor.")


class ServicePermissionError(ServiceError):
    pass


class SystemctlError(ServiceError):
    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(f"'{' '.join(argv)}' failed (exit {returncode}): {stderr.strip() or 'no message'}")


@dataclass(frozen=True, slots=True)
class CommandResult:
    returncode: int
    stdout: str = ""
    stderr: str = ""


Runner = Callable[[Sequence[str]], CommandResult]


def run_command(argv: Sequence[str]) -> CommandResult:
    """Run a command without a shell; a missing program is exit 127, like a shell would say."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError:
        return CommandResult(127, "", f"{argv[0]}: command not found")
    except subprocess.TimeoutExpired:
        return CommandResult(124, "", f"{argv[0]}: no answer within 60 s")
    return CommandResult(done.returncode, done.stdout, done.stderr)


@dataclass
class SystemdHost:
    """The machine's systemd as this module sees it; tests replace the runner and the directories."""

    runner: Runner = run_command
    unit_dir: Path | None = None  # default: /etc/systemd/system or ~/.config/systemd/user
    booted_marker: Path = Path("/run/systemd/system")  # exists iff systemd is PID 1 (sd_booted)
    is_root: Callable[[], bool] = field(default=lambda: hasattr(os, "geteuid") and os.geteuid() == 0)
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)

    def units(self, mode: ServiceMode) -> Path:
        if self.unit_dir is not None:
            return self.unit_dir
        if mode is ServiceMode.SYSTEM:
            return Path("/etc/systemd/system")
        base = self.env.get("XDG_CONFIG_HOME") or str(Path(self.env.get("HOME") or Path.home()) / ".config")
        return Path(base) / "systemd" / "user"

    def run(self, argv: Sequence[str], *, check: bool = True) -> CommandResult:
        result = self.runner(argv)
        if check and result.returncode != 0:
            raise SystemctlError(argv, result.returncode, result.stderr)
        return result

    def systemctl(self, mode: ServiceMode, *args: str, check: bool = True) -> CommandResult:
        user = ["--user"] if mode is ServiceMode.USER else []
        return self.run(["systemctl", *user, *args], check=check)

    def require_systemd(self) -> None:
        if not self.booted_marker.is_dir():
            raise SystemdUnavailableError


def _quote(arg: str) -> str:
    """One argument as systemd's ExecStart=/Environment= parser reads it back."""
    if "\n" in arg or "\r" in arg:
        raise ValueError(f"a path for the unit file cannot contain a line break: {arg!r}")
    text = arg.replace("%", "%%").replace("$", "$$")
    if _NEEDS_QUOTES.search(text) or not text:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def _absolute(name: str, path: Path) -> Path:
    if not path.is_absolute():
        raise ValueError(f"{name} must be an absolute path, got {str(path)!r}")
    return path


def render_unit(mode: ServiceMode, exe: Path, config_dir: Path, data_dir: Path) -> str:
    """The unit file text for `mode`, running `<exe> run --config <config_dir>` with data in `data_dir`."""
    exe, config_dir, data_dir = (_absolute(n, p) for n, p in (("exe", exe), ("config_dir", config_dir),
                                                                ("data_dir", data_dir)))
    template = "risk-manager.service.in" if mode is ServiceMode.SYSTEM else "risk-manager-user.service.in"
    text = resources.files("risk_manager.data").joinpath("templates", template).read_text(encoding="utf-8")
    directories = []
    if mode is ServiceMode.SYSTEM:
        # systemd creates (and chowns to User=) the directories it is told about; others are made at install.
        if data_dir == _DEFAULT_DATA:
            directories += ["StateDirectory=risk-manager", "StateDirectoryMode=0700"]
        if config_dir == _DEFAULT_CONFIG:
            directories += ["ConfigurationDirectory=risk-manager", "ConfigurationDirectoryMode=0750"]
    block = "".join(line + "\n" for line in directories)
    text = text.replace("@DIRECTORIES@\n", block)
    text = text.replace("@EXEC_START@", " ".join(_quote(a) for a in (str(exe), "run", "--config", str(config_dir))))
    text = text.replace("@DATA_ENV@", _quote(f"{DATA_DIR_ENV}={data_dir}"))
    return text.replace("@DATA_DIR@", _quote(str(data_dir)))


def default_executable() -> Path:
    """The `risk-manager` script next to the running interpreter (the venv's bin), else the one on PATH."""
    beside = Path(sys.executable).with_name("risk-manager")
    if beside.exists():
        return beside
    found = shutil.which("risk-manager")
    if found:
        return Path(found)
    raise ServiceError("cannot find the 'risk-manager' command; pass the path of the installed script "
                       "(e.g. /opt/risk-manager/bin/risk-manager)")


def _check_executable(mode: ServiceMode, exe: Path) -> None:
    if mode is ServiceMode.SYSTEM and exe.resolve().parts[1:2] in (("home",), ("root",)):
        raise ServiceError(
            f"{exe} lives in a home directory: the system service cannot read it (ProtectHome=yes) and the trader "
            "could change the code it runs. Install into a system location first: "
            "'python3 -m venv /opt/risk-manager && /opt/risk-manager/bin/pip install risk-manager', then run "
            "'sudo /opt/risk-manager/bin/risk-manager service install'")
    if not (exe.is_file() and os.access(exe, os.X_OK)):
        raise ServiceError(f"{exe} is not an executable file; pass the path of the installed 'risk-manager' script")


@dataclass(frozen=True, slots=True)
class InstallResult:
    unit_path: Path
    started: bool
    warnings: tuple[str, ...] = ()


def install(mode: ServiceMode, *, exe: Path | None = None, config: Path | None = None, data: Path | None = None,
            start: bool = True, host: SystemdHost | None = None) -> InstallResult:
    """Write the unit, create the service account and directories, enable it (and start it)."""
    host = host or SystemdHost()
    host.require_systemd()
    exe = exe or default_executable()
    _check_executable(mode, exe)
    # Defaults come from the mode, not from overrides in the installing shell's environment.
    home_env = {k: v for k, v in host.env.items() if k in ("HOME", "XDG_STATE_HOME", "XDG_CONFIG_HOME")}
    config = config or config_dir(mode, env=home_env, platform="linux")
    data = data or data_dir(mode, env=home_env, platform="linux")
    warnings: list[str] = []
    if mode is ServiceMode.SYSTEM:
        if not host.is_root():
            raise ServicePermissionError("installing the system service needs root: "
                                         "run 'sudo risk-manager service install' (or use --user)")
        if host.run(["getent", "passwd", SERVICE_USER], check=False).returncode != 0:
            host.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", str(data),
                      "--shell", "/usr/sbin/nologin", "--comment", "risk-manager daemon", SERVICE_USER])
        # config: root-owned, readable by the service's group only; data: the service account's alone.
        host.run(["install", "-d", "-m", "0750", "-o", "root", "-g", SERVICE_USER, str(config)])
        host.run(["install", "-d", "-m", "0700", "-o", SERVICE_USER, "-g", SERVICE_USER, str(data)])
    else:
        for directory in (config, data):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    unit_dir = host.units(mode)
    unit_dir.mkdir(parents=True, exist_ok=True)
    unit_path = unit_dir / UNIT_NAME
    unit_path.write_text(render_unit(mode, exe, config, data), encoding="utf-8")
    unit_path.chmod(0o644)
    host.systemctl(mode, "daemon-reload")
    host.systemctl(mode, "enable", *(["--now"] if start else []), UNIT_NAME)
    if mode is ServiceMode.USER:
        user = host.env.get("USER") or getpass.getuser()
        linger = host.run(["loginctl", "enable-linger", user], check=False)
        if linger.returncode != 0:
            warnings.append(f"could not enable lingering for {user} ({linger.stderr.strip() or 'no message'}): the "
                            f"service stops when {user} logs out; ask an admin to run 'loginctl enable-linger {user}'")
    return InstallResult(unit_path, start, tuple(warnings))


def uninstall(mode: ServiceMode, *, host: SystemdHost | None = None) -> Path:
    """Stop and disable the service and remove its unit; config, data and the service account are kept."""
    host = host or SystemdHost()
    host.require_systemd()
    if mode is ServiceMode.SYSTEM and not host.is_root():
        raise ServicePermissionError("removing the system service needs root: run 'sudo risk-manager service "
                                     "uninstall'")
    host.systemctl(mode, "disable", "--now", UNIT_NAME, check=False)
    unit_path = host.units(mode) / UNIT_NAME
    unit_path.unlink(missing_ok=True)
    host.systemctl(mode, "daemon-reload")
    host.systemctl(mode, "reset-failed", UNIT_NAME, check=False)
    return unit_path


def start(mode: ServiceMode, *, host: SystemdHost | None = None) -> None:
    host = host or SystemdHost()
    host.require_systemd()
    host.systemctl(mode, "start", UNIT_NAME)


def stop(mode: ServiceMode, *, host: SystemdHost | None = None) -> None:
    host = host or SystemdHost()
    host.require_systemd()
    host.systemctl(mode, "stop", UNIT_NAME)


def status(mode: ServiceMode, *, host: SystemdHost | None = None) -> ServiceStatus:
    host = host or SystemdHost()
    host.require_systemd()
    args = ["show", UNIT_NAME, *(f"--property={name}" for name in _SHOW_PROPERTIES)]
    shown = host.systemctl(mode, *args)
    props = dict(line.split("=", 1) for line in shown.stdout.splitlines() if "=" in line)
    pid = int(props.get("MainPID", "0") or 0)
    restarts = props.get("NRestarts", "")
    return ServiceStatus(
        installed=props.get("LoadState") not in (None, "not-found"),
        running=props.get("ActiveState") == "active",
        enabled=props.get("UnitFileState") == "enabled",
        state=f"{props.get('ActiveState', 'unknown')} ({props.get('SubState', 'unknown')})",
        main_pid=pid or None,
        restarts=int(restarts) if restarts.isdigit() else None,
        unit_path=Path(props["FragmentPath"]) if props.get("FragmentPath") else None,
    )
