"""`risk-manager service …` through typer's CliRunner: the admin password from stdin, a fake systemd runner
(and a fake Windows service manager), and the daemon's health from a real endpoint on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from risk_manager.cli import service_cmd
from risk_manager.cli.app import app
from risk_manager.health import ReadyState
from risk_manager.security.admin_directory import AdminDirectory
from risk_manager.security.paths import AdminPaths
from risk_manager.service.systemd import CommandResult, SystemdHost
from tests.cli.conftest import ThreadedHealth
from tests.security.conftest import ADMIN_PW
from tests.service.test_systemd import Recorder
from tests.service.test_windows import FakeScm

runner = CliRunner()
SHOWN = ("LoadState=loaded\nActiveState=active\nSubState=running\nUnitFileState=enabled\nMainPID=4242\n"
         "NRestarts=2\nFragmentPath=/home/t/.config/systemd/user/risk-manager.service\n")


class FakeSystemd:
    def __init__(self, tmp_path: Path, answers: dict[str, CommandResult] | None = None, *, root: bool = False,
                 booted: bool = True) -> None:
        self.recorder = Recorder(answers)
        marker = tmp_path / "run-systemd-system"
        if booted:
            marker.mkdir(exist_ok=True)
        self.units = tmp_path / "units"
        self.host = SystemdHost(runner=self.recorder, unit_dir=self.units, booted_marker=marker,
                                is_root=lambda: root, env={"HOME": str(tmp_path / "home"), "USER": "trader"})

    @property
    def systemctl_calls(self) -> list[list[str]]:
        return [c for c in self.recorder.calls if c[0] == "systemctl"]


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    # The group installs a stderr log handler; under CliRunner that stream is closed after each invoke.
    monkeypatch.setattr(service_cmd, "configure_logging", lambda *args, **kwargs: None)
    monkeypatch.setattr(service_cmd, "PLATFORM", "linux")


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeSystemd:
    systemd = FakeSystemd(tmp_path, {"systemctl --user show": CommandResult(0, SHOWN)})
    monkeypatch.setattr(service_cmd, "systemd_host", lambda: systemd.host)
    return systemd


def service(config: Path, stdin: str, *args: str) -> Result:
    return runner.invoke(app, ["service", *args, "--config", str(config)], input=stdin)


def exe(tmp_path: Path) -> Path:
    path = tmp_path / "venv" / "bin" / "risk-manager"
    path.parent.mkdir(parents=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def audit(config: Path) -> list[str]:
    return [entry.what for entry in AdminDirectory(AdminPaths(config)).audit.entries()]


def test_user_install_writes_the_unit_and_enables_it(tmp_path: Path, admin_dir: Path, fake: FakeSystemd) -> None:
    script = exe(tmp_path)
    result = service(admin_dir, f"{ADMIN_PW}\n", "install", "--user", "--password-stdin", "--exe", str(script))
    assert result.exit_code == 0, result.output
    unit = fake.units / "risk-manager.service"
    assert f"Installed the systemd user unit: {unit}, started." in result.stdout
    text = unit.read_text()
    assert f"ExecStart={script} run --config {admin_dir}" in text and "Restart=always" in text
    assert fake.systemctl_calls == [["systemctl", "--user", "daemon-reload"],
                                    ["systemctl", "--user", "enable", "--now", "risk-manager.service"]]
    assert audit(admin_dir)[-1] == "service.install"


def test_wrong_password_changes_nothing_and_backs_off(tmp_path: Path, admin_dir: Path, fake: FakeSystemd) -> None:
    for verb in ("install", "stop", "uninstall", "start"):
        result = service(admin_dir, "not-the-password\n", verb, "--user", "--password-stdin")
        assert result.exit_code == 3, result.output
        assert "wrong admin password" in result.stderr
    assert fake.recorder.calls == [] and not fake.units.exists()
    assert service(admin_dir, "nope\n", "stop", "--user", "--password-stdin").exit_code == 3  # the 5th
    blocked = service(admin_dir, f"{ADMIN_PW}\n", "stop", "--user", "--password-stdin")
    assert blocked.exit_code == 3 and "wait" in blocked.stderr  # even the right one waits out the back-off
    assert fake.recorder.calls == []
    assert "admin.password_failed" in audit(admin_dir)


def test_start_stop_uninstall(tmp_path: Path, admin_dir: Path, fake: FakeSystemd) -> None:
    for verb, expected in (("stop", "Stopped the systemd user unit: the accounts are not protected"),
                           ("start", "Started the systemd user unit."),
                           ("uninstall", "Removed the systemd user unit")):
        result = service(admin_dir, f"{ADMIN_PW}\n", verb, "--user", "--password-stdin")
        assert result.exit_code == 0, result.output
        assert expected in result.stdout
    assert fake.systemctl_calls == [
        ["systemctl", "--user", "stop", "risk-manager.service"],
        ["systemctl", "--user", "start", "risk-manager.service"],
        ["systemctl", "--user", "disable", "--now", "risk-manager.service"],
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "reset-failed", "risk-manager.service"],
    ]
    assert audit(admin_dir)[-3:] == ["service.stop", "service.start", "service.uninstall"]


def test_clear_refusals(tmp_path: Path, admin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    not_root = FakeSystemd(tmp_path)
    monkeypatch.setattr(service_cmd, "systemd_host", lambda: not_root.host)
    result = service(admin_dir, f"{ADMIN_PW}\n", "install", "--password-stdin", "--exe", str(exe(tmp_path)))
    assert result.exit_code == 1
    assert "needs root: run 'sudo risk-manager service install' (or use --user)" in result.stderr

    unbooted = FakeSystemd(tmp_path / "other", booted=False)
    monkeypatch.setattr(service_cmd, "systemd_host", lambda: unbooted.host)
    result = service(admin_dir, f"{ADMIN_PW}\n", "start", "--user", "--password-stdin")
    assert result.exit_code == 1
    assert "systemd is not running" in result.stderr and "add '[boot]' and 'systemd=true'" in result.stderr

    result = service(tmp_path / "fresh", f"{ADMIN_PW}\n", "start", "--user", "--password-stdin")
    assert result.exit_code == 1 and "no admin password is set" in result.stderr and "admin init" in result.stderr

    result = service(admin_dir, "", "start", "--user", "--password-stdin")
    assert result.exit_code == 1 and "stdin ended before the admin password was given" in result.stderr

    def unreadable(_self: AdminDirectory, _password: str) -> None:  # a non-root user on /etc/risk-manager
        raise PermissionError(13, "Permission denied")

    with monkeypatch.context() as patch:
        patch.setattr(AdminDirectory, "unlock", unreadable)
        result = service(admin_dir, f"{ADMIN_PW}\n", "start", "--password-stdin")
    assert result.exit_code == 1
    assert "(Permission denied): the system service's config belongs to root; run the command with sudo" in (
        result.stderr)

    monkeypatch.setattr(service_cmd, "PLATFORM", "darwin")
    result = service(admin_dir, f"{ADMIN_PW}\n", "start", "--password-stdin")
    assert result.exit_code == 1 and "Linux (systemd) and Windows, not on darwin" in result.stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_status_reports_the_unit_and_the_daemons_health(
        admin_dir: Path, fake: FakeSystemd, health_endpoint: Callable[[ReadyState], ThreadedHealth]) -> None:
    server = health_endpoint(ReadyState(True, [], {"PRAC-1": {"ready": True}}))
    (admin_dir / "config.yaml").write_text(f"health:\n  port: {server.port}\n")
    result = service(admin_dir, "", "status", "--user")  # no password asked
    assert result.exit_code == 0, result.output
    assert ("systemd user unit: installed, enabled, running — active (running); PID 4242; 2 automatic restart(s)"
            in result.stdout)
    assert f"health (http://127.0.0.1:{server.port}/health/ready): ready" in result.stdout

    server.state = ReadyState(False, ["account PRAC-1: user hub is reconnecting"], {})
    result = service(admin_dir, "", "status", "--user")
    assert result.exit_code == 4
    assert "not ready: account PRAC-1: user hub is reconnecting" in result.stdout

    port = _free_port()
    result = service(admin_dir, "", "status", "--user", "--health-port", str(port))
    assert result.exit_code == 4
    assert f"health (http://127.0.0.1:{port}/health/ready): unreachable (nothing listens there" in result.stdout

    (admin_dir / "config.yaml").write_text("health:\n  enabled: false\n")
    result = service(admin_dir, "", "status", "--user")
    assert result.exit_code == 0 and "health: disabled in" in result.stdout


def test_status_without_a_service_manager_still_asks_the_daemon(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        health_endpoint: Callable[[ReadyState], ThreadedHealth]) -> None:
    unbooted = FakeSystemd(tmp_path, booted=False)
    monkeypatch.setattr(service_cmd, "systemd_host", lambda: unbooted.host)
    server = health_endpoint(ReadyState(True, [], {}))
    result = service(tmp_path, "", "status", "--health-port", str(server.port))
    assert result.exit_code == 4  # ready, but not running as a service
    assert "systemd unit: unknown — systemd is not running" in result.stdout
    assert ": ready" in result.stdout

    (tmp_path / "config.yaml").write_text("health: {host: 0.0.0.0}\n")
    result = service(tmp_path, "", "status")
    assert "config not read:" in result.stdout and "loopback" in result.stdout and "assumed port 8766" in result.stdout


def test_windows_goes_to_the_service_control_manager(tmp_path: Path, admin_dir: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    scm = FakeScm()
    monkeypatch.setattr(service_cmd, "PLATFORM", "win32")
    monkeypatch.setattr(service_cmd, "windows_scm", lambda: scm)
    data = tmp_path / "programdata"
    result = service(admin_dir, f"{ADMIN_PW}\n", "install", "--password-stdin", "--data", str(data))
    assert result.exit_code == 0, result.output
    assert "Installed the Windows service: service 'risk-manager' (RUNNING), started." in result.stdout
    created = scm.calls[0][1]
    assert created.command[-2:] == ("--config", str(admin_dir)) and created.data_dir == data  # type: ignore[attr-defined]
    assert scm.recovery["risk-manager"].restart_delay_ms == 60_000

    result = service(admin_dir, "", "status", "--health-port", str(_free_port()))
    assert "Windows service: installed, enabled, running — RUNNING; PID 4321" in result.stdout

    result = service(admin_dir, f"{ADMIN_PW}\n", "install", "--user", "--password-stdin")
    assert result.exit_code == 1 and "--user is for Linux" in result.stderr

    scm.elevated = False
    result = service(admin_dir, f"{ADMIN_PW}\n", "stop", "--password-stdin")
    assert result.exit_code == 1 and "Run as administrator" in result.stderr
