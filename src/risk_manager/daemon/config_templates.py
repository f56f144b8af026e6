"""`risk-manager init`: write a commented example configuration directory (files 0600, directory 0700)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from risk_manager.daemon.config_dir import ACCOUNTS_FILE, CONFIG_FILE, DEFAULT_RISK_FILE

TEMPLATE_FILES = (CONFIG_FILE, ACCOUNTS_FILE, DEFAULT_RISK_FILE)


class InitRefusedError(FileExistsError):
    """`init` would overwrite files; the message names them."""


def template_text(name: str) -> str:
    return (resources.files("risk_manager.data") / "templates" / name).read_text(encoding="utf-8")


def write_example_config(directory: Path, force: bool = False) -> list[Path]:
    """Write config.yaml, accounts.yaml and risk.yaml into `directory` (created 0700); files are 0600.
    Existing files are never overwritten unless `force`."""
    targets = [directory / name for name in TEMPLATE_FILES]
    existing = [p for p in targets if p.exists()]
    if existing and not force:
        raise InitRefusedError(f"{', '.join(map(str, existing))} already exist(s); nothing was written "
                               "(use --force to overwrite)")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    for path in targets:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(template_text(path.name))
        os.chmod(path, 0o600)
    return targets
