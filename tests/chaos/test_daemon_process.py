"""The daemon in a child process (kill mode): typed errors across the control channel, a real SIGKILL."""

from __future__ import annotations

import logging
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from risk_manager.chaos.daemon_process import ProcessDaemon
from risk_manager.daemon.config_dir import AccountSpec, Credential
from risk_manager.daemon.daemon import DaemonOptions, DaemonStartError
from risk_manager.domain import VirtualClock
from risk_manager.engine import parse_rules_block
from risk_manager.gateway import GatewayConfig, MemoryTokenStore
from risk_manager.replay.runner import REPLAY_GATEWAY_OVERRIDES, ReplayError
from risk_manager.sim import SimAccount, SimConfig, Simulator

START = datetime(2026, 3, 3, 15, tzinfo=UTC)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    """A simulator without the account the daemon asks for: its start-up fails at once."""
    simulator = Simulator(SimConfig(accounts=[SimAccount(2002, "OTHER", 50_000.0, True)], quote_feed="scripted",
                                    clock=VirtualClock(START)))
    await simulator.start("127.0.0.1", 0)
    yield simulator
    await simulator.stop()


def _options(sim: Simulator, tmp_path: Path) -> DaemonOptions:
    gateway = GatewayConfig.for_server(sim.base_url, REPLAY_GATEWAY_OVERRIDES)
    account = AccountSpec(1001, None, Credential("replay", "replay", "replay-api-key"), parse_rules_block({}, "test"))
    return DaemonOptions(gateway=gateway, accounts=(account,), database_path=tmp_path / "risk.db",
                         clock=VirtualClock(START), run_timers=False, durable_fsync=False,
                         token_store=MemoryTokenStore)


async def test_a_start_error_in_the_child_arrives_typed_and_the_child_exits_cleanly(
        sim: Simulator, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="risk_manager")
    daemon = ProcessDaemon(_options(sim, tmp_path))
    with pytest.raises(DaemonStartError, match="1001"):
        await daemon.start()          # the broker has no account 1001
    await daemon.aclose()
    assert daemon.process is not None and daemon.process.exitcode == 0


async def test_calls_after_a_kill_say_the_daemon_is_gone(sim: Simulator, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="risk_manager")
    daemon = ProcessDaemon(_options(sim, tmp_path))
    with pytest.raises(DaemonStartError):
        await daemon.start()
    daemon.kill()
    await daemon.wait_dead()
    assert daemon.process is not None and daemon.process.exitcode == -signal.SIGKILL
    with pytest.raises(ReplayError, match="gone"):
        await daemon.next_deadline()
    await daemon.aclose()
