"""Where the daemon's risk file, database and log files are, seen from the admin/config directory.

The daemon's `config.yaml` (in the config directory) may name `risk_file` (default `risk.yaml`) and
`database.path` (default `state/risk.db`), both relative to the directory, and `logging.files.directory`
(default: the platform's log directory, `risk_manager.service.paths.log_dir`). Only those three keys
are read here: the rest of the file is the daemon's to validate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from risk_manager.admin.errors import DaemonFilesError
from risk_manager.security.paths import SYSTEM_CONFIG_DIR
from risk_manager.service.paths import ServiceMode, log_dir

CONFIG_FILE = "config.yaml"
DEFAULT_RISK_FILE = Path("risk.yaml")
DEFAULT_DATABASE = Path("state/risk.db")


def _read_config(path: Path) -> Mapping[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DaemonFilesError(f"{path}: cannot be read ({exc})",
                               "fix the file, or pass --rules / --database / --log-dir explicitly") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise DaemonFilesError(f"{path}: expected a mapping of settings at the top level",
                               "fix the file, or pass --rules / --database / --log-dir explicitly")
    return data


def _path_at(data: Mapping[str, Any], file: Path, *keys: str) -> Path | None:
    node: Any = data
    for key in keys:
        if not isinstance(node, Mapping) or node.get(key) is None:
            return None
        node = node[key]
    if not isinstance(node, str) or not node.strip():
        raise DaemonFilesError(f"{file}: {'.'.join(keys)}: expected a path, got {node!r}", "")
    return Path(node).expanduser()


@dataclass(frozen=True)
class DaemonFiles:
    config_dir: Path
    risk_file: Path
    database: Path
    log_dir: Path

    @classmethod
    def resolve(cls, config_dir: Path, *, rules: Path | None = None, database: Path | None = None,
                logs: Path | None = None) -> DaemonFiles:
        """Explicit paths win; then config.yaml's keys; then the defaults."""
        config_file = config_dir / CONFIG_FILE
        data = _read_config(config_file)
        risk = rules or config_dir / (_path_at(data, config_file, "risk_file") or DEFAULT_RISK_FILE)
        db = database or config_dir / (_path_at(data, config_file, "database", "path") or DEFAULT_DATABASE)
        mode = ServiceMode.SYSTEM if config_dir == SYSTEM_CONFIG_DIR else ServiceMode.USER
        log_directory = logs or _path_at(data, config_file, "logging", "files", "directory") or log_dir(mode)
        return cls(config_dir, risk, db, log_directory)
