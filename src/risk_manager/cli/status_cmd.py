"""`risk-manager status`: the live dashboard, one JSON snapshot (`--json`) or a line per change (`--watch`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import IO

import typer

from risk_manager.broadcast import (
    DEFAULT_URL,
    BroadcastError,
    Snapshot,
    SnapshotFeed,
    fetch_snapshot,
    json_schema,
    read_token_file,
)
from risk_manager.broadcast.server import default_token_file
from risk_manager.logs import StructuredFormatter, configure_logging
from risk_manager.ui.format import duration, money

WATCH_RETRY_S = 2.0


def status(
    url: str = typer.Option(DEFAULT_URL, "--url", help="The daemon's broadcast channel."),
    token_file: Path | None = typer.Option(None, "--token-file", help="The daemon's token file "
                                           "(default: <data dir>/dashboard.token)."),
    db: Path | None = typer.Option(None, "--db", help="The daemon's database: shown read-only while the "
                                   "daemon is not running."),
    as_json: bool = typer.Option(False, "--json", help="Print one snapshot as JSON and exit (1 if the daemon "
                                 "is unreachable)."),
    watch: bool = typer.Option(False, "--watch", help="Print a compact line per change (no TUI)."),
    no_bell: bool = typer.Option(False, "--no-bell", help="Do not ring the terminal bell on actions and alerts."),
    schema: bool = typer.Option(False, "--schema", help="Print the snapshot's JSON Schema and exit."),
    log_file: Path | None = typer.Option(None, "--log-file", help="Where the dashboard logs (default: the "
                                         "Textual devtools console; stderr with --json/--watch)."),
) -> None:
    """The trader's live, read-only view of the daemon: accounts, positions, P&L, rules, locks, actions."""
    if schema:
        typer.echo(json.dumps(json_schema(), indent=2, ensure_ascii=False))
        return
    path = token_file or default_token_file()
    if as_json or watch:
        configure_logging("WARNING", stream=None if log_file is None else log_file.open("a", encoding="utf-8"))
    if as_json:
        try:
            data = asyncio.run(fetch_snapshot(url, read_token_file(path)))
        except BroadcastError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    if watch:
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a watcher stops
            asyncio.run(_watch(url, path, sys.stdout))
        return
    _log_for_tui(log_file)
    from risk_manager.ui.app import DashboardApp  # Textual loads only for the TUI

    DashboardApp(url, lambda: read_token_file(path), db=db, bell=not no_bell).run()


def _log_for_tui(log_file: Path | None) -> None:
    """Logs must not draw over the TUI: into `log_file`, else Textual's devtools console."""
    if log_file is not None:
        configure_logging("INFO", stream=log_file.open("a", encoding="utf-8"))
        return
    from textual.logging import TextualHandler

    handler = TextualHandler()
    handler.setFormatter(StructuredFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def account_lines(before: Snapshot | None, after: Snapshot) -> list[str]:
    """One compact line per account that changed, then one per new action/alert (the `--watch` output)."""
    lines: list[str] = []
    now = after.at or datetime.now().astimezone()
    stamp = now.strftime("%H:%M:%S")
    for aid, acct in sorted(after.accounts.items()):
        old = None if before is None else before.accounts.get(aid)
        if old == acct:
            continue
        locks = ",".join(f"{lock.kind}({'+'.join(lock.rules) or lock.by})"
                         + (f" {duration((lock.until - now).total_seconds())}" if lock.until else "")
                         for lock in acct.locks)
        lines.append(f"{stamp} {aid} {acct.connection} {acct.freshness} pos={sum(p.size for p in acct.positions)} "
                     f"orders={len(acct.orders)} realized={money(acct.pnl.realized)} net={money(acct.pnl.net)} "
                     f"locks={locks or '-'}")
        seen = set() if old is None else {(a.at, a.kind, a.status) for a in old.actions}
        for a in reversed(acct.actions):
            if (a.at, a.kind, a.status) not in seen and old is not None:
                lines.append(f"{stamp} {aid} ACTION {a.kind} {'+'.join(a.rules)} {a.status} {a.reason or ''}".rstrip())
        seen_alerts = set() if old is None else {(a.at, a.message) for a in old.alerts}
        for al in reversed(acct.alerts):
            if (al.at, al.message) not in seen_alerts and old is not None:
                lines.append(f"{stamp} {aid} ALERT {al.level} {al.message}")
    return lines


async def _watch(url: str, token_file: Path, out: IO[str]) -> None:
    previous: Snapshot | None = None
    while True:
        try:
            async with await SnapshotFeed.connect(url, read_token_file(token_file)) as feed:
                snapshot = feed.snapshot
                while True:
                    assert snapshot is not None
                    for line in account_lines(previous, snapshot):
                        print(line, file=out, flush=True)
                    previous = snapshot
                    snapshot = await feed.next()
        except BroadcastError as exc:
            print(f"daemon unreachable: {exc} (retrying in {WATCH_RETRY_S:g} s)", file=out, flush=True)
            await asyncio.sleep(WATCH_RETRY_S)
