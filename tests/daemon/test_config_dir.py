"""The configuration directory: the `init` templates load; errors name file, key and what is allowed."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from risk_manager.cli.app import app
from risk_manager.daemon.config_dir import DaemonConfigError, load_config_dir
from risk_manager.daemon.config_templates import InitRefusedError, write_example_config
from risk_manager.gateway.config import REAL_API_URL

ENV = {"TOPSTEPX_USER": "trader", "TOPSTEPX_API_KEY": "secret-key-123"}


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "cfg"
    write_example_config(directory)
    return directory


def test_init_templates_load(config_dir: Path) -> None:
    config = load_config_dir(config_dir, ENV)
    assert [a.name for a in config.accounts] == ["PRAC-V2-1001"]
    assert config.accounts[0].credential.user_name == "trader"
    assert config.gateway.api.base_url == REAL_API_URL   # the protocol doc's host, never contacted
    assert config.database_path == config_dir / "state" / "risk.db"
    assert config.retention.enforcement_log_days == 30
    assert config.risk.rules.daily_realized_loss.loss_limit == 500
    assert "secret-key-123" not in repr(config.accounts[0])


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
def test_init_modes_and_refusal(tmp_path: Path) -> None:
    directory = tmp_path / "new"
    written = write_example_config(directory)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in written)
    with pytest.raises(InitRefusedError, match=r"config\.yaml"):
        write_example_config(directory)
    result = CliRunner().invoke(app, ["init", str(directory)])
    assert result.exit_code == 2
    assert CliRunner().invoke(app, ["init", str(directory), "--force"]).exit_code == 0


def test_missing_credentials_env_names_the_key(config_dir: Path) -> None:
    with pytest.raises(DaemonConfigError) as err:
        load_config_dir(config_dir, {})
    assert err.value.file.endswith("accounts.yaml")
    assert "TOPSTEPX_USER" in err.value.message
    assert err.value.key == "credentials.default.userName"


def test_per_account_override_merged_over_the_risk_file(config_dir: Path) -> None:
    (config_dir / "accounts.yaml").write_text(
        "credentials: {default: {userName: u, apiKey: k}}\n"
        "accounts:\n"
        "  - {id: 1001}\n"
        "  - {id: 1002, rules: {daily_realized_loss: {loss_limit: 300}}}\n")
    config = load_config_dir(config_dir, ENV)
    first, second = config.accounts
    assert first.risk.rules.daily_realized_loss.loss_limit == 500
    assert second.risk.rules.daily_realized_loss.loss_limit == 300
    assert second.risk.rules.daily_realized_loss.warn_at == 0.8  # the rest of the block is kept


@pytest.mark.parametrize(("file", "text", "key", "fragment"), [
    ("config.yaml", "logging: {level: LOUD}\n", "logging.level", "DEBUG"),
    ("config.yaml", "databse: {}\n", "databse", "allowed here"),
    ("config.yaml", "api: {timeout: -1}\n", "api.timeout", "greater than 0"),
    ("config.yaml", "database: {retention: {orderHistory: 0}}\n", "database.retention.orderHistory", "greater"),
    ("accounts.yaml", "credentials: {default: {userName: u, apiKey: k}}\naccounts: [{credentials: default}]\n",
     "accounts[0]", "id or name"),
    ("accounts.yaml", "credentials: {default: {userName: u, apiKey: k}}\naccounts: [{id: 1, credentials: x}]\n",
     "accounts[0].credentials", "not defined"),
    ("accounts.yaml", "credentials: {default: {userName: u, apiKey: k}}\n"
     "accounts: [{id: 1, rules: {daily_realized_loss: {loss_limit: -5}}}]\n",
     "accounts[0].rules.daily_realized_loss.loss_limit", ""),
    ("risk.yaml", "rules: {max_contracts: {enabled: true, limt: 3}}\n", "rules.max_contracts.limt", "unknown key"),
])
def test_errors_name_file_key_and_allowed_values(config_dir: Path, file: str, text: str, key: str,
                                                 fragment: str) -> None:
    (config_dir / file).write_text(text)
    with pytest.raises(DaemonConfigError) as err:
        load_config_dir(config_dir, ENV)
    assert err.value.file.endswith(file)
    assert err.value.key == key, str(err.value)
    assert fragment in err.value.message


def test_missing_directory_and_file(tmp_path: Path) -> None:
    with pytest.raises(DaemonConfigError, match="not a directory"):
        load_config_dir(tmp_path / "nope", ENV)
    (tmp_path / "c").mkdir()
    with pytest.raises(DaemonConfigError, match="risk-manager init"):
        load_config_dir(tmp_path / "c", ENV)
