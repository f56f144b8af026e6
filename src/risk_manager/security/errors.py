"""Typed errors of the security layer. Each message says what is wrong and what to do next.

No message ever contains a password, an API key or a vault key.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path


class SecurityError(Exception):
    """Base class of every error raised by `risk_manager.security`."""

    def __init__(self, problem: str, remedy: str) -> None:
        self.problem = problem
        self.remedy = remedy
        super().__init__(f"{problem}; {remedy}" if remedy else problem)


class InsecurePermissionsError(SecurityError):
    """A credential/config file or directory can be read or written by other users."""

    def __init__(self, path: Path, mode: int, fix: str) -> None:
        self.path = path
        self.mode = mode
        self.fix = fix
        kind = "directory" if path.is_dir() else "file"
        super().__init__(
            f"{kind} {path} has mode {mode:04o}: other users can access it",
            f"make it private to this user with `{fix}`",
        )


class ConfigDirError(SecurityError):
    """The admin/config directory cannot be created or used."""


class AdminNotInitialisedError(SecurityError):
    def __init__(self, config_dir: Path) -> None:
        self.config_dir = config_dir
        super().__init__(f"no admin password is set in {config_dir}",
                         "run `risk-manager admin init` first (with the same --config directory)")


class AdminAlreadyInitialisedError(SecurityError):
    def __init__(self, config_dir: Path) -> None:
        self.config_dir = config_dir
        super().__init__(
            f"an admin password is already set in {config_dir}",
            "use `risk-manager admin change-password`, or `admin init --force` (asks for the current password); "
            "if the password is forgotten, `admin init --wipe` starts over and deletes the stored credentials",
        )


class PasswordInputError(SecurityError):
    """No password could be read, or a new password does not meet the policy."""


class WrongPasswordError(SecurityError):
    def __init__(self, failures: int, remaining: int) -> None:
        self.failures = failures
        self.remaining = remaining
        super().__init__(
            "wrong admin password",
            f"{remaining} more wrong attempt(s) before a 5-minute wait" if remaining > 0
            else f"that was {failures} in a row: attempts are refused for the next 5 minutes",
        )


class PasswordBackoffError(SecurityError):
    """Too many wrong passwords: no attempt is even checked until `until`."""

    def __init__(self, until: datetime, seconds_left: float) -> None:
        self.until = until
        self.seconds_left = seconds_left
        super().__init__(
            f"too many wrong admin passwords; attempts are refused until {until.strftime('%H:%M:%S')} UTC",
            f"wait {max(1, round(seconds_left))} s and try again",
        )


class VaultError(SecurityError):
    """Base class of credential-vault errors; `path` is the vault file."""

    def __init__(self, path: Path, problem: str, remedy: str) -> None:
        self.path = path
        super().__init__(f"credential vault {path}: {problem}", remedy)


class VaultKeyError(VaultError):
    """The key does not open the vault (wrong password, changed keyring entry). The file is untouched."""


class VaultCorruptError(VaultError):
    """The vault file is not a vault, or an entry fails its integrity check. The file is untouched."""


class VaultEntryError(VaultError):
    """An account entry is missing, already there, or has an invalid name."""


class KeyringUnavailableError(SecurityError):
    """The OS keyring was asked for but cannot be used."""


class GatewayCheckError(SecurityError):
    """`admin accounts test` could not log in or list accounts."""
