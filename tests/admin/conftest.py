"""Shared fixtures: the security tests' cheap argon2 tuning and the absent keyring, an initialised admin dir."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from risk_manager.cli import admin_cmd
from risk_manager.cli.app import app
from tests.security.conftest import ADMIN_PW, cheap_tuning, clock, no_keyring

__all__ = ["cheap_tuning", "clock", "no_keyring"]

runner = CliRunner()

RISK_YAML = """\
# Joe's rules: agreed with the coach, do not loosen on a red day.
timezone: America/Chicago   # exchange time

rules:
  # stop for the day
  daily_realized_loss:
    enabled: true
    loss_limit: 500   # dollars, fees included
  max_contracts:
    enabled: true
    limit: 4          # account-wide
  symbol_blocks:
    enabled: true
    blocked: [RTY, "CL*"]   # too wild
"""


def admin(config: Path, stdin: str, *args: str) -> Result:
    return runner.invoke(app, ["admin", *args, "--config", str(config), "--password-stdin"], input=stdin)


@pytest.fixture(autouse=True)
def _quiet_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    # The admin group installs a stderr log handler; under CliRunner that stream is closed after each invoke.
    monkeypatch.setattr(admin_cmd, "configure_logging", lambda *args, **kwargs: None)


@pytest.fixture
def config_dir(tmp_path: Path, cheap_tuning: None) -> Path:
    """An admin directory with the admin password set and a commented risk.yaml."""
    directory = tmp_path / "admin"
    result = admin(directory, f"{ADMIN_PW}\n", "init", "--key-source", "password")
    assert result.exit_code == 0, result.output
    (directory / "risk.yaml").write_text(RISK_YAML, encoding="utf-8")
    (directory / "risk.yaml").chmod(0o600)
    return directory
