"""The admin inbox: how `risk-manager admin lock|unlock` reach the running daemon.

The channel is a directory, `admin-inbox/` beside the daemon's database (the daemon's own state
directory, 0700). The admin command writes one JSON file per command atomically (0600 temp file,
fsync, rename: the daemon never sees half a command); the daemon polls the directory every 0.25 s,
applies each command in name order through `Daemon.submit_command` (the same ordered path as broker
events), and moves the file to `done/` or `failed/` with the result added. A command written while
the daemon is down waits there and is applied right after the next start. A lock's end is counted
from when it was asked for (`--for 1h` at 14:00 ends at 15:00 even if the daemon applied it at 14:10);
one that has already ended by then fails with that reason.

Why files and not a socket: nothing to listen on, works the same for a per-user daemon and a
service, survives the daemon being down, and the result stays on disk for the audit trail.

Who may write here can ask for an unlock; the daemon still refuses it unless the rules in force have
`admin.allow_manual_unlock: true` (docs/security.md § Threat model: file ownership is the real
boundary; installed as a service, the state directory belongs to the service account).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from risk_manager.daemon.daemon import Daemon, ProtectedAccount
from risk_manager.domain.clock import Clock
from risk_manager.domain.wire import format_time, parse_time
from risk_manager.engine import ClearLock, ManualLock
from risk_manager.engine.actions import LockKind
from risk_manager.logs import log_event
from risk_manager.security.paths import ensure_private_dir, write_private_atomic

log = logging.getLogger("risk_manager.daemon")

INBOX_DIR = "admin-inbox"
POLL_INTERVAL_S = 0.25

CommandName = Literal["lock", "unlock"]


class InboxCommandError(ValueError):
    """A command file the daemon cannot apply; the message says why."""


@dataclass(frozen=True, slots=True)
class InboxCommand:
    id: str
    command: CommandName
    account: str                    # an account id or name
    reason: str
    who: str
    terminal: str
    at: str                         # when it was asked for (UTC, ISO)
    duration_s: float | None = None  # lock
    kind: str | None = None          # unlock: only locks of this kind

    @classmethod
    def from_json(cls, raw: Any) -> InboxCommand:
        if not isinstance(raw, dict):
            raise InboxCommandError("not a JSON object")
        fields = {k: raw[k] for k in raw if k not in ("result", "ok", "applied_at")}
        for name in ("id", "account", "reason", "who", "terminal", "at"):   # a hand-written 1001 means "1001"
            if isinstance(fields.get(name), int | float):
                fields[name] = str(fields[name])
        try:
            command = cls(**fields)
            parse_time(command.at)
        except TypeError as exc:
            raise InboxCommandError(f"unexpected or missing fields ({exc})") from None
        except ValueError:
            raise InboxCommandError(f"at: not an ISO time ({command.at!r})") from None
        if command.command not in ("lock", "unlock"):
            raise InboxCommandError(f"unknown command {command.command!r} (allowed: lock, unlock)")
        if command.command == "lock" and (not isinstance(command.duration_s, int | float) or command.duration_s <= 0):
            raise InboxCommandError("a lock needs a positive duration_s")
        if command.kind is not None and command.kind not in {k.value for k in LockKind}:
            raise InboxCommandError(f"unknown lock kind {command.kind!r} (allowed: "
                                    f"{', '.join(k.value for k in LockKind)})")
        return command


@dataclass(frozen=True, slots=True)
class InboxResult:
    command: InboxCommand
    ok: bool
    result: str
    applied_at: str
    path: Path


def inbox_dir(state_dir: Path) -> Path:
    return state_dir / INBOX_DIR


def write_command(state_dir: Path, clock: Clock, command: CommandName, account: str, reason: str, who: str,
                  terminal: str, duration: timedelta | None = None, kind: str | None = None) -> Path:
    """Queue a command for the daemon (atomically); returns the file's path in the inbox."""
    directory = ensure_private_dir(inbox_dir(state_dir))
    _owned_like(directory, state_dir)
    now = clock.now()
    item = InboxCommand(id=secrets.token_hex(6), command=command, account=account, reason=reason, who=who,
                        terminal=terminal, at=format_time(now),
                        duration_s=duration.total_seconds() if duration is not None else None, kind=kind)
    path = directory / f"{now:%Y%m%dT%H%M%S%f}-{item.id}.json"
    write_private_atomic(path, (json.dumps(asdict(item)) + "\n").encode())
    _owned_like(path, state_dir)
    return path


def _owned_like(path: Path, like: Path) -> None:
    """Run as root (sudo) for a service's daemon: hand the file to the state directory's owner, who must
    read and move it (0600 stays)."""
    if getattr(os, "geteuid", lambda: -1)() != 0:
        return
    owner = like.stat()
    if path.stat().st_uid != owner.st_uid:
        os.chown(path, owner.st_uid, owner.st_gid)


