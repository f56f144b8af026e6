"""`risk-manager status`: the trader's live, read-only view of the daemon (Textual).

It connects to the daemon's broadcast channel, applies the snapshot and its diffs, and redraws the
selected account. Countdowns and ages run on the DAEMON's clock: the last snapshot's `at` plus the
time elapsed here since it arrived (so a daemon on a virtual or skewed clock still shows true
countdowns). When the daemon is not running the app says so, retries with backoff, and (with
`--db`) shows what the store still knows, read-only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Static, TabbedContent, TabPane

from risk_manager.broadcast.client import SnapshotFeed
from risk_manager.broadcast.errors import BroadcastError
from risk_manager.broadcast.schema import AccountSnapshot, Snapshot
from risk_manager.logs import log_event
from risk_manager.store import StoreError
from risk_manager.ui.format import duration, money, number, pnl_text, rule_bar
from risk_manager.ui.store_view import store_snapshot

log = logging.getLogger("risk_manager.ui")

BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0)  # then 8 s between attempts
FLASH_S = 4.0
TICK_S = 0.25

TokenSource = Callable[[], str]  # read at each attempt: a token file created after start is picked up


class DashboardApp(App[None]):
    TITLE = "risk-manager"
    CSS = """
    #banner { height: auto; padding: 0 1; background: $boost; }
    #banner.down { background: $error 40%; }
    #flash { height: auto; padding: 0 1; display: none; }
    #flash.on { display: block; background: $warning 60%; color: $text; text-style: bold; }
    #summary { height: auto; padding: 0 1; }
    #locks { height: auto; padding: 0 1; }
    TabbedContent { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("left_square_bracket", "account(-1)", "Prev account"),
        Binding("right_square_bracket", "account(1)", "Next account"),
        Binding("p", "tab('positions')", "Positions"),
        Binding("o", "tab('orders')", "Orders"),
        Binding("h", "tab('history')", "History"),
        Binding("r", "tab('rules')", "Rules"),
        *[Binding(str(n), f"pick({n - 1})", show=False) for n in range(1, 10)],
    ]

    def __init__(self, url: str, token: TokenSource, *, db: Path | None = None, bell: bool = True) -> None:
        super().__init__()
        self.url = url
        self._token = token
        self.db = db
        self.bell_on = bell
        self.snapshot: Snapshot | None = None
        self.account_ids: list[str] = []
        self.selected = 0
        self.link = "connecting"  # connecting | live | down
        self.link_detail = ""
        self._received = time.monotonic()
        self._seen: set[tuple[str, ...]] = set()
        self._flash_until = 0.0
        self._feed: SnapshotFeed | None = None

    # --- layout ----------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(id="banner")
        yield Static(id="flash")
        yield Static(id="summary")
        yield Static(id="locks")
        with TabbedContent(initial="positions"):
            with TabPane("Positions", id="positions"):
                yield DataTable(id="positions-table", cursor_type="row")
            with TabPane("Orders", id="orders"):
                yield DataTable(id="orders-table", cursor_type="row")
            with TabPane("History", id="history"):
                yield DataTable(id="history-table", cursor_type="row")
            with TabPane("Rules", id="rules"):
                yield DataTable(id="rules-table", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        columns = {
            "positions-table": ("Contract", "Side", "Size", "Entry", "Last", "Open P&L", "Stops"),
            "orders-table": ("Id", "Contract", "Type", "Side", "Size", "Limit", "Stop", "Status"),
            "history-table": ("Time", "What", "Rules", "Status", "Detail"),
            "rules-table": ("Rule", "What", "Value", "Limit", "Distance"),
        }
        for table_id, names in columns.items():
            self.query_one(f"#{table_id}", DataTable).add_columns(*names)
        self._draw_banner()
        self.set_interval(TICK_S, self._tick)
        self.run_worker(self._follow(), name="feed", exclusive=True)

    # --- the feed --------------------------------------------------------------------------------

    async def _follow(self) -> None:
        attempt = 0
        while True:
            try:
                token = self._token()
                self._feed = await SnapshotFeed.connect(self.url, token)
                attempt = 0
                self.link, self.link_detail = "live", ""
                self.show(self._feed.snapshot)
                while True:
                    self.show(await self._feed.next())
            except BroadcastError as exc:  # unreachable, token refused or unreadable, protocol
                await self._down(str(exc), attempt)
            finally:
                if self._feed is not None:
                    await self._feed.aclose()
                    self._feed = None
            delay = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
            attempt += 1
            self.link_detail += f" — retrying in {delay:g} s (attempt {attempt})"
            self._draw_banner()
            await asyncio.sleep(delay)

    async def _down(self, why: str, attempt: int) -> None:
        was_live = self.link == "live"
        self.link, self.link_detail = "down", why
        if was_live or attempt == 0:
            log_event(log, "dashboard_daemon_unreachable", logging.WARNING, url=self.url, reason=why)
        if self.db is not None:
            await self._load_store()
        elif self.snapshot is not None and self.snapshot.source == "daemon":
            self._redraw()  # keep the last picture, marked as not live in the banner

    async def _load_store(self) -> None:
        assert self.db is not None
        now = self._daemon_now() or datetime.now().astimezone()
        try:
            data = await asyncio.to_thread(store_snapshot, self.db, now)  # sqlite: off the UI loop
        except (StoreError, OSError) as exc:
            self.link_detail += f"; store {self.db} unreadable: {exc}"
            log_event(log, "dashboard_store_unreadable", logging.WARNING, path=str(self.db), error=str(exc))
            return
        self.show(Snapshot.model_validate(data))

    # --- state -----------------------------------------------------------------------------------

    def show(self, snapshot: Snapshot | None) -> None:
        """Take a new whole state and redraw (flash + bell for new actions and alerts)."""
        if snapshot is None:
            return
        first = self.snapshot is None
        self.snapshot = snapshot
        self._received = time.monotonic()
        current = self.account_ids[self.selected] if self.account_ids else None
        self.account_ids = sorted(snapshot.accounts, key=lambda k: (len(k), k))
        self.selected = self.account_ids.index(current) if current in self.account_ids else 0
        self._notice_new(snapshot, quiet=first)
        self._redraw()

    def _notice_new(self, snapshot: Snapshot, *, quiet: bool) -> None:
        fresh: list[str] = []
        for aid, acct in snapshot.accounts.items():
            for a in acct.actions:
                key: tuple[str, ...] = ("action", aid, a.at.isoformat(), a.kind, ",".join(a.rules), a.status)
                if key not in self._seen:
                    self._seen.add(key)
                    fresh.append(f"{aid}: {a.kind} {'+'.join(a.rules)} → {a.status}")
            for al in acct.alerts:
                key = ("alert", aid, al.at.isoformat(), al.message)
                if key not in self._seen:
                    self._seen.add(key)
                    fresh.append(f"{aid}: {al.level.upper()} {al.message}")
        if fresh and not quiet:
            flash = self.query_one("#flash", Static)
            flash.update(Text("⚠ " + " | ".join(fresh[-3:])))
            flash.add_class("on")
            self._flash_until = time.monotonic() + FLASH_S
            if self.bell_on:
                self.bell()

    def _daemon_now(self) -> datetime | None:
        """The daemon's clock now: the last snapshot's `at` + the time elapsed since it arrived."""
        if self.snapshot is None or self.snapshot.at is None:
            return None
        return self.snapshot.at + timedelta(seconds=time.monotonic() - self._received)

    @property
    def account(self) -> AccountSnapshot | None:
        if self.snapshot is None or not self.account_ids:
            return None
        return self.snapshot.accounts.get(self.account_ids[self.selected])

    # --- actions ---------------------------------------------------------------------------------

    def action_account(self, step: int) -> None:
        if self.account_ids:
            self.selected = (self.selected + step) % len(self.account_ids)
            self._redraw()

    def action_pick(self, index: int) -> None:
        if index < len(self.account_ids):
            self.selected = index
            self._redraw()

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    # --- drawing ---------------------------------------------------------------------------------

    def _tick(self) -> None:
        if self._flash_until and time.monotonic() >= self._flash_until:
            self._flash_until = 0.0
            self.query_one("#flash", Static).remove_class("on")
        self._draw_live()

    def _redraw(self) -> None:
        self._draw_banner()
        self._draw_live()
        acct = self.account
        self._fill("positions-table", [] if acct is None else [
            (p.symbol or p.contract_id, p.side, str(p.size), number(p.entry),
             "—" if p.last_price is None else number(p.last_price), pnl_text(p.open_pnl),
             f"{p.stop_covered}/{p.size}") for p in acct.positions])
        self._fill("orders-table", [] if acct is None else [
            (str(o.id), o.contract_id, o.type, o.side, str(o.size),
             "—" if o.limit_price is None else number(o.limit_price),
             "—" if o.stop_price is None else number(o.stop_price), o.status) for o in acct.orders])
        history: list[tuple[datetime, tuple[Any, ...]]] = []
        if acct is not None:
            history += [(a.at, (a.at.strftime("%H:%M:%S"), a.kind, "+".join(a.rules),
                                Text(a.status, style="red" if a.status == "failed" else "green"),
                                a.reason or a.contract_id or "")) for a in acct.actions]
            history += [(al.at, (al.at.strftime("%H:%M:%S"), f"alert ({al.level})", "+".join(al.rules),
                                 "", al.message)) for al in acct.alerts]
        self._fill("history-table", [row for _, row in sorted(history, key=lambda h: h[0], reverse=True)])
        self._fill("rules-table", [] if acct is None else [
            (r.rule_id, r.label + (f" ({r.contract_id})" if r.contract_id else ""), number(r.value),
             number(r.limit), rule_bar(r.fraction)) for r in acct.rules])

    def _fill(self, table_id: str, rows: list[tuple[Any, ...]]) -> None:
        table = self.query_one(f"#{table_id}", DataTable)
        table.clear()
        for row in rows:
            table.add_row(*row)

    def _draw_banner(self) -> None:
        banner = self.query_one("#banner", Static)
        if self.link == "live":
            text = Text(f"● daemon {self.url}", style="green")
        elif self.link == "connecting":
            text = Text(f"… connecting to the daemon at {self.url}", style="yellow")
        else:
            text = Text(f"✖ DAEMON NOT REACHABLE: {self.link_detail}", style="bold")
            if self.snapshot is not None and self.snapshot.source == "store":
                text.append(f"\n  showing the store read-only ({self.db}): locks, daily P&L, enforcement log")
            elif self.snapshot is not None:
                text.append("\n  showing the last picture received (not live)")
        banner.set_class(self.link == "down", "down")
        if self.account_ids:
            picks = "  ".join(f"{i + 1}:{aid}" + ("*" if i == self.selected else "")
                              for i, aid in enumerate(self.account_ids))
            text.append(f"\n  accounts {picks}   ([ / ] or 1-9 to switch)")
        banner.update(text)

    def _draw_live(self) -> None:
        """The parts that change with time: ages, countdowns."""
        summary = self.query_one("#summary", Static)
        locks = self.query_one("#locks", Static)
        acct, now = self.account, self._daemon_now()
        if acct is None or now is None:
            summary.update("no account data yet" if self.link != "down" else "")
            locks.update("")
            return
        text = Text()
        if self.link != "live" and self.snapshot is not None and self.snapshot.source == "daemon":
            text.append("LAST KNOWN (daemon unreachable)  ", style="bold yellow")
        text.append(f"{acct.name or 'account'} ({acct.account_id})", style="bold")
        text.append("  ")
        conn_style = {"connected": "green", "reconnecting": "yellow", "disconnected": "red"}[acct.connection]
        text.append(acct.connection, style=conn_style)
        text.append("  ")
        text.append(acct.freshness.upper(), style="green" if acct.freshness == "fresh" else "bold red")
        if acct.last_event_at is not None:
            age = duration((now - acct.last_event_at).total_seconds(), countdown=False)
            text.append(f"  last event {age} ago")
        if acct.balance is not None:
            text.append(f"  balance {money(acct.balance)}")
        if acct.can_trade is False:
            text.append("  broker: cannot trade", style="red")
        text.append("\nrealized ")
        text.append_text(pnl_text(acct.pnl.realized))
        text.append(f"  fees {money(acct.pnl.fees)}  open ")
        text.append_text(pnl_text(acct.pnl.open))
        text.append("  net ")
        text.append_text(pnl_text(acct.pnl.net))
        text.append(f"  trades {acct.pnl.trades}")
        session = acct.session
        text.append(f"\nsession {session.state}")
        if session.boundary is not None:
            verb = "closes" if session.state == "open" else "opens"
            text.append(f" ({verb} in {duration((session.boundary - now).total_seconds())})")
        if session.next_reset is not None:
            text.append(f"  next reset in {duration((session.next_reset - now).total_seconds())}")
        summary.update(text)
        lines = Text()
        active = [lock for lock in acct.locks if lock.until is None or lock.until > now]
        if not active:
            lines.append("no active lock", style="green")
        for i, lock in enumerate(active):
            if i:
                lines.append("\n")
            what = f"🔒 LOCKED {lock.kind}" + (f" {lock.symbol}" if lock.symbol else "")
            lines.append(what, style="bold red")
            lines.append(f" [{'+'.join(lock.rules) or lock.by}] {lock.reason} — ")
            if lock.until is not None:
                lines.append(f"ends in {duration((lock.until - now).total_seconds())}", style="bold")
            else:
                lines.append(f"ends {lock.ends_when}", style="bold")
        locks.update(lines)
