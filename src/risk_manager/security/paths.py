"""Where the admin files live, and how they are written (owner-only, atomically).

The directory is, in order: `--config DIR`, the environment variable `RISK_MANAGER_CONFIG_DIR`,
`/etc/risk-manager` when it exists and we run as root (a system service), else the per-user config
directory of the platform (`~/.config/risk-manager` on Linux, `~/Library/Application Support/
risk-manager` on macOS, `%APPDATA%\\risk-manager` on Windows). It is created 0700, its files 0600.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from risk_manager.logs import log_event
from risk_manager.security.errors import ConfigDirError
from risk_manager.security.permissions import (
    PRIVATE_DIR_MODE,
    PRIVATE_FILE_MODE,
    check_private,
    check_private_dir,
    make_private,
)

logger = logging.getLogger("risk_manager.security")

CONFIG_DIR_ENV = "RISK_MANAGER_CONFIG_DIR"
SYSTEM_CONFIG_DIR = Path("/etc/risk-manager")
APP_NAME = "risk-manager"


def _is_root() -> bool:
    geteuid = getattr(os, "geteuid", None)
    return geteuid is not None and geteuid() == 0


def resolve_config_dir(explicit: Path | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The admin/config directory (not created): `explicit`, then the env variable, then the defaults."""
    env = os.environ if environ is None else environ
    if explicit is not None:
        return explicit.expanduser().absolute()
    if env.get(CONFIG_DIR_ENV):
        return Path(env[CONFIG_DIR_ENV]).expanduser().absolute()
    if SYSTEM_CONFIG_DIR.is_dir() and _is_root():
        return SYSTEM_CONFIG_DIR
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False, roaming=True))


def ensure_private_dir(directory: Path) -> Path:
    """Create `directory` (and missing parents) 0700; refuse an existing one others can write into."""
    if directory.exists():
        if not directory.is_dir():
            raise ConfigDirError(f"{directory} exists but is not a directory",
                                 "pass --config with a directory path, or move the file away")
        check_private_dir(directory)
        return directory
    missing = [directory, *(p for p in directory.parents if not p.exists())]
    for path in reversed(missing):
        try:
            path.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)
            make_private(path, directory=True)  # mkdir's mode is filtered by the umask
        except OSError as exc:
            raise ConfigDirError(f"cannot create directory {path} ({exc.strerror})",
                                 "pass --config with a directory this user can write, or create it") from exc
        log_event(logger, "config_dir_created", directory=path, mode=oct(PRIVATE_DIR_MODE))
    return directory


def write_private_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data`: a 0600 temp file beside it, fsynced, then renamed over it.

    A crash or a full disk leaves either the old file or the new one, never a mix; on error the
    temp file is removed and the old file is untouched.
    """
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), PRIVATE_FILE_MODE)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        make_private(temp)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def append_private(path: Path, data: bytes) -> None:
    """Append `data` to `path` (created 0600), fsynced before returning."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0), PRIVATE_FILE_MODE)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":
        return  # directories cannot be opened for fsync on Windows; the rename is durable there
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class AdminPaths:
    """The files of one admin/config directory."""

    directory: Path

    @property
    def admin_file(self) -> Path:
        """The admin password hash (argon2id encoded, parameters included)."""
        return self.directory / "admin.json"

    @property
    def attempts_file(self) -> Path:
        """Failed-password counter and back-off deadline, shared by every process."""
        return self.directory / "admin-attempts.json"

    @property
    def attempts_lock(self) -> Path:
        return self.directory / "admin-attempts.lock"

    @property
    def vault_file(self) -> Path:
        """Encrypted ProjectX credentials."""
        return self.directory / "credentials.vault"

    @property
    def audit_file(self) -> Path:
        """Append-only JSON-lines log of admin actions."""
        return self.directory / "admin-audit.jsonl"

    @classmethod
    def resolve(cls, explicit: Path | None = None, environ: Mapping[str, str] | None = None) -> AdminPaths:
        return cls(resolve_config_dir(explicit, environ))

    def ensure(self) -> AdminPaths:
        """Create the directory 0700 if needed and check every existing admin file is 0600."""
        ensure_private_dir(self.directory)
        self.check()
        return self

    def check(self) -> None:
        """`InsecurePermissionsError` if the directory or any existing admin file is open to others."""
        if self.directory.exists():
            check_private_dir(self.directory)
        for path in (self.admin_file, self.attempts_file, self.vault_file, self.audit_file):
            if path.exists():
                check_private(path)


__all__ = ["CONFIG_DIR_ENV", "PRIVATE_FILE_MODE", "AdminPaths", "append_private", "ensure_private_dir",
           "resolve_config_dir", "write_private_atomic"]
