"""Windows service: the daemon under the Service Control Manager (SCM), through pywin32.

pywin32 is an optional extra (`pip install risk-manager[windows]`); importing this module never needs
it, using it without raises `Pywin32MissingError`. The service host (pythonservice.exe, running the
`RiskManagerService` class as LocalSystem) supervises `python -m risk_manager run --config <dir>` as a
child process: when the SCM asks it to stop it asks the child to stop (CTRL_BREAK, then a kill after
30 s); when the child dies on its own the host exits abnormally so the SCM's recovery actions restart
the service after 60 s, on every failure (the failure count resets after a day without failure).

Everything that talks to the SCM goes through a `ServiceControlManager`; tests inject a fake one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from risk_manager.service.paths import DATA_DIR_ENV, ServiceMode, config_dir, data_dir
from risk_manager.service.status import ServiceError, ServiceStatus

try:  # pywin32: only on Windows, only with the [windows] extra
    import servicemanager
    import win32service
    import win32serviceutil

    PYWIN32 = True
except ImportError:
    PYWIN32 = False

SERVICE_NAME = "risk-manager"
DISPLAY_NAME = "risk-manager (TopstepX risk protection)"
DESCRIPTION = "Enforces trading risk rules on TopstepX accounts 24/7. Stopping it needs the admin password."
SERVICE_CLASS = "risk_manager.service.windows.RiskManagerService"
STOP_GRACE_SECONDS = 30.0
SID_LOCAL_SYSTEM = "S-1-5-18"
SID_ADMINISTRATORS = "S-1-5-32-544"


class Pywin32MissingError(ServiceError):
    def __init__(self) -> None:
        super().__init__("pywin32 is not installed: pip install risk-manager[windows]")


class ElevationRequiredError(ServiceError):
    def __init__(self, action: str) -> None:
        super().__init__(f"{action} the Windows service needs administrator rights: open a terminal with "
                         "'Run as administrator' and run the command again")


@dataclass(frozen=True, slots=True)
class RecoveryPolicy:
    """SCM failure actions: restart after `restart_delay_ms` on each failure; count resets after `reset_seconds`."""

    restart_delay_ms: int = 60_000
    reset_seconds: int = 86_400
    # The SCM applies the last action to every failure after the third, so three restarts cover all of them.
    actions: int = 3
    on_non_crash_failures: bool = True  # a stop with a non-zero exit code also counts as a failure


@dataclass(frozen=True, slots=True)
class WindowsServiceSpec:
    command: tuple[str, ...]  # what the service host runs and supervises
    data_dir: Path
    name: str = SERVICE_NAME
    display_name: str = DISPLAY_NAME
    description: str = DESCRIPTION
    auto_start: bool = True
    account: str | None = None  # None: LocalSystem
    recovery: RecoveryPolicy = RecoveryPolicy()


@dataclass(frozen=True, slots=True)
class ScmState:
    state: str  # "RUNNING", "STOPPED", "START_PENDING"...
    auto_start: bool
    pid: int | None = None


class ServiceControlManager(Protocol):
    def is_elevated(self) -> bool: ...
    def query(self, name: str) -> ScmState | None: ...  # None: not installed
    def create(self, spec: WindowsServiceSpec) -> None: ...
    def update(self, spec: WindowsServiceSpec) -> None: ...
    def set_recovery(self, name: str, policy: RecoveryPolicy) -> None: ...
    def set_options(self, name: str, options: Mapping[str, str]) -> None: ...
    def restrict_directory(self, path: Path) -> None: ...  # SYSTEM and Administrators only
    def start(self, name: str) -> None: ...
    def stop(self, name: str) -> None: ...
    def delete(self, name: str) -> None: ...


def require_pywin32() -> None:
    if not PYWIN32:
        raise Pywin32MissingError


_STATE_NAMES = {1: "STOPPED", 2: "START_PENDING", 3: "STOP_PENDING", 4: "RUNNING", 5: "CONTINUE_PENDING",
                6: "PAUSE_PENDING", 7: "PAUSED"}


class Pywin32ControlManager:
    """The real SCM, through pywin32 (Windows only)."""

    def __init__(self) -> None:
        require_pywin32()

    def is_elevated(self) -> bool:
        if sys.platform == "win32":
            import ctypes

            return bool(ctypes.windll.shell32.IsUserAnAdmin())
        return False

    def query(self, name: str) -> ScmState | None:
        scm = win32service.OpenSCManager(None, None, win32service.SC_MANAGER_CONNECT)
        try:
            try:
                handle = win32service.OpenService(scm, name, win32service.SERVICE_QUERY_STATUS
                                                  | win32service.SERVICE_QUERY_CONFIG)
            except win32service.error:
                return None
            try:
                status = win32service.QueryServiceStatusEx(handle)  # a dict: CurrentState, ProcessId...
                config = win32service.QueryServiceConfig(handle)  # a tuple: (type, start type, ...)
            finally:
                win32service.CloseServiceHandle(handle)
        finally:
            win32service.CloseServiceHandle(scm)
        return ScmState(_STATE_NAMES.get(status["CurrentState"], str(status["CurrentState"])),
                        config[1] == win32service.SERVICE_AUTO_START, status.get("ProcessId") or None)

    def _install_args(self, spec: WindowsServiceSpec) -> dict[str, Any]:
        return {"startType": win32service.SERVICE_AUTO_START if spec.auto_start else win32service.SERVICE_DEMAND_START,
                "userName": spec.account, "description": spec.description}

    def create(self, spec: WindowsServiceSpec) -> None:
        win32serviceutil.InstallService(SERVICE_CLASS, spec.name, spec.display_name, **self._install_args(spec))

    def update(self, spec: WindowsServiceSpec) -> None:
        win32serviceutil.ChangeServiceConfig(SERVICE_CLASS, spec.name, displayName=spec.display_name,
                                             **self._install_args(spec))

    def set_recovery(self, name: str, policy: RecoveryPolicy) -> None:
        scm = win32service.OpenSCManager(None, None, win32service.SC_MANAGER_ALL_ACCESS)
        try:
            handle = win32service.OpenService(scm, name, win32service.SERVICE_ALL_ACCESS)
            try:
                actions = [(win32service.SC_ACTION_RESTART, policy.restart_delay_ms)] * policy.actions
                win32service.ChangeServiceConfig2(handle, win32service.SERVICE_CONFIG_FAILURE_ACTIONS, {
                    "ResetPeriod": policy.reset_seconds, "RebootMsg": None, "Command": None, "Actions": actions})
                win32service.ChangeServiceConfig2(handle, win32service.SERVICE_CONFIG_FAILURE_ACTIONS_FLAG,
                                                  policy.on_non_crash_failures)
            finally:
                win32service.CloseServiceHandle(handle)
        finally:
            win32service.CloseServiceHandle(scm)

    def set_options(self, name: str, options: Mapping[str, str]) -> None:
        for key, value in options.items():
            win32serviceutil.SetServiceCustomOption(name, key, value)

    def restrict_directory(self, path: Path) -> None:
        # Well-known SIDs (names are translated on non-English Windows): LocalSystem, Administrators.
        argv = ["icacls", str(path), "/inheritance:r", "/grant:r", f"*{SID_LOCAL_SYSTEM}:(OI)(CI)F",
                f"*{SID_ADMINISTRATORS}:(OI)(CI)F"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise ServiceError(f"could not restrict {path} to SYSTEM and Administrators: "
                               f"{(done.stderr or done.stdout).strip()}")

    def start(self, name: str) -> None:
        win32serviceutil.StartService(name)

    def stop(self, name: str) -> None:
        win32serviceutil.StopService(name)

    def delete(self, name: str) -> None:
        win32serviceutil.RemoveService(name)


def default_spec(config: Path | None = None, data: Path | None = None) -> WindowsServiceSpec:
    """The service as installed by default: LocalSystem, automatic start, data under %ProgramData%."""
    config = config or config_dir(ServiceMode.SYSTEM, platform="win32")
    data = data or data_dir(ServiceMode.SYSTEM, env={k: v for k, v in os.environ.items() if k != DATA_DIR_ENV},
                            platform="win32")
    return WindowsServiceSpec(command=(sys.executable, "-m", "risk_manager", "run", "--config", str(config)),
                              data_dir=data)


def _scm(scm: ServiceControlManager | None) -> ServiceControlManager:
    return scm if scm is not None else Pywin32ControlManager()


def install(spec: WindowsServiceSpec | None = None, *, scm: ServiceControlManager | None = None,
            start: bool = True) -> ServiceStatus:
    """Create (or reconfigure) the service with its recovery actions; needs an elevated terminal."""
    manager = _scm(scm)
    spec = spec or default_spec()
    if not manager.is_elevated():
        raise ElevationRequiredError("installing")
    if manager.query(spec.name) is None:
        manager.create(spec)
    else:
        manager.update(spec)
    manager.set_recovery(spec.name, spec.recovery)
    manager.set_options(spec.name, {"command": json.dumps(list(spec.command)), "data_dir": str(spec.data_dir)})
    spec.data_dir.mkdir(parents=True, exist_ok=True)
    # Like /var/lib/risk-manager on Linux: the trader can neither read nor change config, locks or state.
    manager.restrict_directory(spec.data_dir)
    if start:
        manager.start(spec.name)
    return status(spec.name, scm=manager)


def uninstall(name: str = SERVICE_NAME, *, scm: ServiceControlManager | None = None) -> None:
    """Stop and delete the service; the data directory is kept."""
    manager = _scm(scm)
    if not manager.is_elevated():
        raise ElevationRequiredError("removing")
    state = manager.query(name)
    if state is None:
        return
    if state.state != "STOPPED":
        manager.stop(name)
    manager.delete(name)


def start(name: str = SERVICE_NAME, *, scm: ServiceControlManager | None = None) -> None:
    manager = _scm(scm)
    if not manager.is_elevated():
        raise ElevationRequiredError("starting")
    manager.start(name)


def stop(name: str = SERVICE_NAME, *, scm: ServiceControlManager | None = None) -> None:
    manager = _scm(scm)
    if not manager.is_elevated():
        raise ElevationRequiredError("stopping")
    manager.stop(name)


def status(name: str = SERVICE_NAME, *, scm: ServiceControlManager | None = None) -> ServiceStatus:
    state = _scm(scm).query(name)
    if state is None:
        return ServiceStatus(installed=False, running=False, enabled=False, state="not installed")
    return ServiceStatus(installed=True, running=state.state == "RUNNING", enabled=state.auto_start,
                         state=state.state, main_pid=state.pid)


def _ask_to_stop(child: subprocess.Popen[bytes]) -> None:
    if sys.platform == "win32":
        child.send_signal(signal.CTRL_BREAK_EVENT)  # the child runs in its own process group
    else:
        child.terminate()


def supervise(argv: Sequence[str], env: Mapping[str, str], stop_requested: threading.Event, *,
              grace: float = STOP_GRACE_SECONDS, poll: float = 0.5) -> int:
    """Run the daemon until it exits (its exit code) or `stop_requested` is set (stop it, then 0)."""
    flags = 0
    if sys.platform == "win32":
        flags = subprocess.CREATE_NEW_PROCESS_GROUP  # so CTRL_BREAK reaches the child alone
    child = subprocess.Popen(list(argv), env=dict(env), creationflags=flags)
    while True:
        code = child.poll()
        if code is not None:
            return code
        if stop_requested.wait(poll):
            _ask_to_stop(child)
            try:
                child.wait(grace)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            return 0


def _build_service_class() -> type:
    require_pywin32()

    class RiskManagerService(win32serviceutil.ServiceFramework):  # type: ignore[misc]
        _svc_name_ = SERVICE_NAME
        _svc_display_name_ = DISPLAY_NAME
        _svc_description_ = DESCRIPTION

        def __init__(self, args: Any) -> None:
            super().__init__(args)
            self.stop_requested = threading.Event()

        def SvcStop(self) -> None:  # pywin32's method names
            self.ReportServiceStatus(win32service.SERVICE_STOP_PENDING)
            self.stop_requested.set()

        def SvcDoRun(self) -> None:
            command = json.loads(win32serviceutil.GetServiceCustomOption(SERVICE_NAME, "command"))
            data = win32serviceutil.GetServiceCustomOption(SERVICE_NAME, "data_dir")
            servicemanager.LogInfoMsg(f"{SERVICE_NAME}: starting {' '.join(command)}")
            code = supervise(command, {**os.environ, DATA_DIR_ENV: data}, self.stop_requested)
            if not self.stop_requested.is_set():
                servicemanager.LogErrorMsg(f"{SERVICE_NAME}: the daemon exited with code {code}; "
                                           "the service manager restarts it in 60 s")
                os._exit(code or 1)  # an abnormal end is what makes the SCM run its recovery actions

    return RiskManagerService


def __getattr__(name: str) -> Any:
    """`RiskManagerService` is built on first use, so importing this module never needs pywin32."""
    if name == "RiskManagerService":
        return _build_service_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
