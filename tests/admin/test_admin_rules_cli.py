"""`risk-manager admin rules|logs|audit` end to end through typer's CliRunner (secrets on stdin)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from risk_manager.domain import VirtualClock
from risk_manager.service.logfiles import ENFORCEMENT_LOGGER, LogFilesConfig, install_log_files
from risk_manager.store import EnforcementRecord, LockRecord, Store
from tests.admin.conftest import RISK_YAML, admin
from tests.security.conftest import ADMIN_PW

PW = f"{ADMIN_PW}\n"


def audit_whats(config_dir: Path) -> list[str]:
    return [json.loads(line)["what"] for line in (config_dir / "admin-audit.jsonl").read_text().splitlines()]


def test_list_and_show(config_dir: Path) -> None:
    listed = admin(config_dir, PW, "rules", "list")
    assert listed.exit_code == 0, listed.output
    assert "daily_realized_loss" in listed.stdout and "loss_limit=500" in listed.stdout
    assert "RULE-014" in listed.stdout and "commitment mode: off" in listed.stdout
    shown = admin(config_dir, PW, "rules", "show", "RULE-003")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines() == ["daily_realized_loss:", "  enabled: true", "  warn_at: null",
                                         "  loss_limit: 500.0", "  include_unrealized: true", "  include_fees: true"]


def test_set_enable_disable_keep_comments_and_are_audited(config_dir: Path) -> None:
    result = admin(config_dir, PW, "rules", "set", "daily_realized_loss", "loss_limit", "400", "--reason", "bad week")
    assert result.exit_code == 0, result.output
    assert "rules.daily_realized_loss.loss_limit: 500 → 400" in result.stdout and "Saved" in result.stdout
    assert admin(config_dir, PW, "rules", "disable", "symbol_blocks").exit_code == 0
    assert admin(config_dir, PW, "rules", "enable", "symbol_blocks").exit_code == 0
    text = (config_dir / "risk.yaml").read_text()
    assert text == RISK_YAML.replace("loss_limit: 500   #", "loss_limit: 400   #")
    assert audit_whats(config_dir)[-3:] == ["rules.set", "rules.disable", "rules.enable"]


def test_invalid_value_leaves_the_file_and_names_the_key(config_dir: Path) -> None:
    before = (config_dir / "risk.yaml").read_bytes()
    result = admin(config_dir, PW, "rules", "set", "max_contracts", "count_type", "sum")
    assert result.exit_code == 1
    assert "rules.max_contracts.count_type" in result.stderr and "'gross' or 'net'" in result.stderr
    enabling = admin(config_dir, PW, "rules", "enable", "daily_unrealized_loss")
    assert enabling.exit_code == 1 and "loss_limit is required when the rule is enabled" in enabling.stderr
    unknown = admin(config_dir, PW, "rules", "set", "daily_loss", "limit", "3")
    assert unknown.exit_code == 1 and "no rule named 'daily_loss'" in unknown.stderr
    assert (config_dir / "risk.yaml").read_bytes() == before


def test_wrong_password_is_refused_and_nothing_changes(config_dir: Path) -> None:
    before = (config_dir / "risk.yaml").read_bytes()
    result = admin(config_dir, "not-the-password\n", "rules", "set", "daily_realized_loss", "loss_limit", "5000")
    assert result.exit_code == 3
    assert "wrong admin password; 4 more wrong attempt(s)" in result.stderr
    assert (config_dir / "risk.yaml").read_bytes() == before
    for args in (("rules", "list"), ("logs",), ("audit",)):
        assert admin(config_dir, "nope-nope-nope\n", *args).exit_code == 3
    assert audit_whats(config_dir).count("admin.password_failed") == 4


async def test_commitment_mode_through_the_cli(config_dir: Path) -> None:
    assert admin(config_dir, PW, "rules", "set", "admin", "commitment_mode", "true").exit_code == 0
    clock = VirtualClock(datetime.now(UTC))
    store = await Store.open(config_dir / "state" / "risk.db", clock)
    await store.add_lock(LockRecord(id="l1", account_id=704, kind="until_reset", reason="loss limit",
                                    start=clock.now(), until=clock.now() + timedelta(hours=3),
                                    rules=("daily_realized_loss",)))
    await store.close()
    refused = admin(config_dir, PW, "rules", "disable", "daily_realized_loss", "--reason", "revenge")
    assert refused.exit_code == 1
    assert "commitment mode is on and account 704 is locked by daily_realized_loss" in refused.stderr
    assert "rules.daily_realized_loss.enabled: rule turned off" in refused.stderr
    tightened = admin(config_dir, PW, "rules", "set", "daily_realized_loss", "loss_limit", "250")
    assert tightened.exit_code == 0, tightened.output
    assert audit_whats(config_dir)[-2:] == ["rules.refused", "rules.set"]


def test_interactive_menu(config_dir: Path) -> None:
    answers = "\n".join([ADMIN_PW, "3", "loss_limit", "-1", "loss_limit", "350", "", "s", "y", "coach said so"]) + "\n"
    result = admin(config_dir, answers, "rules", "edit")
    assert result.exit_code == 0, result.output
    assert "not applied" in result.stdout and "greater than 0" in result.stdout
    assert "rules.daily_realized_loss.loss_limit: 500 → 350" in result.stdout
    assert "loss_limit: 350   # dollars" in (config_dir / "risk.yaml").read_text()
    entry = json.loads((config_dir / "admin-audit.jsonl").read_text().splitlines()[-1])
    assert entry["what"] == "rules.edit" and entry["why"].endswith("(reason: coach said so)")
    quit_ = admin(config_dir, "\n".join([ADMIN_PW, "daily_realized_loss", "loss_limit", "900", "", "q"]) + "\n",
                  "rules", "edit")
    assert quit_.exit_code == 0 and "Nothing saved" in quit_.stdout
    assert "loss_limit: 350" in (config_dir / "risk.yaml").read_text()


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    """The three log files written by the daemon's real handlers."""
    directory = tmp_path / "logs"
    files = install_log_files(LogFilesConfig(directory=directory, level="DEBUG"))
    assert files is not None
    root, enforcement = logging.getLogger("risk_manager.daemon"), logging.getLogger(ENFORCEMENT_LOGGER)
    previous = logging.getLogger().level
    logging.getLogger().setLevel(logging.DEBUG)
    try:
        root.debug("tick_seen n=1")
        root.info("daemon_started accounts=1")
        root.warning("hub_reconnecting hub=user attempt=2")
        enforcement.info("enforcement_done account=704 action=flatten outcome=verified")
        root.error("order_rejected account=704 reason=risk")
    finally:
        logging.getLogger().setLevel(previous)
        files.close()
    return directory