def result_of(path: Path) -> dict[str, Any] | None:
    """The daemon's answer to the command queued at `path` (None while it is still queued)."""
    for folder in ("done", "failed"):
        answered = path.parent / folder / path.name
        with contextlib.suppress(FileNotFoundError, ValueError):
            data = json.loads(answered.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                return data
    return None


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


class AdminInbox:
    """The daemon side: polls the inbox and applies its commands. `start()` / `aclose()`."""

    def __init__(self, daemon: Daemon, state_dir: Path, interval_s: float = POLL_INTERVAL_S) -> None:
        self.daemon = daemon
        self.directory = inbox_dir(state_dir)
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        ensure_private_dir(self.directory)
        self._task = asyncio.get_running_loop().create_task(self._watch(), name="daemon-admin-inbox")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _watch(self) -> None:
        while True:
            try:
                await self.process()
            except Exception as exc:  # the inbox must outlive one bad file or a full disk
                log_event(log, "admin_inbox_failed", logging.ERROR, error=repr(exc), action="trying again")
            await asyncio.sleep(self.interval_s)

    async def process(self) -> list[InboxResult]:
        """Apply every queued command, oldest first."""
        results = []
        for path in sorted(self.directory.glob("*.json")):
            results.append(await self._apply_file(path))
        return results

    async def _apply_file(self, path: Path) -> InboxResult:
        now = self.daemon.clock.now()
        raw: Any = None
        try:
            raw = _read_json(path)
            command = InboxCommand.from_json(raw)
        except (ValueError, OSError) as exc:
            bad = InboxCommand(id="?", command="lock", account="?", reason="", who="?", terminal="?",
                               at=format_time(now))
            return self._finish(path, bad, raw, False, f"unreadable command file: {exc}", now)
        try:
            ok, text = await self._apply(command, now)
        except InboxCommandError as exc:
            ok, text = False, str(exc)
        return self._finish(path, command, raw, ok, text, now)

    def _finish(self, path: Path, command: InboxCommand, raw: Any, ok: bool, text: str,
                now: datetime) -> InboxResult:
        folder = ensure_private_dir(self.directory / ("done" if ok else "failed"))
        record = dict(raw) if isinstance(raw, dict) else {"raw": str(raw)}
        record.update(ok=ok, result=text, applied_at=format_time(now))
        write_private_atomic(folder / path.name, (json.dumps(record) + "\n").encode())
        path.unlink(missing_ok=True)
        log_event(log, "admin_command", logging.INFO if ok else logging.WARNING, command=command.command,
                  account=command.account, who=command.who, ok=ok, result=text)
        return InboxResult(command, ok, text, format_time(now), folder / path.name)

    def _account(self, name: str) -> tuple[int, ProtectedAccount]:
        for account_id, protected in self.daemon.accounts.items():
            if name in (str(account_id), protected.account.name, protected.spec.name):
                return account_id, protected
        known = ", ".join(f"{aid} ({p.account.name})" for aid, p in self.daemon.accounts.items())
        raise InboxCommandError(f"account {name!r} is not protected by this daemon (protected: {known})")

    async def _apply(self, command: InboxCommand, now: datetime) -> tuple[bool, str]:
        account_id, protected = self._account(command.account)
        if command.command == "lock":
            return await self._lock(command, account_id, now)
        return await self._unlock(command, account_id, protected)

    async def _lock(self, command: InboxCommand, account_id: int, now: datetime) -> tuple[bool, str]:
        assert command.duration_s is not None
        until = parse_time(command.at) + timedelta(seconds=command.duration_s)
        if until <= now:
            return False, f"the lock would have ended at {until:%Y-%m-%d %H:%M:%S} UTC, before the daemon applied it"
        done = self.daemon.submit_command(ManualLock(account_id, until - now, reason=command.reason or "manual lock",
                                                     by=command.who, flatten=True))
        if done is not None:
            await done
        engine = self.daemon.accounts[account_id].engine
        if not any(lock.kind is LockKind.MANUAL for lock in engine.locks(account_id)):
            return False, "the engine did not take the lock (see the daemon's log: event_failed)"
        # The engine flattens; working orders are cancelled too, so nothing can fill while locked.
        self.daemon.enforce_locks(account_id, f"admin-lock:{command.id}", "imposed by the admin", positions=False)
        text = (f"account {account_id} locked until {until:%Y-%m-%d %H:%M:%S} UTC; its positions are being flattened "
                "and working orders cancelled (outcome: `risk-manager admin audit`)")
        await self.daemon.audit(command.who, "lock.manual", f"{command.reason or 'no reason given'} "
                                f"(until {until:%Y-%m-%d %H:%M:%S} UTC)", command.terminal, account_id)
        return True, text

    async def _unlock(self, command: InboxCommand, account_id: int, protected: ProtectedAccount) -> tuple[bool, str]:
        if not protected.engine.config.admin.allow_manual_unlock:
            await self.daemon.audit(command.who, "unlock.refused", f"{command.reason or 'no reason given'} "
                                    "(admin.allow_manual_unlock is false)", command.terminal, account_id)
            return False, ("unlock refused: the rules in force have admin.allow_manual_unlock: false; the locks "
                           "end by themselves")
        kind = LockKind(command.kind) if command.kind else None
        before = protected.engine.locks(account_id)
        done = self.daemon.submit_command(ClearLock(account_id, kind, by=command.who, reason=command.reason))
        if done is not None:
            await done
        cleared = len(before) - len(self.daemon.accounts[account_id].engine.locks(account_id))
        what = f"{cleared} lock(s){' of kind ' + command.kind if command.kind else ''} cleared"
        await self.daemon.audit(command.who, "lock.cleared", f"{command.reason or 'no reason given'}: {what}",
                                command.terminal, account_id)
        return True, f"account {account_id}: {what}"


__all__ = ["INBOX_DIR", "AdminInbox", "InboxCommand", "InboxCommandError", "InboxResult", "inbox_dir",
           "result_of", "write_command"]
