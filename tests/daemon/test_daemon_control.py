"""`admin daemon start|status|stop` without a service manager: a real `risk-manager run` subprocess against the
simulator on 127.0.0.1, started detached, reported by its status file, stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from risk_manager.cli import admin_cmd
from risk_manager.daemon.runtime_files import pid_path
from risk_manager.sim import SimAccount, SimConfig, Simulator
from tests.daemon.admin_setup import (
    ACCOUNT,
    admin,
    admin_async,
    admin_plain,
    make_config_dir,
)
from tests.security.conftest import cheap_tuning, no_keyring

__all__ = ["cheap_tuning", "no_keyring"]

pytestmark = [pytest.mark.timeout(90), pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")]


@pytest.fixture(autouse=True)
def _quiet_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admin_cmd, "configure_logging", lambda *args, **kwargs: None)


async def test_start_status_stop_directly(tmp_path: Path, cheap_tuning: None) -> None:
    sim = Simulator(SimConfig(accounts=[SimAccount(ACCOUNT, "SIM-1001")], quote_feed="scripted"))
    await sim.start("127.0.0.1", 0)
    directory = make_config_dir(tmp_path)
    url = sim.base_url   # given with --gateway, as for a demo; config.yaml keeps its own api/signalr
    try:
        down = await asyncio.to_thread(admin_plain, directory, "daemon", "status")
        assert down.exit_code == 4 and "not running" in down.output

        started = await admin_async(directory, "daemon", "start", "--timeout", "40", "--gateway", url)
        assert started.exit_code == 0, started.output
        assert "protecting 1 account(s)" in started.output
        pid = int((pid_path(directory / "state")).read_text())

        shown = await asyncio.to_thread(admin_plain, directory, "daemon", "status")
        assert shown.exit_code == 0, shown.output
        for expected in (f"PID {pid}", "account 1001 SIM-1001: rules RULE-001, RULE-003", "user hub connected",
                         "last event:", f"database: {directory / 'state' / 'risk.db'} ("):
            assert expected in shown.output, shown.output

        again = await admin_async(directory, "daemon", "start")
        assert again.exit_code == 0 and f"already running (pid {pid})" in again.output
        second = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "risk_manager", "run", "--config", str(directory), "--gateway", url],
            capture_output=True, text=True, timeout=30, check=False)
        assert second.returncode == 1 and f"another daemon (pid {pid}) already protects" in second.stderr

        stopped = await admin_async(directory, "daemon", "stop")
        assert stopped.exit_code == 0 and f"stopped (pid {pid})" in stopped.output
        assert not pid_path(directory / "state").exists()
        after = await asyncio.to_thread(admin_plain, directory, "daemon", "status")
        assert after.exit_code == 4 and "stopped" in after.output
    finally:
        await admin_async(directory, "daemon", "stop")
        await sim.stop()
    trail = admin(directory, "audit", "--grep", "daemon.").output
    assert "daemon.start" in trail and "daemon.stop" in trail
