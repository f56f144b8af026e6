"""accounts.yaml's `{vault: NAME}` credentials: the daemon opens the admin's encrypted vault.

The vault is `credentials.vault` in the config directory (written by `risk-manager admin accounts add`).
Its key comes from the OS keyring (nothing to give), or, when it is derived from the admin password,
from a service key file (`risk_manager.security.service_key`: `$RISK_MANAGER_VAULT_KEY_FILE` or the
systemd credential `risk-manager-vault-key`). The daemon never asks for the admin password and never
derives the key itself. Every file involved is checked private first: one that others can read stops
the start with the `chmod` that fixes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from risk_manager.security.vault import Vault

VAULT_FILE = "credentials.vault"


def open_daemon_vault(vault_file: Path, environ: Mapping[str, str] | None = None) -> Vault:
    """Open the vault without a person: keyring key, or the service key file. Typed `SecurityError`s."""
    # Imported here, not at the top: a daemon whose accounts.yaml holds no vault entries never loads
    # cryptography and argon2 (≈ 7 MB resident, docs/performance.md).
    from risk_manager.security.service_key import (
        KEY_FILE_ENV,
        SYSTEMD_CREDENTIAL,
        ServiceKeyError,
        key_file_location,
        open_with_service_key,
        read_service_key,
    )
    from risk_manager.security.vault import Vault, VaultHeader

    try:
        header = VaultHeader.read(vault_file)
    except FileNotFoundError:
        raise ServiceKeyError(f"accounts.yaml names vault entries but there is no vault at {vault_file}",
                              "add the account first: `risk-manager admin accounts add NAME --user USER`") from None
    if header.key_source == "keyring":
        return Vault.open(vault_file)
    location = key_file_location(environ)
    if location is None:
        raise ServiceKeyError(
            f"the key of {vault_file} is derived from the admin password and the daemon has no service key",
            f"run `risk-manager admin service-key FILE` once, then start the daemon with {KEY_FILE_ENV}=FILE (or, "
            f"under systemd, LoadCredential={SYSTEMD_CREDENTIAL}:FILE)")
    return open_with_service_key(vault_file, read_service_key(location))


class VaultCredentials:
    """`resolve(entry) -> (user_name, api_key)` for `load_config_dir`; the vault is opened at the first use."""

    def __init__(self, vault_file: Path, environ: Mapping[str, str] | None = None) -> None:
        self.vault_file = vault_file
        self.environ = environ
        self._vault: Vault | None = None

    def __call__(self, entry: str) -> tuple[str, str]:
        if self._vault is None:
            self._vault = open_daemon_vault(self.vault_file, self.environ)
        credential = self._vault.get(entry)
        return credential.user_name, credential.api_key


__all__ = ["VAULT_FILE", "VaultCredentials", "open_daemon_vault"]