def test_logs_filters(config_dir: Path, log_dir: Path) -> None:
    def logs(*args: str) -> list[str]:
        result = admin(config_dir, PW, "logs", "--log-dir", str(log_dir), *args)
        assert result.exit_code == 0, result.output
        return result.stdout.splitlines()

    everything = logs()
    assert [line.split(" ")[3] for line in everything] == ["tick_seen", "daemon_started", "hub_reconnecting",
                                                           "enforcement_done", "order_rejected"]
    assert [line.split(" ")[1] for line in logs("--level", "warning")] == ["WARNING", "ERROR"]
    assert [line.split(" ")[1] for line in logs("--level", "INFO")] == ["INFO", "WARNING", "INFO", "ERROR"]
    assert [line.split(" ")[3] for line in logs("--tail", "2")] == ["enforcement_done", "order_rejected"]
    assert [line.split(" ")[3] for line in logs("--grep", "ACCOUNT=704")] == ["enforcement_done", "order_rejected"]
    assert [line.split(" ")[3] for line in logs("--file", "enforcement")] == ["enforcement_done"]
    assert [line.split(" ")[3] for line in logs("--file", "errors")] == ["hub_reconnecting", "order_rejected"]
    bad = admin(config_dir, PW, "logs", "--log-dir", str(log_dir), "--level", "LOUD")
    assert bad.exit_code == 1 and "unknown level 'LOUD'" in bad.stderr
    missing = admin(config_dir, PW, "logs", "--log-dir", str(log_dir / "nowhere"))
    assert missing.exit_code == 1 and "no log file" in missing.stderr


async def test_audit_merges_admin_file_store_audit_and_enforcement(config_dir: Path) -> None:
    admin(config_dir, PW, "rules", "set", "daily_realized_loss", "loss_limit", "450", "--reason", "tighter")
    now = datetime.now(UTC)
    clock = VirtualClock(now - timedelta(hours=1))
    store = await Store.open(config_dir / "state" / "risk.db", clock)
    await store.audit("joe", "lock.manual", "lock me out", "/dev/pts/1", account_id=704)
    store.log_enforcement(EnforcementRecord("k1", 704, {"kind": "flatten_account"}, ("daily_realized_loss",),
                                            clock.now(), clock.now() + timedelta(milliseconds=180), "verified"))
    await store.close()

    result = admin(config_dir, PW, "audit")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    sources = [line.split(" ")[3] for line in lines]
    assert sources == ["daemon", "enforcement", "admin", "admin"]  # the store's are an hour older
    assert "daemon joe lock.manual account=704: lock me out [/dev/pts/1]" in result.stdout
    assert "enforcement daily_realized_loss enforcement.flatten_account account=704: verified in 180 ms" \
        in result.stdout
    times = [line[:19] for line in lines]
    assert times == sorted(times)
    only = admin(config_dir, PW, "audit", "--account", "704", "--grep", "flatten")
    assert only.exit_code == 0 and len(only.stdout.splitlines()) == 1
    recent = admin(config_dir, PW, "audit", "--since", "30m", "--grep", "rules.set")
    assert recent.exit_code == 0 and "500 → 450 (reason: tighter)" in recent.stdout
    assert "lock.manual" not in recent.stdout
    bad = admin(config_dir, PW, "audit", "--since", "yesterday-ish")
    assert bad.exit_code == 1 and "--since 'yesterday-ish'" in bad.stderr


def test_unset_brings_the_default_back(config_dir: Path) -> None:
    result = admin(config_dir, PW, "rules", "unset", "max_contracts", "limit")
    assert result.exit_code == 1  # max_contracts is enabled: its limit is required
    assert "rules.max_contracts: limit is required when the rule is enabled" in result.stderr
    assert admin(config_dir, PW, "rules", "set", "max_contracts", "count_type", "net").exit_code == 0
    unset = admin(config_dir, PW, "rules", "unset", "max_contracts", "count_type", "--reason", "back to gross")
    assert unset.exit_code == 0, unset.output
    assert "rules.max_contracts.count_type: net → gross" in unset.stdout
    assert (config_dir / "risk.yaml").read_text() == RISK_YAML
    again = admin(config_dir, PW, "rules", "unset", "max_contracts", "count_type")
    assert again.exit_code == 1 and "does not set rules.max_contracts.count_type" in again.stderr
    assert audit_whats(config_dir)[-2:] == ["rules.set", "rules.unset"]
