from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

from risk_manager.service import windows
from risk_manager.service.windows import (
    ElevationRequiredError,
    RecoveryPolicy,
    ScmState,
    WindowsServiceSpec,
    default_spec,
    install,
    status,
    supervise,
    uninstall,
)


class FakeScm:
    """An in-memory Service Control Manager recording what was asked of it."""

    def __init__(self, elevated: bool = True) -> None:
        self.elevated = elevated
        self.services: dict[str, ScmState] = {}
        self.calls: list[tuple[str, object]] = []
        self.recovery: dict[str, RecoveryPolicy] = {}
        self.options: dict[str, dict[str, str]] = {}

    def is_elevated(self) -> bool:
        return self.elevated

    def query(self, name: str) -> ScmState | None:
        return self.services.get(name)

    def create(self, spec: WindowsServiceSpec) -> None:
        self.calls.append(("create", spec))
        self.services[spec.name] = ScmState("STOPPED", spec.auto_start)

    def update(self, spec: WindowsServiceSpec) -> None:
        self.calls.append(("update", spec))

    def set_recovery(self, name: str, policy: RecoveryPolicy) -> None:
        self.recovery[name] = policy

    def set_options(self, name: str, options: Mapping[str, str]) -> None:
        self.options[name] = dict(options)

    def restrict_directory(self, path: Path) -> None:
        self.calls.append(("restrict", path))

    def start(self, name: str) -> None:
        self.calls.append(("start", name))
        self.services[name] = ScmState("RUNNING", self.services[name].auto_start, 4321)

    def stop(self, name: str) -> None:
        self.calls.append(("stop", name))
        self.services[name] = ScmState("STOPPED", self.services[name].auto_start)

    def delete(self, name: str) -> None:
        self.calls.append(("delete", name))
        del self.services[name]


def _spec(tmp_path: Path) -> WindowsServiceSpec:
    return WindowsServiceSpec(command=("C:\\rm\\Scripts\\python.exe", "-m", "risk_manager", "run", "--config",
                                       "C:\\ProgramData\\risk-manager\\config"), data_dir=tmp_path / "data")


def test_importing_never_needs_pywin32_and_using_it_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("win32service", "win32serviceutil", "servicemanager"):
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed, whatever this machine has
    spec = importlib.util.spec_from_file_location("windows_without_pywin32", windows.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)  # a fresh import of the module: it works
    assert module.PYWIN32 is False
    missing = module.Pywin32MissingError
    with pytest.raises(missing, match=r"pywin32 is not installed: pip install risk-manager\[windows\]"):
        module.RiskManagerService  # noqa: B018 - the attribute access is what raises
    with pytest.raises(module.Pywin32MissingError):
        module.install(module.default_spec())
    with pytest.raises(module.Pywin32MissingError):
        module.status()
    with pytest.raises(AttributeError):
        module.NoSuchThing  # noqa: B018


def test_install_auto_start_local_system_with_recovery(tmp_path: Path) -> None:
    scm = FakeScm()
    spec = _spec(tmp_path)
    got = install(spec, scm=scm)
    [(_verb, created)] = [c for c in scm.calls if c[0] == "create"]
    assert isinstance(created, WindowsServiceSpec)
    assert created.auto_start and created.account is None and created.name == "risk-manager"
    policy = scm.recovery["risk-manager"]
    assert (policy.restart_delay_ms, policy.reset_seconds, policy.actions, policy.on_non_crash_failures) == (
        60_000, 86_400, 3, True)
    assert json.loads(scm.options["risk-manager"]["command"])[-2:] == ["--config",
                                                                         "C:\\ProgramData\\risk-manager\\config"]
    assert scm.options["risk-manager"]["data_dir"] == str(tmp_path / "data") and (tmp_path / "data").is_dir()
    assert ("restrict", tmp_path / "data") in scm.calls
    assert got.installed and got.running and got.enabled and got.main_pid == 4321


def test_reinstall_updates_instead_of_failing(tmp_path: Path) -> None:
    scm = FakeScm()
    install(_spec(tmp_path), scm=scm, start=False)
    install(_spec(tmp_path), scm=scm, start=False)
    assert [c[0] for c in scm.calls] == ["create", "restrict", "update", "restrict"]


def test_everything_that_changes_the_service_needs_elevation(tmp_path: Path) -> None:
    scm = FakeScm(elevated=False)
    with pytest.raises(ElevationRequiredError, match="Run as administrator"):
        install(_spec(tmp_path), scm=scm)
    for action in (uninstall, windows.start, windows.stop):
        with pytest.raises(ElevationRequiredError):
            action(scm=scm)
    assert scm.calls == []
    assert status(scm=scm).state == "not installed"  # reading the status does not


def test_uninstall_stops_then_deletes(tmp_path: Path) -> None:
    scm = FakeScm()
    install(_spec(tmp_path), scm=scm)
    uninstall(scm=scm)
    assert [c[0] for c in scm.calls] == ["create", "restrict", "start", "stop", "delete"]
    assert not status(scm=scm).installed
    uninstall(scm=scm)  # already gone: nothing to do


def test_default_spec_runs_the_daemon_from_this_interpreter() -> None:
    spec = default_spec(Path("/cfg"), Path("/data"))
    assert spec.command == (sys.executable, "-m", "risk_manager", "run", "--config", "/cfg")
    assert spec.auto_start and spec.account is None


def test_supervise_returns_the_exit_code_of_a_dying_daemon() -> None:
    code = supervise([sys.executable, "-c", "import sys; sys.exit(3)"], {}, threading.Event(), poll=0.01)
    assert code == 3


def test_supervise_passes_the_environment() -> None:
    script = "import os, sys; sys.exit(0 if os.environ.get('RISK_MANAGER_DATA_DIR') == 'X' else 9)"
    assert supervise([sys.executable, "-c", script], {"RISK_MANAGER_DATA_DIR": "X"}, threading.Event(),
                     poll=0.01) == 0


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals in this test")
def test_supervise_stops_the_daemon_when_asked_and_kills_it_after_the_grace() -> None:
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    assert supervise([sys.executable, "-c", "import time; time.sleep(30)"], {}, stop, poll=0.02) == 0
    assert time.monotonic() - started < 5

    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); " \
               "time.sleep(30)"
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    assert supervise([sys.executable, "-c", stubborn], {}, stop, grace=0.3, poll=0.02) == 0
    assert time.monotonic() - started < 5
