"""`risk-manager admin …` end to end through typer's CliRunner, secrets given with --password-stdin."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from risk_manager.cli import admin_cmd
from risk_manager.cli.app import app
from risk_manager.security.paths import AdminPaths
from risk_manager.security.vault import Vault
from risk_manager.sim import SimAccount, SimConfig, Simulator, SimUser
from tests.security.conftest import ADMIN_PW, API_KEY, USER, MemoryKeyring

NEW_PW = "a-calmer-password"
runner = CliRunner()


@pytest.fixture(autouse=True)
def _isolated(cheap_tuning: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # The admin group installs a stderr log handler; under CliRunner that stream is closed after each
    # invoke, so leave the root logger to pytest (caplog still sees every line).
    monkeypatch.setattr(admin_cmd, "configure_logging", lambda *args, **kwargs: None)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return tmp_path / "admin"


def admin(config: Path, stdin: str, *args: str) -> Result:
    return runner.invoke(app, ["admin", *args, "--config", str(config), "--password-stdin"], input=stdin)


def initialised(config: Path) -> Path:
    result = admin(config, f"{ADMIN_PW}\n", "init", "--key-source", "password")
    assert result.exit_code == 0, result.output
    return config


def with_account(config: Path, name: str = "main", key: str = API_KEY) -> None:
    result = admin(config, f"{ADMIN_PW}\n{key}\n", "accounts", "add", name, "--user", USER)
    assert result.exit_code == 0, result.output


def test_init_creates_private_files_and_refuses_a_second_time(config: Path, no_keyring: None) -> None:
    result = admin(config, f"{ADMIN_PW}\n", "init")
    assert result.exit_code == 0, result.output
    assert "argon2id" in result.stdout and "derived from the admin password" in result.stdout
    assert config.stat().st_mode & 0o777 == 0o700
    for name in ("admin.json", "credentials.vault", "admin-audit.jsonl"):
        assert (config / name).stat().st_mode & 0o777 == 0o600
    again = admin(config, f"{NEW_PW}\n", "init")
    assert again.exit_code == 1
    assert "already set" in again.stderr and "change-password" in again.stderr
    assert Vault.open(config / "credentials.vault", ADMIN_PW).names() == []


def test_init_refuses_a_short_password(config: Path) -> None:
    result = admin(config, "short\n", "init")
    assert result.exit_code == 1
    assert "too short" in result.stderr
    assert not (config / "admin.json").exists()


def test_accounts_add_list_remove(config: Path) -> None:
    initialised(config)
    with_account(config)
    with_account(config, "eval-2", "z" * 12)
    listed = admin(config, f"{ADMIN_PW}\n", "accounts", "list")
    assert listed.exit_code == 0, listed.output
    assert "main" in listed.stdout and USER in listed.stdout and "pXk3…QqZ1" in listed.stdout
    assert "eval-2" in listed.stdout and "***" in listed.stdout
    assert API_KEY not in listed.output and "z" * 12 not in listed.output
    duplicate = admin(config, f"{ADMIN_PW}\n{API_KEY}\n", "accounts", "add", "main", "--user", USER)
    assert duplicate.exit_code == 1 and "already exists" in duplicate.stderr
    removed = admin(config, f"{ADMIN_PW}\n", "accounts", "remove", "main")
    assert removed.exit_code == 0, removed.output
    assert Vault.open(config / "credentials.vault", ADMIN_PW).names() == ["eval-2"]
    missing = admin(config, f"{ADMIN_PW}\n", "accounts", "remove", "main")
    assert missing.exit_code == 1 and "no account entry named 'main'" in missing.stderr


def test_wrong_password_is_refused_counted_and_audited(config: Path) -> None:
    initialised(config)
    result = admin(config, "wrong-password\n", "accounts", "list")
    assert result.exit_code == 3
    assert "wrong admin password; 4 more" in result.stderr
    assert json.loads((config / "admin-attempts.json").read_text())["failures"] == 1
    audit = [json.loads(line) for line in (config / "admin-audit.jsonl").read_text().splitlines()]
    assert audit[-1]["what"] == "admin.password_failed"
    assert "wrong-password" not in (config / "admin-audit.jsonl").read_text()
    for _ in range(4):
        admin(config, "wrong-password\n", "accounts", "list")
    refused = admin(config, f"{ADMIN_PW}\n", "accounts", "list")
    assert refused.exit_code == 3 and "too many wrong admin passwords" in refused.stderr


def test_without_a_terminal_the_password_must_come_from_stdin(config: Path) -> None:
    initialised(config)
    result = runner.invoke(app, ["admin", "accounts", "list", "--config", str(config)], input=f"{ADMIN_PW}\n")
    assert result.exit_code == 1
    assert "no terminal" in result.stderr and "--password-stdin" in result.stderr


def test_stdin_that_ends_early_is_a_clear_error(config: Path) -> None:
    initialised(config)
    result = admin(config, f"{ADMIN_PW}\n", "accounts", "add", "main", "--user", USER)
    assert result.exit_code == 1 and "stdin ended before the API key" in result.stderr


def test_change_password_reencrypts_a_password_keyed_vault(config: Path) -> None:
    initialised(config)
    with_account(config)
    before = (config / "credentials.vault").read_bytes()
    result = admin(config, f"{ADMIN_PW}\n{NEW_PW}\n", "change-password")
    assert result.exit_code == 0, result.output
    assert (config / "credentials.vault").read_bytes() != before
    assert not (config / "credentials.vault.pending").exists()
    assert admin(config, f"{ADMIN_PW}\n", "accounts", "list").exit_code == 3
    listed = admin(config, f"{NEW_PW}\n", "accounts", "list")
    assert listed.exit_code == 0 and "pXk3…QqZ1" in listed.stdout
    assert Vault.open(config / "credentials.vault", NEW_PW).get("main").api_key == API_KEY


def test_change_password_leaves_a_keyring_keyed_vault_alone(config: Path, memory_keyring: MemoryKeyring) -> None:
    result = admin(config, f"{ADMIN_PW}\n", "init")
    assert result.exit_code == 0 and "held in the OS keyring" in result.stdout
    with_account(config)
    before = (config / "credentials.vault").read_bytes()
    assert admin(config, f"{ADMIN_PW}\n{NEW_PW}\n", "change-password").exit_code == 0
    assert (config / "credentials.vault").read_bytes() == before
    assert Vault.open(config / "credentials.vault").get("main").api_key == API_KEY
    assert admin(config, f"{NEW_PW}\n", "accounts", "list").exit_code == 0


def test_init_force_needs_the_old_password_and_keeps_the_accounts(config: Path) -> None:
    initialised(config)
    with_account(config)
    wrong = admin(config, f"wrong-password\n{NEW_PW}\n", "init", "--force")
    assert wrong.exit_code == 3
    assert Vault.open(config / "credentials.vault", ADMIN_PW).names() == ["main"]
    forced = admin(config, f"{ADMIN_PW}\n{NEW_PW}\n", "init", "--force")
    assert forced.exit_code == 0, forced.output
    assert Vault.open(config / "credentials.vault", NEW_PW).get("main").api_key == API_KEY


def test_init_wipe_starts_over_without_the_old_password(config: Path) -> None:
    initialised(config)
    with_account(config)
    for _ in range(5):
        admin(config, "forgotten?\n", "accounts", "list")
    wiped = admin(config, f"{NEW_PW}\n", "init", "--wipe")
    assert wiped.exit_code == 0, wiped.output
    assert Vault.open(config / "credentials.vault", NEW_PW).names() == []
    audit = (config / "admin-audit.jsonl").read_text()
    assert '"admin.wipe"' in audit
    assert admin(config, f"{NEW_PW}\n", "accounts", "list").exit_code == 0
    assert admin(config, f"{ADMIN_PW}\n{NEW_PW}\n", "init", "--force", "--wipe").exit_code == 1


def test_wipe_asking_for_a_missing_keyring_deletes_nothing(config: Path) -> None:
    initialised(config)
    with_account(config)
    result = admin(config, f"{NEW_PW}\n", "init", "--wipe", "--key-source", "keyring")
    assert result.exit_code == 1 and "keyring" in result.stderr
    assert Vault.open(config / "credentials.vault", ADMIN_PW).names() == ["main"]


def test_commands_refuse_an_open_credential_file(config: Path) -> None:
    initialised(config)
    with_account(config)
    (config / "credentials.vault").chmod(0o644)
    result = admin(config, f"{ADMIN_PW}\n", "accounts", "list")
    assert result.exit_code == 1
    assert "chmod 600" in result.stderr


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    """The project's Gateway simulator on 127.0.0.1 (ephemeral port): one pinned user who sees 1001 and 1002."""
    config = SimConfig(accounts=[SimAccount(id=1001, name="SIM-1001", balance=50_000.0, can_trade=True),
                                 SimAccount(id=1002, name="SIM-1002", balance=25_000.0, can_trade=False),
                                 SimAccount(id=2001, name="OTHER-2001", balance=10_000.0, can_trade=True)],
                       users=[SimUser(USER, API_KEY, (1001, 1002))], quote_feed="scripted")
    async with Simulator(config) as sim:
        yield sim


