from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from risk_manager.service.paths import ServiceMode
from risk_manager.service.systemd import (
    CommandResult,
    ServiceError,
    ServicePermissionError,
    SystemctlError,
    SystemdHost,
    SystemdUnavailableError,
    install,
    render_unit,
    run_command,
    status,
    uninstall,
)

SYSTEM_EXE = Path("/opt/risk-manager/bin/risk-manager")
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed here")


def _directives(unit: str) -> list[str]:
    return [line for line in unit.splitlines() if line and not line.startswith(("#", "["))]


def test_system_unit_content() -> None:
    unit = render_unit(ServiceMode.SYSTEM, SYSTEM_EXE, Path("/etc/risk-manager"), Path("/var/lib/risk-manager"))
    lines = _directives(unit)
    for expected in (
        "Type=notify", "NotifyAccess=main",
        "ExecStart=/opt/risk-manager/bin/risk-manager run --config /etc/risk-manager",
        "Restart=always", "RestartSec=5", "WatchdogSec=30", "StartLimitIntervalSec=0", "User=risk-manager",
        "Group=risk-manager", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
        "ReadWritePaths=/var/lib/risk-manager", "StateDirectory=risk-manager", "StateDirectoryMode=0700",
        "ConfigurationDirectory=risk-manager", "Environment=RISK_MANAGER_DATA_DIR=/var/lib/risk-manager",
        "UMask=0077", "WantedBy=multi-user.target", "After=network-online.target",
    ):
        assert expected in lines, expected
    assert "@" not in unit.replace("risk-manager", "")  # no placeholder left
    assert len(lines) == len(set(lines))
    assert unit.index("[Unit]") < unit.index("[Service]") < unit.index("[Install]")


def test_system_unit_with_other_directories_does_not_claim_the_state_directory() -> None:
    unit = render_unit(ServiceMode.SYSTEM, SYSTEM_EXE, Path("/srv/rm/config"), Path("/srv/rm/data"))
    lines = _directives(unit)
    assert "ReadWritePaths=/srv/rm/data" in lines and "Environment=RISK_MANAGER_DATA_DIR=/srv/rm/data" in lines
    assert not [line for line in lines if line.startswith(("StateDirectory", "ConfigurationDirectory"))]
    assert "ExecStart=/opt/risk-manager/bin/risk-manager run --config /srv/rm/config" in lines


def test_user_unit_content() -> None:
    unit = render_unit(ServiceMode.USER, Path("/home/t/venv/bin/risk-manager"), Path("/home/t/.config/risk-manager"),
                       Path("/home/t/.local/state/risk-manager"))
    lines = _directives(unit)
    assert "ExecStart=/home/t/venv/bin/risk-manager run --config /home/t/.config/risk-manager" in lines
    assert "WantedBy=default.target" in lines and "Restart=always" in lines and "WatchdogSec=30" in lines
    assert "Type=notify" in lines and "NoNewPrivileges=yes" in lines
    assert not [line for line in lines if line.startswith(("User=", "Group=", "ProtectSystem", "After="))]


def test_paths_are_quoted_and_escaped_for_systemd() -> None:
    unit = render_unit(ServiceMode.USER, Path("/opt/my venv/bin/risk-manager"), Path("/c/100%"),
                       Path("/d/$HOME dir"))
    lines = _directives(unit)
    assert 'ExecStart="/opt/my venv/bin/risk-manager" run --config /c/100%%' in lines
    assert 'Environment="RISK_MANAGER_DATA_DIR=/d/$$HOME dir"' in lines
    with pytest.raises(ValueError, match="line break"):
        render_unit(ServiceMode.USER, Path("/opt/x\nExecStartPre=/bin/sh"), Path("/c"), Path("/d"))
    with pytest.raises(ValueError, match="config_dir must be an absolute path"):
        render_unit(ServiceMode.USER, Path("/opt/x"), Path("config"), Path("/d"))


def _fake_exe(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    exe = directory / "risk-manager"
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    return exe


def _verify(unit: str, tmp_path: Path, user: bool) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "risk-manager.service"
    path.write_text(unit)
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_LOG_COLOR": "0"}
    argv = [str(ANALYZE), *(["--user"] if user else []), "verify", str(path)]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)


@needs_analyze
@pytest.mark.parametrize("mode", [ServiceMode.SYSTEM, ServiceMode.USER])
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path, mode: ServiceMode) -> None:
    exe = _fake_exe(tmp_path / "with space" / "bin")  # also proves the quoting is read back as one path
    unit = render_unit(mode, exe, Path("/etc/risk-manager"), Path("/var/lib/risk-manager"))
    done = _verify(unit, tmp_path, user=mode is ServiceMode.USER)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr  # not even a warning


@needs_analyze
def test_systemd_analyze_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    unit = render_unit(ServiceMode.SYSTEM, tmp_path / "missing" / "risk-manager", Path("/etc/rm"), Path("/var/rm"))
    done = _verify(unit + "Bogus=1\n", tmp_path, user=False)
    assert done.returncode != 0 and "not executable" in done.stderr and "Bogus" in done.stderr


class Recorder:
    def __init__(self, answers: dict[str, CommandResult] | None = None) -> None:
        self.calls: list[list[str]] = []
        self.answers = answers or {}

    def __call__(self, argv: Sequence[str]) -> CommandResult:
        self.calls.append(list(argv))
        for prefix, answer in self.answers.items():
            if " ".join(argv).startswith(prefix):
                return answer
        return CommandResult(0)


