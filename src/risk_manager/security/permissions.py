"""Owner-only permission checks for credential, config and state files.

On POSIX a private file has no group/other bits (0600 or stricter) and a private directory no
group/other *write* bit, so nobody else can read a secret or swap a file under us. On Windows
these checks are a no-op: mode bits there say nothing about who may read a file, and access is
governed by ACLs, which the Windows service installer sets (issue 8) — not by this module.
"""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path

from risk_manager.security.errors import InsecurePermissionsError

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700

CHECKS_APPLY = os.name == "posix"


def check_private(path: Path) -> None:
    """Raise `InsecurePermissionsError` (with the `chmod 600 PATH` that fixes it) if others can access `path`."""
    if not CHECKS_APPLY:
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise InsecurePermissionsError(path, mode, f"chmod 600 {shlex.quote(str(path))}")


def check_private_dir(path: Path) -> None:
    """Raise `InsecurePermissionsError` if group or others may create, rename or delete files in `path`."""
    if not CHECKS_APPLY:
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o022:
        raise InsecurePermissionsError(path, mode, f"chmod 700 {shlex.quote(str(path))}")


def make_private(path: Path, directory: bool = False) -> None:
    """Set owner-only permissions (0700 for a directory, 0600 for a file); the umask does not apply."""
    if CHECKS_APPLY:
        path.chmod(PRIVATE_DIR_MODE if directory else PRIVATE_FILE_MODE)
