"""Live reload on the real daemon + simulator: `admin rules set` tightens a rule and the running daemon
applies and enforces it within 1 s; an invalid edit is rejected without interrupting enforcement; a
loosening while locked is refused in commitment mode, hand edits included."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

from risk_manager.cli import admin_cmd
from risk_manager.engine import ManualLock
from tests.daemon.admin_setup import (
    ACCOUNT,
    ACCOUNTS_YAML,
    RISK_YAML,
    admin,
    admin_async,
    make_config_dir,
    position_size,
    running_daemon,
    until,
    write_private,
)
from tests.security.conftest import cheap_tuning, no_keyring

__all__ = ["cheap_tuning", "no_keyring"]

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def _quiet_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admin_cmd, "configure_logging", lambda *args, **kwargs: None)


def _limit(running: object) -> int | None:
    return running.daemon.accounts[ACCOUNT].engine.config.rules.max_contracts.limit  # type: ignore[attr-defined]


async def test_rules_set_is_applied_within_a_second_and_enforced(tmp_path: Path, cheap_tuning: None) -> None:
    directory = make_config_dir(tmp_path)
    async with running_daemon(directory) as running:
        running.sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=3, type="market")
        await until(lambda: running.daemon.accounts[ACCOUNT].mirror.positions, 5, "the daemon to see the position")
        assert _limit(running) == 4

        result = await admin_async(directory, "rules", "set", "max_contracts", "limit", "1", "--reason", "red week")
        saved = time.monotonic()
        assert result.exit_code == 0, result.output
        await until(lambda: _limit(running) == 1, 1.0, "the daemon to apply the new limit")
        assert time.monotonic() - saved < 1.0
        await until(lambda: position_size(running.sim) <= 1, 5, "the position reduced to the new limit")
        await until(lambda: running.services.reload.results, 1, "the reload result")
        assert running.services.reload.results[-1].applied == [ACCOUNT]
        await running.daemon.idle()
    trail = admin(directory, "audit").output
    assert "daemon live-reload rules.reloaded account=1001: rules.max_contracts.limit: 4 → 1" in trail


async def test_an_invalid_edit_is_rejected_and_enforcement_goes_on(tmp_path: Path, cheap_tuning: None,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    directory = make_config_dir(tmp_path)
    async with running_daemon(directory) as running:
        write_private(directory / "risk.yaml", RISK_YAML.replace("limit: 4", "limit: -1"))
        await until(lambda: running.services.reload.results, 2, "the reload attempt")
        rejected = running.services.reload.results[-1].rejected
        assert rejected is not None and "rules.max_contracts.limit" in rejected
        assert _limit(running) == 4   # the old rules stay in force
        assert "risk_reload_rejected" in caplog.text and "keeping the rules in force" in caplog.text

        running.sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=6, type="market")
        await until(lambda: position_size(running.sim) <= 4, 5, "the old limit enforced")

        write_private(directory / "risk.yaml", RISK_YAML.replace("limit: 4", "limit: 3"))   # fixed: applied
        await until(lambda: _limit(running) == 3, 1.0, "the corrected file applied")
        await until(lambda: position_size(running.sim) <= 3, 5, "the new limit enforced")


async def test_commitment_mode_refuses_a_loosening_while_locked(tmp_path: Path, cheap_tuning: None,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    committed = RISK_YAML.replace("admin: {allow_manual_unlock: false}",
                                  "admin: {allow_manual_unlock: false, commitment_mode: true}")
    directory = make_config_dir(tmp_path, risk=committed)
    async with running_daemon(directory) as running:
        done = running.daemon.submit_command(ManualLock(ACCOUNT, timedelta(hours=1), reason="lock me out"))
        assert done is not None
        await done
        await running.daemon.idle()

        # a hand edit (the editor would refuse it too) that raises the loss limit
        write_private(directory / "risk.yaml", committed.replace("loss_limit: 500", "loss_limit: 900"))
        await until(lambda: running.services.reload.results, 2, "the reload attempt")
        assert running.services.reload.results[-1].refused
        rules = running.daemon.accounts[ACCOUNT].engine.config.rules
        assert rules.daily_realized_loss.loss_limit == 500
        assert "risk_reload_refused" in caplog.text

        # tightening is always allowed
        write_private(directory / "risk.yaml", committed.replace("loss_limit: 500", "loss_limit: 400"))
        await until(lambda: running.daemon.accounts[ACCOUNT].engine.config.rules.daily_realized_loss.loss_limit
                    == 400, 1.0, "the tightening applied")

        # and the CLI refuses the loosening before writing anything
        result = await admin_async(directory, "rules", "set", "daily_realized_loss", "loss_limit", "900")
        assert result.exit_code == 1 and "commitment mode is on" in result.output
        await running.daemon.idle()
    trail = admin(directory, "audit", "--grep", "rules.reload_refused").output
    assert "loss limit raised 500 → 900" in trail


async def test_turning_rule_10_off_and_on_moves_its_poll(tmp_path: Path, cheap_tuning: None) -> None:
    guarded = RISK_YAML.replace("rules:\n", "rules:\n  auth_loss_guard: {enabled: true, check_interval: 30s}\n")
    directory = make_config_dir(tmp_path, risk=guarded)
    async with running_daemon(directory) as running:
        daemon = running.daemon
        assert daemon._next_account_poll is not None
        write_private(directory / "risk.yaml", RISK_YAML)   # RULE-010 off: no poll deadline may stay behind
        await until(lambda: daemon._next_account_poll is None, 1.0, "the poll deadline dropped")
        deadline = daemon.next_deadline()
        assert deadline is None or deadline > daemon.clock.now()
        write_private(directory / "risk.yaml", guarded.replace("30s", "5s"))
        await until(lambda: daemon._next_account_poll is not None, 1.0, "the poll scheduled again")
        assert (daemon._next_account_poll - daemon.clock.now()).total_seconds() <= 5.0


async def test_a_per_account_override_in_accounts_yaml_is_merged_and_applied(tmp_path: Path,
                                                                             cheap_tuning: None) -> None:
    directory = make_config_dir(tmp_path)
    async with running_daemon(directory) as running:
        override = ACCOUNTS_YAML.replace(f"{{id: {ACCOUNT}}}",
                                         f"{{id: {ACCOUNT}, rules: {{max_contracts: {{limit: 2}}}}}}")
        write_private(directory / "accounts.yaml", override)
        await until(lambda: _limit(running) == 2, 1.0, "the override applied")
        rules = running.daemon.accounts[ACCOUNT].engine.config.rules
        assert rules.daily_realized_loss.loss_limit == 500   # the rest of risk.yaml still merged in
        write_private(directory / "risk.yaml", RISK_YAML.replace("loss_limit: 500", "loss_limit: 450"))
        await until(lambda: running.daemon.accounts[ACCOUNT].engine.config.rules.daily_realized_loss.loss_limit
                    == 450, 1.0, "the risk file change merged under the override")
        assert _limit(running) == 2
