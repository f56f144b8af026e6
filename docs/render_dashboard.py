"""Render docs/img/dashboard.svg: the dashboard itself, headless, during a RULE-003 breach.

    .venv/bin/python docs/render_dashboard.py [OUT.svg]

A real engine on a virtual clock (the tests' desk: tests/broadcast/desk.py) publishes on a real
broadcast server on 127.0.0.1; the app connects with the token file and saves its own screenshot.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.broadcast.desk import Desk  # noqa: E402  (the repository's tests package)

from risk_manager.broadcast import read_token_file  # noqa: E402
from risk_manager.ui.app import DashboardApp  # noqa: E402

SIZE = (120, 34)


async def render() -> str:
    """The screenshot as SVG text."""
    with tempfile.TemporaryDirectory() as tmp:
        desk = await Desk(Path(tmp) / "dashboard.token").start()
        try:
            desk.open_long(2)
            desk.publish()
            app = DashboardApp(desk.url, lambda: read_token_file(desk.server.token_file), bell=False)
            async with app.run_test(size=SIZE) as pilot:
                while app.account is None:
                    await pilot.pause(0.01)
                desk.lose(-600.0)  # a losing fill past the $500 daily limit: lock, flatten, cancel
                desk.publish()
                while not app.account or not app.account.locks:
                    await pilot.pause(0.01)
                await pilot.pause(0.1)
                svg = app.export_screenshot(title="risk-manager status — RULE-003 breached")
        finally:
            await desk.server.aclose()
    return svg


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "img" / "dashboard.svg"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(asyncio.run(render()), encoding="utf-8")
    print(f"wrote {target}")
