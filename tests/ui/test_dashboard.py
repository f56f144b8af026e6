"""The dashboard driven headless (Textual pilot) against a real BroadcastServer on 127.0.0.1, fed with
snapshots of a REAL engine on a VirtualClock (tests/broadcast/desk.py)."""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from textual.widgets import DataTable, Static, TabbedContent

from risk_manager.broadcast import BroadcastServer, read_token_file
from risk_manager.domain import VirtualClock
from risk_manager.store import LockRecord, Store
from risk_manager.ui.app import DashboardApp
from tests.broadcast.desk import Desk

SIZE = (130, 40)


@pytest.fixture
async def desk(tmp_path: Path) -> AsyncIterator[Desk]:
    d = await Desk(tmp_path / "dashboard.token").start()
    yield d
    await d.server.aclose()


def text_of(app: DashboardApp, widget_id: str) -> str:
    return str(app.query_one(f"#{widget_id}", Static).content)


def rows_of(app: DashboardApp, table_id: str) -> list[list[str]]:
    table = app.query_one(f"#{table_id}", DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


async def until(pilot, predicate: Callable[[], bool], within_s: float = 5.0) -> float:  # type: ignore[no-untyped-def]
    """Seconds until `predicate` holds, with the screen refreshed between checks."""
    started = time.perf_counter()
    while not predicate():
        assert time.perf_counter() - started < within_s, "not on screen in time"
        await pilot.pause(0.002)
    return time.perf_counter() - started


def countdown_s(text: str) -> int:
    found = re.search(r"ends in (?:(\d+)h )?(?:(\d+)m )?(\d+)s", text)
    assert found, text
    h, m, s = (int(g) if g else 0 for g in found.groups())
    return h * 3600 + m * 60 + s


def app_for(desk: Desk, **kw) -> DashboardApp:  # type: ignore[no-untyped-def]
    path = desk.server.token_file
    return DashboardApp(desk.url, lambda: read_token_file(path), **kw)


async def test_a_breach_of_rule_003_on_screen(desk: Desk) -> None:
    desk.open_long(2)
    desk.publish()
    app = app_for(desk)
    bells: list[int] = []
    app.bell = lambda: bells.append(1)  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(rows_of(app, "positions-table")) == 1)
        assert "● daemon" in text_of(app, "banner")
        summary = text_of(app, "summary")
        assert "connected" in summary and "FRESH" in summary and "next reset in 8h 00m" in summary
        assert rows_of(app, "positions-table")[0][:3] == ["ES", "long", "2"]
        assert "no active lock" in text_of(app, "locks")
        assert not bells

        desk.lose(-600.0)
        desk.publish()
        await until(pilot, lambda: "LOCKED until_reset" in text_of(app, "locks"))
        locks = text_of(app, "locks")
        assert "RULE-003" in locks
        first = countdown_s(locks)
        assert 7 * 3600 < first <= 8 * 3600
        assert "realized -$600.00" in text_of(app, "summary")
        assert "flatten_account" in text_of(app, "flash") and app.query_one("#flash").has_class("on")
        assert bells == [1]

        desk.advance(600)  # ten minutes of the daemon's (virtual) clock
        desk.publish()
        await until(pilot, lambda: countdown_s(text_of(app, "locks")) <= first - 599)
        assert countdown_s(text_of(app, "locks")) >= first - 601

        desk.flattened()
        desk.publish()
        await until(pilot, lambda: rows_of(app, "positions-table") == [])
        assert "LOCKED until_reset" in text_of(app, "locks")  # the lock stays until the reset

        await pilot.press("h")
        assert app.query_one(TabbedContent).active == "history"
        assert any(row[1] == "flatten_account" and row[2] == "RULE-003" for row in rows_of(app, "history-table"))
        await pilot.press("r")
        rules = {row[0]: row for row in rows_of(app, "rules-table")}
        assert rules["RULE-003"][2:4] == ["-600", "500"] and "120%" in rules["RULE-003"][4]
        assert rules["RULE-001"][2:4] == ["0", "5"] and "0%" in rules["RULE-001"][4]
        await pilot.press("q")
    assert app.return_code == 0


async def test_publish_to_screen_latency(desk: Desk) -> None:
    """Snapshot published → drawn: the quality bar is ≤ 250 ms (median of 15 publishes)."""
    desk.open_long(1)
    desk.publish()
    app = app_for(desk, bell=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(rows_of(app, "positions-table")) == 1)
        figures = []
        for i in range(15):
            desk.record(desk.h.quote("CON.F.US.EP.Z26", last=5000.0 + i + 1))
            desk.publish()
            figures.append(await until(pilot, lambda i=i: rows_of(app, "positions-table")[0][4] == f"{5001 + i:,}"))
        median, worst = statistics.median(figures), max(figures)
        print(f"dashboard publish→screen: median {median * 1000:.1f} ms, max {worst * 1000:.1f} ms (15 runs)")
        assert median <= 0.25


