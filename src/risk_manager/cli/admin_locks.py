"""`risk-manager admin lock|unlock ACCOUNT`: the "lock me out" button and the manual unlock.

Both ask for the admin password, are audited in the admin audit file (who, when, why, terminal), and
reach the daemon through its admin inbox (`risk_manager.daemon.admin_inbox`): the command waits up to
`--wait` seconds for the running daemon's answer; with no daemon running the command stays queued and
is applied at the next start. `unlock` is refused here already when the risk file says
`admin.allow_manual_unlock: false` (and the daemon checks the rules in force again).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from risk_manager.admin.errors import AdminError
from risk_manager.admin.locations import DaemonFiles
from risk_manager.admin.rules_file import RulesDocument
from risk_manager.cli.admin_cmd import CONFIG, PASSWORD_STDIN, REASON, _admin_refusals, _directory, _unlocked, out
from risk_manager.daemon.admin_inbox import CommandName, result_of, write_command
from risk_manager.daemon.runtime_files import pid_alive, read_pid
from risk_manager.domain.durations import DURATION_HELP, parse_duration
from risk_manager.engine.actions import LockKind
from risk_manager.security.admin_directory import AdminDirectory
from risk_manager.security.audit_file import current_terminal, current_user
from risk_manager.security.prompts import SecretReader

KINDS = ", ".join(kind.value for kind in LockKind)
WAIT = typer.Option(10.0, "--wait", min=0, help="Seconds to wait for the running daemon's answer (0: do not wait).")


def _send(directory: AdminDirectory, files: DaemonFiles, command: CommandName, account: str, reason: str,
          wait: float, **fields: Any) -> None:
    state_dir = files.database.parent
    path = write_command(state_dir, directory.clock, command, account, reason, current_user(), current_terminal(),
                         **fields)
    pid = read_pid(state_dir)
    if pid is None or not pid_alive(pid):
        out.print(f"Queued ({path.name}): no daemon is running for {files.config_dir}; it is applied when the daemon "
                  "starts (risk-manager admin daemon start).", highlight=False)
        return
    deadline = time.monotonic() + wait
    answer = result_of(path)
    while answer is None and time.monotonic() < deadline:
        time.sleep(0.05)
        answer = result_of(path)
    if answer is None:
        out.print(f"Queued ({path.name}); the daemon (pid {pid}) has not answered within {wait:g} s: check "
                  "`risk-manager admin audit` or the daemon's log.", highlight=False)
        return
    if not answer.get("ok"):
        raise AdminError(f"the daemon refused it: {answer.get('result')}")
    out.print(f"Done: {answer.get('result')}", highlight=False)


def lock(account: str = typer.Argument(..., help="The account id or name."),
         duration: str = typer.Option(..., "--for", help=f"How long: {DURATION_HELP}."),
         reason: str = REASON, wait: float = WAIT, config: Path | None = CONFIG,
         password_stdin: bool = PASSWORD_STDIN) -> None:
    """Lock an account now: positions flattened, orders cancelled, no trading until the end. Stdin: admin password."""
    with _admin_refusals():
        try:
            length = parse_duration(duration)
        except ValueError as exc:
            raise AdminError(f"--for: {exc}") from None
        if length.total_seconds() <= 0:
            raise AdminError("--for: the lock must last longer than 0 s")
        directory = _directory(config)
        _unlocked(directory, SecretReader(password_stdin))
        files = DaemonFiles.resolve(directory.paths.directory)
        directory.audit.append("lock.requested", f"{reason or 'no reason given'} (for {duration})", account=account)
        _send(directory, files, "lock", account, reason, wait, duration=length)


def unlock(account: str = typer.Argument(..., help="The account id or name."),
           kind: str | None = typer.Option(None, "--kind", help=f"Only locks of this kind: {KINDS} (default: all)."),
           reason: str = REASON, wait: float = WAIT, config: Path | None = CONFIG,
           password_stdin: bool = PASSWORD_STDIN) -> None:
    """Clear an account's locks; only when the rules allow it (admin.allow_manual_unlock). Stdin: admin password."""
    with _admin_refusals():
        if kind is not None and kind not in {k.value for k in LockKind}:
            raise AdminError(f"--kind {kind!r}: allowed values: {KINDS}")
        directory = _directory(config)
        _unlocked(directory, SecretReader(password_stdin))
        files = DaemonFiles.resolve(directory.paths.directory)
        rules = RulesDocument.load(files.risk_file).config
        if not rules.admin.allow_manual_unlock:
            directory.audit.append("unlock.refused", f"{reason or 'no reason given'} (admin.allow_manual_unlock is "
                                   "false)", account=account)
            raise AdminError(f"unlock refused: {files.risk_file} has admin.allow_manual_unlock: false",
                             "the locks end by themselves (until-reset locks at the daily reset)")
        directory.audit.append("unlock.requested", reason or "no reason given", account=account)
        _send(directory, files, "unlock", account, reason, wait, kind=kind)


def register(app: typer.Typer) -> None:
    app.command("lock")(lock)
    app.command("unlock")(unlock)


__all__ = ["lock", "register", "unlock"]
