"""`risk-manager admin service-key FILE`: the vault key for an unattended daemon (security/service_key.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from risk_manager.cli.admin_cmd import CONFIG, PASSWORD_STDIN, _directory, _refusals, _unlocked, out
from risk_manager.security.prompts import SecretReader
from risk_manager.security.service_key import KEY_FILE_ENV, SYSTEMD_CREDENTIAL, write_service_key


def service_key(file: Path = typer.Argument(..., dir_okay=False,
                                            help="Where to write the key (0600)."),
                config: Path | None = CONFIG, password_stdin: bool = PASSWORD_STDIN) -> None:
    """Write the credential vault's key to FILE so the daemon starts without the admin password. Stdin: password.

    Only for a vault whose key is derived from the admin password (a keyring key needs nothing). Whoever
    can read FILE can decrypt the stored API keys: keep it readable by the service only. Write it again after
    `admin change-password` (the vault is re-keyed)."""
    with _refusals():
        directory = _directory(config)
        password = _unlocked(directory, SecretReader(password_stdin))
        target = file.expanduser().absolute()
        written = write_service_key(directory.paths.vault_file, password, target)
        directory.audit.append("vault.service_key", f"vault key written to {target} (vault {written.vault_id})")
    out.print(f"Vault key written to {target} (0600). Start the daemon with {KEY_FILE_ENV}={target}, or under "
              f"systemd add LoadCredential={SYSTEMD_CREDENTIAL}:{target} to the unit.", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("service-key")(service_key)


__all__ = ["register", "service_key"]
