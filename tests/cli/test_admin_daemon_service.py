"""`admin daemon start|stop|restart|status` when a systemd unit runs this config directory: through systemctl
(a fake runner, as in test_service_cmd); a unit for another directory is left alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from risk_manager.cli import admin_cmd, service_cmd
from risk_manager.cli.app import app
from risk_manager.service.systemd import CommandResult
from tests.cli.test_service_cmd import FakeSystemd
from tests.security.conftest import ADMIN_PW

runner = CliRunner()


@pytest.fixture(autouse=True)
def _linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admin_cmd, "configure_logging", lambda *args, **kwargs: None)
    monkeypatch.setattr(service_cmd, "PLATFORM", "linux")


def _installed_for(tmp_path: Path, config: Path, monkeypatch: pytest.MonkeyPatch) -> FakeSystemd:
    unit = tmp_path / "units" / "risk-manager.service"
    unit.parent.mkdir(parents=True, exist_ok=True)
    unit.write_text(f"[Service]\nExecStart=/opt/risk-manager/bin/risk-manager run --config {config}\n")
    shown = ("LoadState=loaded\nActiveState=active\nSubState=running\nUnitFileState=enabled\nMainPID=4242\n"
             f"NRestarts=0\nFragmentPath={unit}\n")
    fake = FakeSystemd(tmp_path, {"systemctl show": CommandResult(0, "LoadState=not-found\n"),
                                  "systemctl --user show": CommandResult(0, shown)})
    monkeypatch.setattr(service_cmd, "systemd_host", lambda: fake.host)
    return fake


def daemon(config: Path, *args: str, password: bool = True) -> Result:
    extra = ["--password-stdin"] if password else []
    return runner.invoke(app, ["admin", "daemon", *args, "--config", str(config), *extra], input=f"{ADMIN_PW}\n")


def test_an_installed_user_service_is_driven_through_systemd(tmp_path: Path, admin_dir: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _installed_for(tmp_path, admin_dir, monkeypatch)
    for verb, said in (("start", "started the user service"), ("stop", "stopped the user service"),
                       ("restart", "restarted the user service")):
        result = daemon(admin_dir, verb)
        assert result.exit_code == 0, result.output
        assert said in result.output
        assert ["systemctl", "--user", verb, "risk-manager.service"] in fake.systemctl_calls
    shown = daemon(admin_dir, "status", password=False)
    assert "user service: active (running), PID 4242" in shown.output
    assert shown.exit_code == 4   # the unit runs, but no daemon status file: not protecting (yet)


def test_a_unit_for_another_directory_is_left_alone(tmp_path: Path, admin_dir: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _installed_for(tmp_path, Path(f"{admin_dir}-2"), monkeypatch)   # a prefix is not the same directory
    result = daemon(admin_dir, "stop")
    assert result.exit_code == 0 and "Daemon: not running" in result.output
    assert not [c for c in fake.systemctl_calls if "stop" in c]
