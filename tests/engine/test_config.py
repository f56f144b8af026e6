"""Config schema, loader (${ENV}, errors naming file and key) and the `config` CLI group."""

from __future__ import annotations

import json
from datetime import time, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from risk_manager.cli.app import app
from risk_manager.engine.config import RiskConfig, format_duration, parse_duration
from risk_manager.engine.config_loader import load_risk_config, parse_rules_block
from risk_manager.engine.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "risk.example.yaml"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "risk.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_follow_the_spec() -> None:
    config = RiskConfig()
    assert config.timezone == "America/Chicago"
    assert config.daily_reset.time == time(17, 0)
    assert config.admin.allow_manual_unlock is True
    assert config.rules.enabled_ids() == []
    rules = config.rules
    assert rules.max_contracts.count_type == "gross" and rules.max_contracts.action == "reduce_to_limit"
    assert rules.daily_realized_loss.include_unrealized and rules.daily_realized_loss.include_fees
    assert rules.trade_frequency_limit.cooldowns.per_hour == timedelta(minutes=30)
    assert rules.no_stop_loss_grace.grace == timedelta(seconds=30)
    assert rules.session_block_outside.sessions[0].start == time(8, 30)
    assert rules.auth_loss_guard.check_interval == timedelta(seconds=30)
    assert rules.cooldown_after_loss.consecutive_cooldown == timedelta(minutes=15)


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("15m", 900), ("1h", 3600), ("1h30m", 5400),
                                               ("500ms", 0.5), (45, 45)])
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds
    assert parse_duration(format_duration(parse_duration(text))).total_seconds() == seconds


@pytest.mark.parametrize("bad", ["30", "1x", "-5s", "", "s", True])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_env_substitution_and_unquoted_yaml_time(tmp_path: Path) -> None:
    path = _write(tmp_path, "daily_reset: {time: 16:00}\nrules:\n"
                            "  daily_realized_loss: {enabled: true, loss_limit: '${LIMIT}'}\n"
                            "  daily_realized_profit: {enabled: true, target: '${TARGET:-750}'}\n")
    config = load_risk_config(path, environ={"LIMIT": "450"})
    assert config.rules.daily_realized_loss.loss_limit == 450
    assert config.rules.daily_realized_profit.target == 750
    assert config.daily_reset.time == time(16, 0)
    with pytest.raises(ConfigError) as info:
        load_risk_config(path, environ={})
    assert info.value.key_path == "rules.daily_realized_loss.loss_limit"
    assert "LIMIT" in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize(("yaml_text", "key_path", "fragment"), [
    ("rules: {daily_realized_los: {enabled: true}}", "rules.daily_realized_los", "allowed here"),
    ("rules: {daily_realized_loss: {enabled: true}}", "rules.daily_realized_loss", "loss_limit is required"),
    ("rules: {daily_realized_loss: {enabled: true, loss_limit: -5}}", "rules.daily_realized_loss.loss_limit",
     "greater than 0"),
    ("rules: {daily_realized_loss: {enabled: true, loss_limit: 5, warn_at: 1.2}}",
     "rules.daily_realized_loss.warn_at", "less than 1"),
    ("rules: {symbol_blocks: {enabled: true, warn_at: 0.5}}", "rules.symbol_blocks.warn_at", "no numeric limit"),
    ("rules: {max_contracts: {enabled: true, limit: 2}, max_contracts_per_instrument: "
     "{enabled: true, limits: {mnq: 3}}}", "rules.max_contracts_per_instrument.limits.MNQ", "account-wide"),
    ("rules: {cooldown_after_loss: {enabled: true, tiers: [{loss: 200, cooldown: 5m}, {loss: 100, cooldown: 9m}]}}",
     "rules.cooldown_after_loss.tiers[1].loss", "ascending"),
    ("rules: {session_block_outside: {enabled: true, sessions: [{start: '25:00', end: '15:00'}]}}",
     "rules.session_block_outside.sessions[0].start", "HH:MM"),
    ("rules: {session_block_outside: {enabled: true, sessions: [{start: '08:00', end: '15:00', "
     "timezone: Mars/Olympus}]}}", "rules.session_block_outside.sessions[0].timezone", "unknown time zone"),
    ("rules: {max_contracts: {enabled: true, limit: 2, count_type: total}}", "rules.max_contracts.count_type",
     "allowed values"),
    ("rules: {trade_management: {enabled: true, auto_stop: {ticks: 8, after: 40s}}, "
     "no_stop_loss_grace: {enabled: true}}", "rules.trade_management.auto_stop.after", "shorter than"),
    ("timezone: Nowhere/City", "timezone", "unknown time zone"),
    ("daily_reset: {time: '7pm'}", "daily_reset.time", "HH:MM"),
    ("- a list", "", "mapping"),
    ("rules: {a: [1,", "", "not valid YAML"),
])
def test_errors_name_the_key(tmp_path: Path, yaml_text: str, key_path: str, fragment: str) -> None:
    path = _write(tmp_path, yaml_text)
    with pytest.raises(ConfigError) as info:
        load_risk_config(path)
    assert info.value.key_path == key_path
    assert fragment in str(info.value)
    assert info.value.file == str(path)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_risk_config(tmp_path / "nope.yaml")


def test_scenario_rules_block() -> None:
    config = parse_rules_block({"daily_realized_loss": {"enabled": True, "loss_limit": 500}})
    assert config.rules.enabled_ids() == ["RULE-003"]
    assert config == RiskConfig(rules={"daily_realized_loss": {"enabled": True, "loss_limit": 500}})  # type: ignore[arg-type]


def test_example_config_is_valid_and_enables_every_rule() -> None:
    config = load_risk_config(EXAMPLE, environ={})
    assert len(config.rules.enabled_ids()) == 14


def test_cli_validate_and_schema(tmp_path: Path) -> None:
    runner = CliRunner()
    good = _write(tmp_path, "rules: {max_contracts: {enabled: true, limit: 3}}")
    result = runner.invoke(app, ["config", "validate", str(good)])
    assert result.exit_code == 0, result.output
    assert "RULE-001" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: {max_contracts: {enabled: true, limit: 3, limt: 4}}")
    result = runner.invoke(app, ["config", "validate", str(bad)])
    assert result.exit_code == 2
    assert "rules.max_contracts.limt" in result.output
    result = runner.invoke(app, ["config", "schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["additionalProperties"] is False
    assert "rules" in schema["properties"]


def test_every_problem_is_listed(tmp_path: Path) -> None:
    path = _write(tmp_path, "timezone: Nowhere/City\nrules: {max_contracts: {enabled: true, limit: -1}}")
    with pytest.raises(ConfigError) as info:
        load_risk_config(path)
    assert len(info.value.problems) == 2
    assert "2 problems" in str(info.value) and "rules.max_contracts.limit" in str(info.value)
