"""accounts.yaml `{vault: NAME}`: the daemon logs in with the API key from the admin's encrypted vault (keyring
key, or a service key file for a password-derived key) against a simulator that only knows that key; it
refuses to start on a credential file others can read, printing the chmod that fixes it."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from risk_manager.cli import admin_cmd
from risk_manager.cli.app import app
from risk_manager.daemon.config_dir import DaemonConfigError, load_config_dir
from risk_manager.security.service_key import KEY_FILE_ENV
from risk_manager.sim import SimAccount, SimConfig, Simulator, SimUser
from tests.daemon.admin_setup import ACCOUNT, admin, make_config_dir, running_daemon, write_private
from tests.security.conftest import ADMIN_PW, API_KEY, USER, MemoryKeyring, cheap_tuning, memory_keyring, no_keyring

__all__ = ["cheap_tuning", "memory_keyring", "no_keyring"]

pytestmark = pytest.mark.timeout(60)
VAULT_ACCOUNTS = f"credentials: {{main: {{vault: topstep}}}}\naccounts: [{{id: {ACCOUNT}, credentials: main}}]\n"
SHORTHAND_ACCOUNTS = f"accounts: [{{id: {ACCOUNT}, credentials: {{vault: topstep}}}}]\n"


@pytest.fixture(autouse=True)
def _quiet_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admin_cmd, "configure_logging", lambda *args, **kwargs: None)


def _add_account(directory: Path) -> None:
    added = admin(directory, "accounts", "add", "topstep", "--user", USER, stdin=f"{ADMIN_PW}\n{API_KEY}\n")
    assert added.exit_code == 0, added.output


def _pinned_sim() -> Simulator:
    """A simulator that accepts only the vault's user and key."""
    return Simulator(SimConfig(accounts=[SimAccount(ACCOUNT, "SIM-1001")], users=[SimUser(USER, API_KEY, (ACCOUNT,))],
                               quote_feed="scripted"))


def _reinit_with(directory: Path, key_source: str) -> None:
    result = admin(directory, "init", "--force", "--key-source", key_source, stdin=f"{ADMIN_PW}\n{ADMIN_PW}\n")
    assert result.exit_code == 0, result.output


async def test_keyring_vault_logs_in_without_any_secret_in_the_files(tmp_path: Path, cheap_tuning: None,
                                                                     memory_keyring: MemoryKeyring) -> None:
    directory = make_config_dir(tmp_path, accounts=VAULT_ACCOUNTS)
    _reinit_with(directory, "keyring")
    _add_account(directory)
    sim = _pinned_sim()
    await sim.start("127.0.0.1", 0)
    try:
        async with running_daemon(directory, sim) as running:
            assert running.daemon.accounts[ACCOUNT].spec.credential.user_name == USER
            assert not running.daemon.stale
    finally:
        await sim.stop()
    for path in directory.rglob("*"):
        if path.is_file() and path.suffix != ".db":
            assert API_KEY.encode() not in path.read_bytes(), path


async def test_password_vault_needs_a_service_key(tmp_path: Path, cheap_tuning: None,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    directory = make_config_dir(tmp_path, accounts=SHORTHAND_ACCOUNTS)   # init --key-source password
    _add_account(directory)
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(DaemonConfigError, match=r"accounts\[0\]\.credentials\.vault: .*no service key.*"
                                                r"risk-manager admin service-key FILE"):
        load_config_dir(directory)

    key_file = tmp_path / "keys" / "vault.key"
    written = admin(directory, "service-key", str(key_file))
    assert written.exit_code == 0, written.output
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    monkeypatch.setenv(KEY_FILE_ENV, str(key_file))
    sim = _pinned_sim()
    await sim.start("127.0.0.1", 0)
    try:
        async with running_daemon(directory, sim) as running:
            assert running.daemon.accounts[ACCOUNT].spec.credential.user_name == USER
    finally:
        await sim.stop()

    key_file.chmod(0o644)
    with pytest.raises(DaemonConfigError, match=f"chmod 600 {key_file}"):
        load_config_dir(directory)
    key_file.chmod(0o600)

    changed = admin(directory, "change-password", stdin=f"{ADMIN_PW}\nnew-calm-self-2026\nnew-calm-self-2026\n")
    assert changed.exit_code == 0, changed.output
    with pytest.raises(DaemonConfigError, match="is for another vault"):
        load_config_dir(directory)


def test_run_refuses_credential_files_others_can_read(tmp_path: Path, cheap_tuning: None,
                                                      memory_keyring: MemoryKeyring) -> None:
    directory = make_config_dir(tmp_path, accounts=VAULT_ACCOUNTS)
    _reinit_with(directory, "keyring")
    _add_account(directory)
    vault = directory / "credentials.vault"
    vault.chmod(0o644)
    refused = CliRunner().invoke(app, ["run", "--config", str(directory)])
    assert refused.exit_code == 2
    assert f"chmod 600 {vault}" in refused.stderr
    vault.chmod(0o600)

    clear = f"credentials: {{default: {{userName: joe, apiKey: {API_KEY}}}}}\naccounts: [{{id: {ACCOUNT}}}]\n"
    write_private(directory / "accounts.yaml", clear)
    (directory / "accounts.yaml").chmod(0o644)
    refused = CliRunner().invoke(app, ["run", "--config", str(directory)])
    assert refused.exit_code == 2
    assert "credentials.default.apiKey: an API key is written in clear" in refused.stderr
    assert f"chmod 600 {directory / 'accounts.yaml'}" in refused.stderr
    assert API_KEY not in refused.stderr
