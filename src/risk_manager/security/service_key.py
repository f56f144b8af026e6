"""The service key: the vault key in a 0600 file, so a daemon can start unattended with a password-derived vault.

When the vault's key is derived from the admin password, the daemon cannot open it by itself after a
reboot: nobody is there to type the password. `risk-manager admin service-key FILE` (admin password
needed) derives the key once and writes it, with the vault's id, to FILE (0600, atomically):

    {"format": "risk-manager-vault-key", "version": 1, "vault_id": "<32 hex>", "key": "<32 bytes b64>"}

The daemon finds it through `RISK_MANAGER_VAULT_KEY_FILE=FILE`, or as the systemd credential
`risk-manager-vault-key` (`LoadCredential=risk-manager-vault-key:FILE` in the unit, so systemd hands
it to the service in `$CREDENTIALS_DIRECTORY` and the file itself can stay root-only). It refuses a
key file others can read (with the `chmod 600` that fixes it) and a key for another vault (after a
password change the vault is re-keyed: write the service key again).

The trade-off: whoever can read this file can decrypt the API keys without the admin password, so
it must live where only the service (or root) can read it, ideally not beside the vault and not in
the same backups. The keyring source has the same property (the key is in the user's keyring); the
only alternative would be an attended start, which the daemon does not offer. It does not touch the
admin password: the trader still cannot change the rules without it.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from risk_manager.security.errors import SecurityError, VaultKeyError
from risk_manager.security.paths import write_private_atomic
from risk_manager.security.permissions import check_private
from risk_manager.security.vault import Vault, VaultHeader, derive_password_key

KEY_FILE_ENV = "RISK_MANAGER_VAULT_KEY_FILE"
SYSTEMD_CREDENTIAL = "risk-manager-vault-key"
FORMAT = "risk-manager-vault-key"
VERSION = 1


class ServiceKeyError(SecurityError):
    """The service key file is missing, unreadable, damaged or for another vault."""


@dataclass(frozen=True)
class ServiceKey:
    path: Path
    vault_id: str
    key: bytes = field(repr=False)


def key_file_location(environ: Mapping[str, str] | None = None) -> Path | None:
    """Where the daemon looks for the service key: `$RISK_MANAGER_VAULT_KEY_FILE`, else the systemd credential."""
    env = os.environ if environ is None else environ
    if env.get(KEY_FILE_ENV):
        return Path(env[KEY_FILE_ENV]).expanduser()
    if env.get("CREDENTIALS_DIRECTORY"):
        candidate = Path(env["CREDENTIALS_DIRECTORY"]) / SYSTEMD_CREDENTIAL
        if candidate.exists():
            return candidate
    return None


def write_service_key(vault_file: Path, password: str, output: Path) -> ServiceKey:
    """Derive the vault's key from the (already verified) admin password and write it to `output` (0600)."""
    header = VaultHeader.read(vault_file)
    if header.key_source != "password":
        raise ServiceKeyError(f"{vault_file} keeps its key in the OS keyring: the daemon opens it without a "
                              "service key", "run the daemon as the user whose keyring holds the key")
    key = derive_password_key(password, base64.b64decode(header.key["salt"]), header.kdf_parameters())
    Vault.open_with_key(vault_file, key, header)   # the right key, or VaultKeyError before anything is written
    document = {"format": FORMAT, "version": VERSION, "vault_id": header.vault_id,
                "key": base64.b64encode(key).decode("ascii")}
    output.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private_atomic(output, (json.dumps(document) + "\n").encode())
    return ServiceKey(output, header.vault_id, key)


def read_service_key(path: Path) -> ServiceKey:
    """Read a service key file; refuses one others can read (`InsecurePermissionsError` with the chmod)."""
    remedy = f"write it again with `risk-manager admin service-key {path}`"
    try:
        check_private(path)
        raw = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ServiceKeyError(f"service key file {path} does not exist", remedy) from None
    except PermissionError:
        raise ServiceKeyError(f"service key file {path} cannot be read by this user",
                              "run the daemon as the user that owns it, or hand it over with systemd's "
                              "LoadCredential=") from None
    except ValueError:
        raise ServiceKeyError(f"service key file {path} is not a risk-manager vault key", remedy) from None
    try:
        if raw.get("format") != FORMAT or raw.get("version") != VERSION:
            raise ValueError("format")
        key = base64.b64decode(raw["key"], validate=True)
        return ServiceKey(path, str(raw["vault_id"]), key)
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        raise ServiceKeyError(f"service key file {path} is damaged or not a risk-manager vault key", remedy) from None


def open_with_service_key(vault_file: Path, service_key: ServiceKey) -> Vault:
    header = VaultHeader.read(vault_file)
    if header.vault_id != service_key.vault_id:
        raise VaultKeyError(vault_file, f"the service key {service_key.path} is for another vault (the admin "
                                        "password was changed or the vault re-created since it was written)",
                            f"write it again with `risk-manager admin service-key {service_key.path}`")
    return Vault.open_with_key(vault_file, service_key.key, header)


__all__ = ["KEY_FILE_ENV", "SYSTEMD_CREDENTIAL", "ServiceKey", "ServiceKeyError", "key_file_location",
           "open_with_service_key", "read_service_key", "write_service_key"]
