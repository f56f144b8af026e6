"""Where the daemon keeps its data, config and logs, per platform and per mode (system service or user).

| | system service | user |
| --- | --- | --- |
| Linux data | /var/lib/risk-manager | $XDG_STATE_HOME/risk-manager (~/.local/state/risk-manager) |
| Linux config | /etc/risk-manager | $XDG_CONFIG_HOME/risk-manager (~/.config/risk-manager) |
| Windows data | %ProgramData%\\risk-manager | %LOCALAPPDATA%\\risk-manager |
| Windows config | %ProgramData%\\risk-manager\\config | %LOCALAPPDATA%\\risk-manager\\config |

`RISK_MANAGER_DATA_DIR` overrides the data dir (the generated units set it explicitly); systemd's
`$STATE_DIRECTORY` (set by `StateDirectory=`) comes next.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path, PureWindowsPath

APP = "risk-manager"
DATA_DIR_ENV = "RISK_MANAGER_DATA_DIR"


class ServiceMode(StrEnum):
    SYSTEM = "system"  # a system service under its own account (root/admin installs it)
    USER = "user"  # the current user's service manager (systemd --user); no root needed


def _is_windows(platform: str | None) -> bool:
    return (platform or sys.platform) == "win32"


def _home(env: Mapping[str, str]) -> Path:
    return Path(env.get("HOME") or Path.home())


def data_dir(mode: ServiceMode, *, env: Mapping[str, str] | None = None, platform: str | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get(DATA_DIR_ENV):
        return Path(env[DATA_DIR_ENV])
    if env.get("STATE_DIRECTORY"):  # systemd: may list several, separated by ':'
        return Path(env["STATE_DIRECTORY"].split(":")[0])
    if _is_windows(platform):
        if mode is ServiceMode.SYSTEM:
            return Path(str(PureWindowsPath(env.get("ProgramData", r"C:\ProgramData"), APP)))
        return Path(str(PureWindowsPath(env.get("LOCALAPPDATA", str(_home(env) / "AppData" / "Local")), APP)))
    if mode is ServiceMode.SYSTEM:
        return Path("/var/lib") / APP
    return Path(env.get("XDG_STATE_HOME") or _home(env) / ".local" / "state") / APP


def config_dir(mode: ServiceMode, *, env: Mapping[str, str] | None = None, platform: str | None = None) -> Path:
    env = os.environ if env is None else env
    if _is_windows(platform):
        return data_dir(mode, env={k: v for k, v in env.items() if k != DATA_DIR_ENV}, platform=platform) / "config"
    if mode is ServiceMode.SYSTEM:
        return Path("/etc") / APP
    return Path(env.get("XDG_CONFIG_HOME") or _home(env) / ".config") / APP


def log_dir(mode: ServiceMode, *, env: Mapping[str, str] | None = None, platform: str | None = None) -> Path:
    return data_dir(mode, env=env, platform=platform) / "logs"
