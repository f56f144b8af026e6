"""Typed errors of the risk engine, each with a message a trader or admin can act on."""

from __future__ import annotations

from collections.abc import Sequence


class EngineError(Exception):
    """Base class of every error raised by `risk_manager.engine`."""


class ConfigError(EngineError, ValueError):
    """A risk config is invalid. Names the file, the key path and what is allowed.

    `problems` holds every (key_path, message) found; the first one is also `key_path`/`message`.
    """

    def __init__(self, file: str, key_path: str, message: str,
                 problems: Sequence[tuple[str, str]] | None = None) -> None:
        self.file = file
        self.key_path = key_path
        self.message = message
        self.problems: list[tuple[str, str]] = list(problems) if problems else [(key_path, message)]
        super().__init__(self._render())

    def _render(self) -> str:
        where = self.file or "risk config"
        if len(self.problems) == 1:
            path, message = self.problems[0]
            return f"{where}: {path or '(top level)'}: {message}"
        lines = [f"{where}: {len(self.problems)} problems"]
        lines += [f"  {path or '(top level)'}: {message}" for path, message in self.problems]
        return "\n".join(lines)


class UnlockNotAllowedError(EngineError):
    """An admin tried to clear a lock while `admin.allow_manual_unlock` is false."""

    def __init__(self, account_id: int) -> None:
        self.account_id = account_id
        super().__init__(
            f"account {account_id}: clearing a lock by hand is disabled (admin.allow_manual_unlock is false); "
            "set it to true in the risk config to allow manual unlocks"
        )


class SnapshotError(EngineError, ValueError):
    """An engine snapshot cannot be restored (wrong version or damaged)."""
