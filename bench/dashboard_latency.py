"""Dashboard: a snapshot published by the broadcast server → drawn by `risk-manager status` (headless)."""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from risk_manager.benchkit import Figure, Progress, median, percentile
from risk_manager.broadcast import BroadcastServer, SnapshotFeed, account_snapshot, build_snapshot, read_token_file
from risk_manager.domain import (
    Position,
    PositionEvent,
    PositionType,
    Quote,
    QuoteEvent,
    VirtualClock,
    default_catalogue,
)
from risk_manager.engine import Engine, RiskConfig

DESCRIPTION = "publish → on screen in the Textual dashboard (headless pilot), ms; publish() cost with 10 clients, µs"

ES = "CON.F.US.EP.Z26"
ACCOUNT = 1001
ROUNDS = 60


class _Feed:
    """An engine with one long ES position whose last price moves: each quote is a new snapshot."""

    def __init__(self) -> None:
        self.clock = VirtualClock(datetime(2026, 3, 3, 15, 0, tzinfo=UTC))
        config = RiskConfig.model_validate({"rules": {"max_contracts": {"enabled": True, "limit": 5}}})
        self.engine = Engine(config, self.clock, default_catalogue())
        self.engine.handle(PositionEvent(Position(1, ACCOUNT, ES, self.clock.now(), PositionType.LONG, 2, 5000.0)))

    def snapshot(self, price: float) -> dict[str, object]:
        self.clock.advance(timedelta(milliseconds=250))
        self.engine.handle(QuoteEvent(ES, Quote(last_price=price, timestamp=self.clock.now())))
        now = self.clock.now()
        acct = account_snapshot(self.engine.status(ACCOUNT), "connected", True, now, [], [], [], now)
        return build_snapshot([acct], now)


async def _on_screen(progress: Progress, token_file: Path) -> list[float]:
    from textual.widgets import DataTable

    from risk_manager.ui.app import DashboardApp

    feed = _Feed()
    server = BroadcastServer("127.0.0.1", 0, token_file=token_file)
    await server.start()
    samples: list[float] = []
    try:
        server.publish(feed.snapshot(5000.0))
        app = DashboardApp(server.url, lambda: read_token_file(token_file), bell=False)
        async with app.run_test(size=(120, 34)) as pilot:
            table = app.query_one("#positions-table", DataTable)
            while table.row_count == 0:
                await pilot.pause(0.01)
            for i in range(ROUNDS):
                progress(f"publish → screen {i + 1}/{ROUNDS}")
                price = 5001.0 + i
                expected = f"{int(price):,}"
                started = time.perf_counter()
                server.publish(feed.snapshot(price))
                while str(table.get_row_at(0)[4]) != expected:
                    await pilot.pause(0.001)
                samples.append((time.perf_counter() - started) * 1000)
    finally:
        await server.aclose()
    return samples


async def _publish_cost(progress: Progress, token_file: Path) -> list[float]:
    feed = _Feed()
    server = BroadcastServer("127.0.0.1", 0, token_file=token_file)
    await server.start()
    samples: list[float] = []
    try:
        clients = [await SnapshotFeed.connect(server.url, read_token_file(token_file)) for _ in range(10)]
        for i in range(ROUNDS):
            progress(f"publish() with 10 clients {i + 1}/{ROUNDS}")
            snapshot = feed.snapshot(5000.0 + i)
            started = time.perf_counter()
            server.publish(snapshot)
            samples.append((time.perf_counter() - started) * 1e6)
            for client in clients:
                await client.next(5.0)
        for client in clients:
            await client.aclose()
    finally:
        await server.aclose()
    return samples


def run(progress: Progress) -> list[Figure]:
    with tempfile.TemporaryDirectory() as tmp:
        screen = asyncio.run(_on_screen(progress, Path(tmp) / "a.token"))
        cost = asyncio.run(_publish_cost(progress, Path(tmp) / "b.token"))
    return [
        Figure("publish → on screen, median", median(screen), "ms", target=250.0),
        Figure("publish → on screen, p95", percentile(screen, 95), "ms", target=250.0),
        Figure("publish() with 10 clients, median", median(cost), "µs"),
        Figure("publish() with 10 clients, p95", percentile(cost, 95), "µs"),
    ]
