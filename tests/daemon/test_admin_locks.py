"""`admin lock` / `admin unlock` through the admin inbox, on the real daemon + simulator: the lock is in the
store, positions are flattened and orders cancelled; unlock only when admin.allow_manual_unlock; a command
queued while the daemon is down is applied at its start; everything audited."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from risk_manager.cli import admin_cmd
from risk_manager.daemon.admin_inbox import inbox_dir, write_command
from risk_manager.domain import SystemClock
from risk_manager.security.audit_file import current_user
from risk_manager.store import StoreReader
from tests.daemon.admin_setup import (
    ACCOUNT,
    RISK_YAML,
    admin,
    admin_async,
    make_config_dir,
    position_size,
    running_daemon,
    until,
)
from tests.security.conftest import cheap_tuning, no_keyring

__all__ = ["cheap_tuning", "no_keyring"]

pytestmark = pytest.mark.timeout(60)
UNLOCKABLE = RISK_YAML.replace("allow_manual_unlock: false", "allow_manual_unlock: true")


@pytest.fixture(autouse=True)
def _quiet_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admin_cmd, "configure_logging", lambda *args, **kwargs: None)


def _locks(directory: Path) -> list[object]:
    with StoreReader(directory / "state" / "risk.db") as reader:
        return list(reader.active_locks(ACCOUNT))


async def test_lock_flattens_cancels_and_is_stored_then_unlock_is_refused(tmp_path: Path, cheap_tuning: None) -> None:
    directory = make_config_dir(tmp_path)
    async with running_daemon(directory) as running:
        sim = running.sim
        sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=2, type="market")
        sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=1, type="limit", limit_price=19000.0)
        mirror = running.daemon.accounts[ACCOUNT].mirror
        await until(lambda: mirror.positions and mirror.open_orders, 5, "the daemon to see the position and order")

        result = await admin_async(directory, "lock", str(ACCOUNT), "--for", "1h", "--reason", "lock me out")
        assert result.exit_code == 0, result.output
        assert "Done: account 1001 locked until" in result.output
        await until(lambda: position_size(sim) == 0 and not sim.broker.open_orders(ACCOUNT), 5,
                    "the account flat with no working order")
        [stored] = _locks(directory)
        assert stored.kind == "manual" and stored.created_by == current_user()   # type: ignore[attr-defined]

        sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=1, type="limit", limit_price=19000.0)
        await until(lambda: not sim.broker.open_orders(ACCOUNT), 5, "a new order cancelled while locked")

        refused = await admin_async(directory, "unlock", str(ACCOUNT), "--reason", "I feel better")
        assert refused.exit_code == 1 and "allow_manual_unlock: false" in refused.output
        assert len(_locks(directory)) == 1
        await running.daemon.idle()
    trail = admin(directory, "audit", "--account", str(ACCOUNT)).output
    assert "admin" in trail and "lock.requested" in trail and "lock me out (for 1h)" in trail
    assert f"daemon {current_user()} lock.manual account=1001: lock me out" in trail
    assert "unlock.refused" in trail


async def test_unlock_when_allowed_and_a_lock_queued_while_down(tmp_path: Path, cheap_tuning: None) -> None:
    directory = make_config_dir(tmp_path, risk=UNLOCKABLE)
    queued = admin(directory, "lock", "SIM-1001", "--for", "2h", "--reason", "weekend")   # no daemon yet
    assert queued.exit_code == 0 and "Queued" in queued.output
    async with running_daemon(directory) as running:
        engine = running.daemon.accounts[ACCOUNT].engine
        await until(lambda: engine.locks(ACCOUNT), 2, "the queued lock applied at start")
        assert [p.name for p in (inbox_dir(directory / "state") / "done").iterdir()]
        assert len(_locks(directory)) == 1

        result = await admin_async(directory, "unlock", str(ACCOUNT), "--kind", "manual", "--reason", "coach agreed")
        assert result.exit_code == 0, result.output
        assert "1 lock(s) of kind manual cleared" in result.output
        assert not engine.locks(ACCOUNT)
        await until(lambda: not _locks(directory), 2, "the store's lock cleared")


async def test_the_daemon_refuses_a_bad_or_unknown_command(tmp_path: Path, cheap_tuning: None) -> None:
    directory = make_config_dir(tmp_path)
    async with running_daemon(directory) as running:
        state = directory / "state"
        await running.services.inbox.aclose()   # drive the inbox by hand below
        write_command(state, SystemClock(), "unlock", str(ACCOUNT), "by hand", "joe", "tty")  # allow_manual_unlock off
        write_command(state, SystemClock(), "lock", "9999", "x", "joe", "tty", duration=timedelta(hours=1))
        (inbox_dir(state) / "zz-garbage.json").write_text("{not json")
        results = await running.services.inbox.process()
        assert [r.ok for r in results] == [False, False, False]
        assert "allow_manual_unlock: false" in results[0].result
        assert "not protected by this daemon (protected: 1001 (SIM-1001))" in results[1].result
        assert "unreadable command file" in results[2].result
        assert len(list((inbox_dir(state) / "failed").iterdir())) == 3
        assert not running.daemon.accounts[ACCOUNT].engine.locks(ACCOUNT)

        at = SystemClock().now().isoformat()   # written by hand: the account as a number is fine
        (inbox_dir(state) / "hand.json").write_text(json.dumps({
            "id": "h1", "command": "lock", "account": ACCOUNT, "reason": "by hand", "who": "joe", "terminal": "tty",
            "at": at, "duration_s": 600}))
        [applied] = await running.services.inbox.process()
        assert applied.ok, applied.result
        assert running.daemon.accounts[ACCOUNT].engine.locks(ACCOUNT)