async def test_accounts_test_logs_in_to_the_simulator_and_lists_the_accounts(
        config: Path, simulator: Simulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    initialised(config)
    with_account(config)
    with_account(config, "bad", "not-the-right-api-key-at-all")
    # The CLI is synchronous: run it in a worker thread while the simulator serves on this loop.
    ok = await asyncio.to_thread(admin, config, f"{ADMIN_PW}\n", "accounts", "test", "main", "--gateway",
                                 simulator.base_url)
    assert ok.exit_code == 0, ok.output
    assert "2 active account(s)" in ok.stdout
    assert "SIM-1001" in ok.stdout and "50,000.00" in ok.stdout and "SIM-1002" in ok.stdout
    assert "OTHER-2001" not in ok.stdout
    refused = await asyncio.to_thread(admin, config, f"{ADMIN_PW}\n", "accounts", "test", "bad", "--gateway",
                                      simulator.api_url)
    assert refused.exit_code == 1
    assert "login refused: invalid credentials" in refused.stderr
    paths = [r.path for r in simulator.recorder.requests]
    assert paths == ["/api/Auth/loginKey", "/api/Account/search", "/api/Auth/loginKey"]
    unreachable = await asyncio.to_thread(admin, config, f"{ADMIN_PW}\n", "accounts", "test", "main", "--gateway",
                                          "http://127.0.0.1:9")
    assert unreachable.exit_code == 1 and "cannot reach the Gateway" in unreachable.stderr
    everything = ok.output + refused.output + unreachable.output + caplog.text
    everything += (config / "admin-audit.jsonl").read_text()
    for secret in (API_KEY, "not-the-right-api-key-at-all", ADMIN_PW):
        assert secret not in everything
    assert '"accounts.test"' in (config / "admin-audit.jsonl").read_text()


def test_an_interrupted_password_change_is_finished_or_rolled_back(config: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from risk_manager.security.admin_directory import AdminDirectory
    from risk_manager.security.password import AdminPassword
    from tests.security.conftest import CHEAP

    initialised(config)
    with_account(config)
    directory = AdminDirectory(AdminPaths(config))

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    # Stopped before the new hash was written: the old password and the old vault still hold.
    monkeypatch.setattr(AdminPassword, "set", crash)
    with pytest.raises(KeyboardInterrupt):
        directory.change_password(ADMIN_PW, NEW_PW, CHEAP)
    monkeypatch.undo()
    assert (config / "credentials.vault.pending").exists()
    assert directory.open_vault(ADMIN_PW).get("main").api_key == API_KEY
    assert not (config / "credentials.vault.pending").exists()

    # Stopped after the new hash, before the rename: the next open finishes the change.
    original_set = AdminPassword.set

    def set_then_crash(self: AdminPassword, *args: Any, **kwargs: Any) -> None:
        original_set(self, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(AdminPassword, "set", set_then_crash)
    with pytest.raises(KeyboardInterrupt):
        directory.change_password(ADMIN_PW, NEW_PW, CHEAP)
    monkeypatch.undo()
    directory.unlock(NEW_PW)
    assert directory.open_vault(NEW_PW).get("main").api_key == API_KEY
    assert not (config / "credentials.vault.pending").exists()


def test_wipe_forgets_the_keyring_key(config: Path, memory_keyring: MemoryKeyring) -> None:
    assert admin(config, f"{ADMIN_PW}\n", "init", "--key-source", "keyring").exit_code == 0
    assert len(memory_keyring.items) == 1
    result = admin(config, f"{NEW_PW}\n", "init", "--wipe", "--key-source", "password")
    assert result.exit_code == 0, result.output
    assert memory_keyring.items == {}
    assert Vault.open(config / "credentials.vault", NEW_PW).key_source == "password"