async def test_two_accounts_switch_with_keys(desk: Desk) -> None:
    desk.accounts = [1001, 2002]
    desk.open_long(1)
    desk.publish()
    app = app_for(desk, bell=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.account is not None)
        assert "(1001)" in text_of(app, "summary") and "1:1001*  2:2002" in text_of(app, "banner")
        await pilot.press("right_square_bracket")
        assert "(2002)" in text_of(app, "summary") and rows_of(app, "positions-table") == []
        await pilot.press("1")
        assert "(1001)" in text_of(app, "summary")
        await pilot.press("left_square_bracket")
        assert "(2002)" in text_of(app, "summary")
        await pilot.press("o")
        assert app.query_one(TabbedContent).active == "orders"


async def test_wrong_token_is_said_and_retried(desk: Desk) -> None:
    desk.publish()
    app = DashboardApp(desk.url, lambda: "0" * 64, bell=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "refused the token" in text_of(app, "banner"))
        assert "DAEMON NOT REACHABLE" in text_of(app, "banner") and "retrying in" in text_of(app, "banner")


async def test_unexpected_content_is_ignored_and_the_app_lives_on(desk: Desk) -> None:
    desk.open_long(1)
    desk.publish()
    app = app_for(desk, bell=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: len(rows_of(app, "positions-table")) == 1)
        bad = desk.snapshot()
        bad["accounts"]["1001"] = {**bad["accounts"]["1001"], "connection": "teleported", "positions": "many"}
        desk.server.publish(bad)
        desk.server.publish({**bad, "daemon": {"odd": True}})
        desk.flattened()
        desk.publish()
        await until(pilot, lambda: rows_of(app, "positions-table") == [])
        assert app.is_running and "● daemon" in text_of(app, "banner")
        await desk.server.aclose()  # the daemon stops: the last picture stays, marked as such
        await until(pilot, lambda: "LAST KNOWN (daemon unreachable)" in text_of(app, "summary"))
        assert "showing the last picture received (not live)" in text_of(app, "banner")


async def test_daemon_down_store_fallback_then_restart(tmp_path: Path) -> None:
    db = tmp_path / "risk.db"
    start = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)
    async with await Store.open(db, VirtualClock(start)) as store:
        await store.add_lock(LockRecord("k1", 1001, "until_reset", "daily realized loss -600 ≤ -500", start,
                                        until=datetime.now(UTC) + timedelta(hours=2), rules=("RULE-003",)))
    token_file = tmp_path / "dashboard.token"
    server = BroadcastServer("127.0.0.1", 0, token_file=token_file)
    await server.start()
    port = server.port
    await server.aclose()
    app = DashboardApp(f"ws://127.0.0.1:{port}", lambda: read_token_file(token_file), db=db, bell=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "DAEMON NOT REACHABLE" in text_of(app, "banner"))
        await until(pilot, lambda: "LOCKED until_reset" in text_of(app, "locks"))
        assert "showing the store read-only" in text_of(app, "banner")
        assert "RULE-003" in text_of(app, "locks") and "disconnected" in text_of(app, "summary")
        assert 7000 < countdown_s(text_of(app, "locks")) <= 7200

        desk = Desk(token_file)  # the daemon comes back on the same port
        desk.server = BroadcastServer("127.0.0.1", port, token_file=token_file)
        await desk.start()
        try:
            desk.open_long(1)
            desk.publish()
            await until(pilot, lambda: "● daemon" in text_of(app, "banner"), within_s=10)
            await until(pilot, lambda: len(rows_of(app, "positions-table")) == 1)
            assert "no active lock" in text_of(app, "locks")
        finally:
            await desk.server.aclose()
        await until(pilot, lambda: "DAEMON NOT REACHABLE" in text_of(app, "banner"))
        await until(pilot, lambda: "showing the store read-only" in text_of(app, "banner"))


async def test_a_lock_ended_by_a_condition_says_so(tmp_path: Path) -> None:
    desk = await Desk(tmp_path / "dashboard.token", {"auth_loss_guard": {"enabled": True}}).start()
    try:
        desk.record(desk.h.account(can_trade=False))
        desk.publish()
        app = app_for(desk, bell=False)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: "LOCKED until_can_trade" in text_of(app, "locks"))
            assert "ends when the broker reports canTrade: true" in text_of(app, "locks")
            assert "broker: cannot trade" in text_of(app, "summary")
    finally:
        await desk.server.aclose()


async def test_an_unreadable_store_is_said(tmp_path: Path) -> None:
    token_file = tmp_path / "dashboard.token"
    server = BroadcastServer("127.0.0.1", 0, token_file=token_file)
    await server.start()
    url = server.url
    await server.aclose()
    app = DashboardApp(url, lambda: read_token_file(token_file), db=tmp_path / "missing.db", bell=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: "missing.db unreadable" in text_of(app, "banner"))
        assert "DAEMON NOT REACHABLE" in text_of(app, "banner") and app.is_running


async def test_session_state_and_its_countdown(tmp_path: Path) -> None:
    desk = await Desk(tmp_path / "dashboard.token", {"session_block_outside": {"enabled": True}}).start()
    try:
        desk.record(desk.h.account())
        desk.publish()
        app = app_for(desk, bell=False)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: "session open (closes in 6h 00m" in text_of(app, "summary"))
            desk.advance(6 * 3600 + 60)  # past 15:00 Chicago: closed, opens again tomorrow 08:30
            desk.publish()
            await until(pilot, lambda: "session closed (opens in 17h 29m" in text_of(app, "summary"))
    finally:
        await desk.server.aclose()
