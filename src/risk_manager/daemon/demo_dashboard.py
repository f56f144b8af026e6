"""`risk-manager demo` with the dashboard: the scripted trader runs while `risk-manager status`'s Textual app
shows the daemon live, over the same broadcast channel `risk-manager run` serves (`DashboardFeed`).

The demo's live log goes to a file (it would draw over the TUI); the dashboard's History tab shows
every enforcement and alert. Quitting the dashboard (`q`) stops the demo; when the script ends first,
the daemon keeps protecting until the dashboard is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TextIO

from risk_manager.broadcast import read_token_file
from risk_manager.daemon.daemon import Daemon
from risk_manager.daemon.dashboard_feed import DashboardFeed
from risk_manager.daemon.demo_script import Demo
from risk_manager.ui.app import DashboardApp

RunApp = Callable[[DashboardApp], Awaitable[object]]


async def _run_app(app: DashboardApp) -> None:
    await app.run_async()


class DemoWithDashboard:
    """`await DemoWithDashboard(log_out, speed).run()`: True when every scripted breach was enforced."""

    def __init__(self, out: TextIO, speed: float = 1.0, *, bell: bool = True, run_app: RunApp = _run_app) -> None:
        self.demo = Demo(out, speed)
        self.demo.on_protecting = self._show
        self.demo.stop_hint = "press q in the dashboard to stop"
        self.bell = bell
        self._run_app = run_app
        self.feed: DashboardFeed | None = None
        self.app: DashboardApp | None = None
        self._app_task: asyncio.Task[object] | None = None
        self._closed = asyncio.Event()   # the dashboard was quit (or failed)
        self._script_done = False

    async def _show(self, daemon: Daemon, workdir: Path) -> None:
        self.feed = feed = DashboardFeed(daemon, "127.0.0.1", 0, workdir / "dashboard.token")
        await feed.start()
        self.app = app = DashboardApp(feed.url, lambda: read_token_file(feed.server.token_file), bell=self.bell)
        self._app_task = asyncio.create_task(self._run_app(app), name="demo-dashboard")  # type: ignore[arg-type]
        self._app_task.add_done_callback(lambda _task: self._closed.set())

    async def _until_quit(self) -> None:
        self._script_done = True   # the summary is written: the daemon protects until the dashboard is quit
        await self._closed.wait()

    async def run(self) -> bool:
        script = asyncio.create_task(self.demo.run(self._until_quit), name="demo-script")
        quit_wait = asyncio.create_task(self._closed.wait())
        try:
            await asyncio.wait({script, quit_wait}, return_when=asyncio.FIRST_COMPLETED)
            if not script.done() and not self._script_done:   # quit mid-script: stop the demo
                script.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await script
                return False
            return await script
        finally:
            quit_wait.cancel()
            if self.feed is not None:
                await self.feed.aclose()
            if self._app_task is not None:
                if self.app is not None and not self._app_task.done():
                    self.app.exit()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._app_task