def _host(tmp_path: Path, runner: Recorder, root: bool = True) -> SystemdHost:
    marker = tmp_path / "run-systemd-system"
    marker.mkdir(exist_ok=True)
    return SystemdHost(runner=runner, unit_dir=tmp_path / "units", booted_marker=marker, is_root=lambda: root,
                       env={"HOME": str(tmp_path / "home"), "USER": "trader"})


def test_system_install_creates_account_directories_and_enables(tmp_path: Path) -> None:
    runner = Recorder({"getent passwd": CommandResult(2)})
    exe = _fake_exe(tmp_path / "opt" / "bin")
    result = install(ServiceMode.SYSTEM, exe=exe, host=_host(tmp_path, runner))
    assert result.unit_path == tmp_path / "units" / "risk-manager.service" and result.started
    assert stat.S_IMODE(result.unit_path.stat().st_mode) == 0o644
    assert f"ExecStart={exe} run --config /etc/risk-manager" in result.unit_path.read_text()
    assert runner.calls == [
        ["getent", "passwd", "risk-manager"],
        ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/var/lib/risk-manager",
         "--shell", "/usr/sbin/nologin", "--comment", "risk-manager daemon", "risk-manager"],
        ["install", "-d", "-m", "0750", "-o", "root", "-g", "risk-manager", "/etc/risk-manager"],
        ["install", "-d", "-m", "0700", "-o", "risk-manager", "-g", "risk-manager", "/var/lib/risk-manager"],
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "--now", "risk-manager.service"],
    ]


def test_system_install_refusals(tmp_path: Path) -> None:
    exe = _fake_exe(tmp_path / "opt" / "bin")
    with pytest.raises(ServicePermissionError, match="sudo risk-manager service install"):
        install(ServiceMode.SYSTEM, exe=exe, host=_host(tmp_path, Recorder(), root=False))
    with pytest.raises(ServiceError, match="home directory"):
        install(ServiceMode.SYSTEM, exe=Path("/home/trader/venv/bin/risk-manager"), host=_host(tmp_path, Recorder()))
    with pytest.raises(ServiceError, match="not an executable file"):
        install(ServiceMode.SYSTEM, exe=tmp_path / "nothing", host=_host(tmp_path, Recorder()))
    no_systemd = SystemdHost(runner=Recorder(), booted_marker=tmp_path / "absent")
    with pytest.raises(SystemdUnavailableError, match=r"wsl\.conf"):
        install(ServiceMode.USER, exe=exe, host=no_systemd)
    failing = Recorder({"systemctl enable": CommandResult(1, "", "Failed to enable unit: Access denied")})
    with pytest.raises(SystemctlError, match="Access denied"):
        install(ServiceMode.SYSTEM, exe=exe, host=_host(tmp_path, failing))


def test_user_install_uses_the_user_manager_and_lingering(tmp_path: Path) -> None:
    runner = Recorder({"loginctl": CommandResult(1, "", "Access denied")})
    exe = _fake_exe(tmp_path / "venv" / "bin")
    result = install(ServiceMode.USER, exe=exe, host=_host(tmp_path, runner), start=False)
    home = tmp_path / "home"
    assert (home / ".config" / "risk-manager").is_dir() and (home / ".local" / "state" / "risk-manager").is_dir()
    assert f"--config {home}/.config/risk-manager" in result.unit_path.read_text()
    assert runner.calls == [["systemctl", "--user", "daemon-reload"],
                            ["systemctl", "--user", "enable", "risk-manager.service"],
                            ["loginctl", "enable-linger", "trader"]]
    assert not result.started and "loginctl enable-linger trader" in result.warnings[0]


def test_uninstall_keeps_data(tmp_path: Path) -> None:
    runner = Recorder()
    host = _host(tmp_path, runner)
    unit = install(ServiceMode.USER, exe=_fake_exe(tmp_path / "venv"), host=host).unit_path
    runner.calls.clear()
    assert uninstall(ServiceMode.USER, host=host) == unit and not unit.exists()
    assert (tmp_path / "home" / ".local" / "state" / "risk-manager").is_dir()
    assert runner.calls == [["systemctl", "--user", "disable", "--now", "risk-manager.service"],
                            ["systemctl", "--user", "daemon-reload"],
                            ["systemctl", "--user", "reset-failed", "risk-manager.service"]]


def test_status_reads_systemctl_show(tmp_path: Path) -> None:
    shown = ("LoadState=loaded\nActiveState=active\nSubState=running\nUnitFileState=enabled\nMainPID=4242\n"
             "NRestarts=3\nFragmentPath=/etc/systemd/system/risk-manager.service\n")
    runner = Recorder({"systemctl show": CommandResult(0, shown)})
    got = status(ServiceMode.SYSTEM, host=_host(tmp_path, runner))
    assert (got.installed, got.running, got.enabled, got.main_pid, got.restarts) == (True, True, True, 4242, 3)
    assert got.state == "active (running)" and runner.calls[0][:3] == ["systemctl", "show", "risk-manager.service"]

    missing = "LoadState=not-found\nActiveState=inactive\nSubState=dead\nUnitFileState=\nMainPID=0\nNRestarts=0\n"
    got = status(ServiceMode.USER, host=_host(tmp_path, Recorder({"systemctl --user show": CommandResult(0, missing)})))
    assert (got.installed, got.running, got.enabled, got.main_pid) == (False, False, False, None)


def test_run_command_runs_without_a_shell() -> None:
    assert run_command(["sh", "-c", "echo hi; echo err >&2; exit 3"]) == CommandResult(3, "hi\n", "err\n")
    assert run_command(["definitely-not-a-command-xyz"]).returncode == 127
