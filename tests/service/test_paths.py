from __future__ import annotations

from pathlib import Path

from risk_manager.service.paths import ServiceMode, config_dir, data_dir, log_dir


def test_linux_defaults() -> None:
    env = {"HOME": "/home/trader"}
    assert data_dir(ServiceMode.SYSTEM, env=env, platform="linux") == Path("/var/lib/risk-manager")
    assert config_dir(ServiceMode.SYSTEM, env=env, platform="linux") == Path("/etc/risk-manager")
    assert data_dir(ServiceMode.USER, env=env, platform="linux") == Path("/home/trader/.local/state/risk-manager")
    assert config_dir(ServiceMode.USER, env=env, platform="linux") == Path("/home/trader/.config/risk-manager")
    assert log_dir(ServiceMode.USER, env={**env, "XDG_STATE_HOME": "/x"}, platform="linux") == Path(
        "/x/risk-manager/logs")


def test_overrides_win() -> None:
    assert data_dir(ServiceMode.SYSTEM, env={"STATE_DIRECTORY": "/var/lib/rm:/other"}) == Path("/var/lib/rm")
    assert data_dir(ServiceMode.USER, env={"STATE_DIRECTORY": "/s", "RISK_MANAGER_DATA_DIR": "/d"}) == Path("/d")


def test_windows_defaults() -> None:
    env = {"ProgramData": r"C:\ProgramData", "LOCALAPPDATA": r"C:\Users\t\AppData\Local"}
    assert str(data_dir(ServiceMode.SYSTEM, env=env, platform="win32")) == r"C:\ProgramData\risk-manager"
    assert str(data_dir(ServiceMode.USER, env=env, platform="win32")) == r"C:\Users\t\AppData\Local\risk-manager"
