"""`risk-manager admin …`: the admin password and the encrypted ProjectX credentials.

Secrets are read from a hidden prompt, or with `--password-stdin` one line each from stdin, in
the order each command's help gives. Exit codes: 0 done, 1 refused (message says why and what to
do), 3 wrong admin password or back-off running.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from risk_manager.logs import configure_logging
from risk_manager.security import password as password_module
from risk_manager.security.admin_directory import AdminDirectory
from risk_manager.security.errors import PasswordBackoffError, SecurityError, WrongPasswordError
from risk_manager.security.gateway_check import DEFAULT_GATEWAY, check_credential
from risk_manager.security.paths import CONFIG_DIR_ENV, AdminPaths
from risk_manager.security.prompts import SecretReader
from risk_manager.security.vault import Credential

app = typer.Typer(help="Admin: password, encrypted account credentials (needs the admin password).",
                  no_args_is_help=True)
accounts_app = typer.Typer(help="ProjectX accounts: user name + API key, stored encrypted.", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")

out = Console()
err = Console(stderr=True)

CONFIG = typer.Option(None, "--config", file_okay=False,
                      help=f"Admin/config directory (default: ${CONFIG_DIR_ENV}, /etc/risk-manager as root, "
                           "else the per-user config directory).")
PASSWORD_STDIN = typer.Option(False, "--password-stdin",
                              help="Read the secrets from stdin, one line each, instead of a hidden prompt.")


class KeySourceChoice(enum.StrEnum):
    auto = "auto"
    keyring = "keyring"
    password = "password"


@app.callback()
def _admin() -> None:
    """Admin commands. Every one asks for the admin password; 5 wrong ones block attempts for 5 minutes."""
    configure_logging("WARNING")


@contextmanager
def _refusals() -> Iterator[None]:
    """Turn typed security errors into one red line and an exit code; nothing else is caught."""
    try:
        yield
    except (WrongPasswordError, PasswordBackoffError) as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(3) from None
    except SecurityError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None


def _directory(config: Path | None) -> AdminDirectory:
    return AdminDirectory(AdminPaths.resolve(config))


def _tune() -> password_module.TunedParameters:
    err.print(f"Tuning the password hash to ~{round(password_module.TARGET_SECONDS * 1000)} ms on this machine…")
    return password_module.tune_parameters()


def _unlocked(directory: AdminDirectory, secrets: SecretReader) -> str:
    admin_password = secrets.read("Admin password: ", "admin password")
    directory.unlock(admin_password)
    return admin_password


@app.command()
def init(
    config: Path | None = CONFIG,
    password_stdin: bool = PASSWORD_STDIN,
    force: bool = typer.Option(False, "--force", help="Re-initialise (asks for the current password; accounts kept)."),
    wipe: bool = typer.Option(False, "--wipe",
                              help="Forgotten password: delete the stored credentials and start over."),
    key_source: KeySourceChoice = typer.Option(KeySourceChoice.auto, "--key-source",
                                               help="Where the credential key comes from: the OS keyring, or "
                                                    "derived from the admin password (auto: keyring if usable)."),
) -> None:
    """Set the admin password. Stdin lines: the current password (only with --force), then the new one."""
    with _refusals():
        if force and wipe:
            raise SecurityError("--force and --wipe exclude each other",
                                "use --force if you know the current password, --wipe if it is forgotten")
        directory = _directory(config)
        secrets = SecretReader(password_stdin)
        old = secrets.read("Current admin password: ", "current admin password") if force else None
        new = secrets.read_new("New admin password: ", "new admin password")
        password_module.check_new_password(new)
        if old is not None and directory.password.is_initialised():
            directory.unlock(old)  # before the slow tuning, so a wrong password fails fast
        tuned = _tune()
        if wipe:
            source = directory.wipe_and_initialise(new, tuned, key_source.value)
        else:
            source = directory.initialise(new, tuned, key_source.value, old_password=old)
    p = tuned.params
    out.print(f"Admin password set in {directory.paths.directory} (argon2id t={p.time_cost}, "
              f"m={p.memory_cost // 1024} MiB, p={p.parallelism}; one check ≈ {round(tuned.seconds * 1000)} ms).")
    out.print("Credentials are encrypted with a key "
              + ("held in the OS keyring." if source == "keyring" else "derived from the admin password."))


@app.command("change-password")
def change_password(config: Path | None = CONFIG, password_stdin: bool = PASSWORD_STDIN) -> None:
    """Change the admin password (re-encrypts the credentials if their key comes from it). Stdin: current, new."""
    with _refusals():
        directory = _directory(config)
        secrets = SecretReader(password_stdin)
        old = _unlocked(directory, secrets)
        new = secrets.read_new("New admin password: ", "new admin password")
        password_module.check_new_password(new)
        directory.change_password(old, new, _tune())
    out.print("Admin password changed.")


@accounts_app.command("add")
def accounts_add(
    name: str = typer.Argument(..., help="A label for this account entry, e.g. topstep-50k."),
    user: str = typer.Option(..., "--user", help="The ProjectX (TopstepX) user name."),
    config: Path | None = CONFIG,
    password_stdin: bool = PASSWORD_STDIN,
) -> None:
    """Store a ProjectX user name and API key, encrypted. Stdin lines: admin password, API key."""
    with _refusals():
        directory = _directory(config)
        secrets = SecretReader(password_stdin)
        admin_password = _unlocked(directory, secrets)
        api_key = secrets.read("API key (hidden): ", "API key")
        try:
            credential = Credential(user.strip(), api_key.strip())
        except ValueError as exc:
            raise SecurityError(f"account {name!r}: {exc}", "give a user name with --user and a non-empty API key"
                                ) from None
        directory.add_account(admin_password, name, credential)
    out.print(f"Account entry {name!r} stored (user {credential.user_name}, key {credential.masked_key}).",
              highlight=False)


@accounts_app.command("remove")
def accounts_remove(
    name: str = typer.Argument(..., help="The account entry to delete."),
    config: Path | None = CONFIG,
    password_stdin: bool = PASSWORD_STDIN,
) -> None:
    """Delete a stored account entry. Stdin line: admin password."""
    with _refusals():
        directory = _directory(config)
        admin_password = _unlocked(directory, SecretReader(password_stdin))
        directory.remove_account(admin_password, name)
    out.print(f"Account entry {name!r} removed.", highlight=False)


@accounts_app.command("list")
def accounts_list(config: Path | None = CONFIG, password_stdin: bool = PASSWORD_STDIN) -> None:
    """List the stored account entries, API keys redacted. Stdin line: admin password."""
    with _refusals():
        directory = _directory(config)
        admin_password = _unlocked(directory, SecretReader(password_stdin))
        listings = directory.list_accounts(admin_password)
    if not listings:
        out.print("No account entries. Add one with `risk-manager admin accounts add NAME --user USER`.")
        return
    table = Table("entry", "user name", "API key", "state")
    for item in listings:
        table.add_row(item.name, item.user_name or "?", item.masked_key, item.problem or "ok")
    out.print(table)


@accounts_app.command("test")
def accounts_test(
    name: str = typer.Argument(..., help="The account entry to try."),
    gateway: str = typer.Option(DEFAULT_GATEWAY, "--gateway", help="Gateway base URL (e.g. the simulator's)."),
    config: Path | None = CONFIG,
    password_stdin: bool = PASSWORD_STDIN,
) -> None:
    """Log in with a stored entry and list the trading accounts its key sees. Stdin line: admin password."""
    with _refusals():
        directory = _directory(config)
        admin_password = _unlocked(directory, SecretReader(password_stdin))
        credential = directory.open_vault(admin_password).get(name)
        accounts = check_credential(gateway, credential)
        directory.audit.append("accounts.test", f"{len(accounts)} account(s) seen at {gateway}", account=name)
    table = Table("id", "name", "balance", "can trade", "simulated")
    for account in accounts:
        table.add_row(str(account.id), account.name, f"{account.balance:,.2f}", "yes" if account.can_trade else "no",
                      "yes" if account.simulated else "no")
    out.print(f"Entry {name!r} logs in; it sees {len(accounts)} active account(s):", highlight=False)
    out.print(table)
