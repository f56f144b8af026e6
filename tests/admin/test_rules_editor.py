"""Editing the risk file: comments kept, whole-file validation before writing, commitment mode, audit."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from risk_manager.admin.errors import AdminError, CommitmentRefusedError, KeyPathError, RuleNameError
from risk_manager.admin.locations import DaemonFiles
from risk_manager.admin.rules_editor import RulesEditor, active_locks
from risk_manager.admin.rules_file import RulesDocument, parse_value, rule_key
from risk_manager.domain import VirtualClock
from risk_manager.engine.errors import ConfigError
from risk_manager.security.audit_file import AuditFile
from risk_manager.store import LockRecord, Store, StoreError
from tests.admin.conftest import RISK_YAML


@pytest.fixture
def risk_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "cfg"
    directory.mkdir(mode=0o700)
    (directory / "risk.yaml").write_text(RISK_YAML, encoding="utf-8")
    return directory


@pytest.fixture
def editor(risk_dir: Path, clock: VirtualClock) -> RulesEditor:
    return RulesEditor(DaemonFiles.resolve(risk_dir), AuditFile(risk_dir / "admin-audit.jsonl", clock), clock)


def audit_lines(risk_dir: Path) -> list[dict[str, str]]:
    path = risk_dir / "admin-audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def edit(editor: RulesEditor, rule: str, key: str, value: str, reason: str = "") -> None:
    document = editor.load()
    document.set(rule, key, parse_value(value))
    editor.commit(document, "rules.set", reason)


def test_set_keeps_every_comment_and_changes_one_line(editor: RulesEditor, risk_dir: Path) -> None:
    edit(editor, "daily_realized_loss", "loss_limit", "400", "bad week")
    text = (risk_dir / "risk.yaml").read_text()
    assert text == RISK_YAML.replace("loss_limit: 500   #", "loss_limit: 400   #")
    assert (risk_dir / "risk.yaml").stat().st_mode & 0o777 == 0o600
    [entry] = audit_lines(risk_dir)
    assert entry["what"] == "rules.set"
    assert entry["why"] == "rules.daily_realized_loss.loss_limit: 500 → 400 (reason: bad week)"
    assert entry["who"] and entry["terminal"] and entry["at"].startswith("2026-03-03T15:00")


def test_enable_disable_round_trip_is_byte_identical(editor: RulesEditor, risk_dir: Path) -> None:
    for enabled in (False, True):
        document = editor.load()
        document.enable("RULE-011", enabled)
        editor.commit(document, "rules.enable" if enabled else "rules.disable")
    assert (risk_dir / "risk.yaml").read_text() == RISK_YAML
    assert [e["what"] for e in audit_lines(risk_dir)] == ["rules.disable", "rules.enable"]


def test_nested_keys_new_blocks_and_list_items(editor: RulesEditor, risk_dir: Path) -> None:
    edit(editor, "trade_frequency_limit", "cooldowns.per_hour", "45m")
    edit(editor, "symbol_blocks", "blocked.0", "ES")
    edit(editor, "max_contracts_per_instrument", "limits.MNQ", "2")
    text = (risk_dir / "risk.yaml").read_text()
    assert "# Joe's rules" in text and "# too wild" in text
    config = editor.load().config
    assert config.rules.trade_frequency_limit.cooldowns.per_hour == timedelta(minutes=45)
    assert config.rules.symbol_blocks.blocked == ["ES", "CL*"]
    assert config.rules.max_contracts_per_instrument.limits == {"MNQ": 2}


@pytest.mark.parametrize(("rule", "key", "value", "named", "allowed"), [
    ("daily_realized_loss", "loss_limit", "-5", "rules.daily_realized_loss.loss_limit", "greater than 0"),
    ("daily_realized_loss", "los_limit", "400", "rules.daily_realized_loss.los_limit", "allowed here:"),
    ("max_contracts", "count_type", "sum", "rules.max_contracts.count_type", "'gross' or 'net'"),
    ("max_contracts_per_instrument", "limits.MNQ", "9", "rules.max_contracts_per_instrument.limits.MNQ",
     "above the account-wide max_contracts.limit (4)"),
    ("no_stop_loss_grace", "grace", "soon", "rules.no_stop_loss_grace.grace", "duration like 30s"),
])
def test_an_invalid_change_writes_nothing_and_names_the_key(editor: RulesEditor, risk_dir: Path, rule: str,
                                                            key: str, value: str, named: str, allowed: str) -> None:
    before = (risk_dir / "risk.yaml").read_bytes()
    document = editor.load()
    if rule == "max_contracts_per_instrument":
        document.set(rule, "enabled", True)
    document.set(rule, key, parse_value(value))
    with pytest.raises(ConfigError) as caught:
        editor.commit(document, "rules.set")
    message = str(caught.value)
    assert str(risk_dir / "risk.yaml") in message and named in message and allowed in message
    assert (risk_dir / "risk.yaml").read_bytes() == before
    assert audit_lines(risk_dir) == []


def test_a_missing_file_is_created_private(tmp_path: Path, clock: VirtualClock) -> None:
    directory = tmp_path / "fresh"
    directory.mkdir()
    editor = RulesEditor(DaemonFiles.resolve(directory), AuditFile(directory / "audit.jsonl", clock), clock)
    document = editor.load()
    document.set("daily_realized_loss", "loss_limit", 300)
    document.enable("daily_realized_loss", True)
    result = editor.commit(document, "rules.set")
    assert result.written
    assert (directory / "risk.yaml").stat().st_mode & 0o777 == 0o600
    assert editor.load().config.rules.daily_realized_loss.loss_limit == 300


def test_names_and_paths_are_checked() -> None:
    assert rule_key("RULE-003") == rule_key("daily-realized-loss") == "daily_realized_loss"
    with pytest.raises(RuleNameError, match=r"no rule named 'daily_loss'.*daily_realized_loss"):
        rule_key("daily_loss")
    document = RulesDocument(Path("risk.yaml"), RISK_YAML)
    with pytest.raises(KeyPathError, match=r"rules\.daily_realized_loss\.loss_limit is a single value"):
        document.set("daily_realized_loss", "loss_limit.x", 1)
    with pytest.raises(KeyPathError, match="not an item of this list"):
        document.set("symbol_blocks", "blocked.7", "ES")


def test_no_change_writes_nothing(editor: RulesEditor, risk_dir: Path) -> None:
    document = editor.load()
    document.set("daily_realized_loss", "loss_limit", 500)
    assert not editor.commit(document, "rules.set").written
    assert audit_lines(risk_dir) == []


def test_a_file_changed_meanwhile_is_not_overwritten(editor: RulesEditor, risk_dir: Path) -> None:
    document = editor.load()
    document.set("daily_realized_loss", "loss_limit", 450)
    (risk_dir / "risk.yaml").write_text(RISK_YAML + "# edited by hand\n")
    with pytest.raises(Exception, match="changed by someone else"):
        editor.commit(document, "rules.set")
    assert (risk_dir / "risk.yaml").read_text().endswith("# edited by hand\n")


# --- commitment mode -------------------------------------------------------------------------------------

async def store_with_lock(path: Path, clock: VirtualClock, *, until: timedelta | None = timedelta(hours=2)) -> None:
    store = await Store.open(path, clock)
    try:
        await store.add_lock(LockRecord(id="lock-1", account_id=704, kind="until_reset",
                                        reason="daily realized loss -512.00 reached -500", start=clock.now(),
                                        until=None if until is None else clock.now() + until,
                                        rules=("daily_realized_loss",)))
    finally:
        await store.close()


def committed(risk_dir: Path) -> None:
    path = risk_dir / "risk.yaml"
    path.write_text(RISK_YAML + "admin:\n  commitment_mode: true\n")


async def test_commitment_mode_refuses_a_loosening_while_locked(editor: RulesEditor, risk_dir: Path,
                                                                clock: VirtualClock) -> None:
    committed(risk_dir)
    await store_with_lock(risk_dir / "state" / "risk.db", clock)
    before = (risk_dir / "risk.yaml").read_bytes()
    for rule, key, value in (("daily_realized_loss", "loss_limit", "600"), ("symbol_blocks", "enabled", "false"),
                             ("admin", "commitment_mode", "false"), ("symbol_blocks", "blocked", "[CL*]")):
        with pytest.raises(CommitmentRefusedError) as caught:
            edit(editor, rule, key, value)
        message = str(caught.value)
        assert "commitment mode is on" in message and "account 704 is locked by daily_realized_loss" in message
        assert "until_reset" in message and "17:00 America/Chicago" in message and "Nothing was written" in message
        assert (risk_dir / "risk.yaml").read_bytes() == before
    assert [e["what"] for e in audit_lines(risk_dir)] == ["rules.refused"] * 4
    # tightening is always allowed
    edit(editor, "daily_realized_loss", "loss_limit", "300", "after the lock")
    assert editor.load().config.rules.daily_realized_loss.loss_limit == 300
    assert audit_lines(risk_dir)[-1]["what"] == "rules.set"


async def test_commitment_mode_allows_loosening_without_an_active_lock(editor: RulesEditor, risk_dir: Path,
                                                                       clock: VirtualClock) -> None:
    committed(risk_dir)
    edit(editor, "daily_realized_loss", "loss_limit", "600")  # no store at all
    await store_with_lock(risk_dir / "state" / "risk.db", clock, until=timedelta(minutes=5))
    assert len(active_locks(risk_dir / "state" / "risk.db", clock)) == 1
    clock.advance(timedelta(minutes=6))  # the cooldown has ended
    assert active_locks(risk_dir / "state" / "risk.db", clock) == []
    edit(editor, "daily_realized_loss", "loss_limit", "700")
    assert editor.load().config.rules.daily_realized_loss.loss_limit == 700


async def test_without_commitment_mode_a_loosening_passes_while_locked(editor: RulesEditor, risk_dir: Path,
                                                                       clock: VirtualClock) -> None:
    await store_with_lock(risk_dir / "state" / "risk.db", clock, until=None)
    edit(editor, "daily_realized_loss", "loss_limit", "900")
    assert editor.load().config.rules.daily_realized_loss.loss_limit == 900


async def test_the_database_path_comes_from_config_yaml(risk_dir: Path, clock: VirtualClock) -> None:
    (risk_dir / "config.yaml").write_text("database:\n  path: data/other.db\nrisk_file: rules/mine.yaml\n")
    files = DaemonFiles.resolve(risk_dir)
    assert files.database == risk_dir / "data" / "other.db"
    assert files.risk_file == risk_dir / "rules" / "mine.yaml"


def test_an_item_of_a_list_that_is_not_in_the_file_is_refused_with_a_hint() -> None:
    document = RulesDocument(Path("risk.yaml"), RISK_YAML)
    with pytest.raises(KeyPathError, match=r"sessions is not in the file.*set the whole list"):
        document.set("session_block_outside", "sessions.0.end", "14:00")


def test_an_unreadable_store_fails_closed(risk_dir: Path, clock: VirtualClock) -> None:
    database = risk_dir / "state" / "risk.db"
    database.parent.mkdir()
    database.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError):
        active_locks(database, clock)


def test_a_broken_file_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "risk.yaml"
    path.write_text(RISK_YAML + "rules: [\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line 16, column 1"):
        RulesDocument.load(path)


def test_an_unwritable_place_is_a_clear_error(tmp_path: Path, clock: VirtualClock) -> None:
    files = DaemonFiles.resolve(tmp_path, rules=tmp_path / "missing-dir" / "risk.yaml")
    editor = RulesEditor(files, AuditFile(tmp_path / "audit.jsonl", clock), clock)
    document = editor.load()
    document.set("daily_realized_loss", "loss_limit", 300)
    with pytest.raises(AdminError, match=r"cannot write .*missing-dir/risk\.yaml.*nothing was changed"):
        editor.commit(document, "rules.set")
    assert not (tmp_path / "audit.jsonl").exists()
