"""Admin password, encrypted credentials and owner-only files (issue 7).

- `AdminPaths.resolve(config_dir)` — where the admin files live (`paths.py`).
- `AdminDirectory` — password + vault + audit file, what `risk-manager admin` drives.
- `load_credentials(vault_file, password)` — what the daemon calls to get each account's login.
- `check_private(path)` — refuse a credential/config file others can read (`chmod 600` hint).
"""

from risk_manager.security.admin_directory import AccountListing, AdminDirectory
from risk_manager.security.errors import (
    AdminAlreadyInitialisedError,
    AdminNotInitialisedError,
    ConfigDirError,
    GatewayCheckError,
    InsecurePermissionsError,
    KeyringUnavailableError,
    PasswordBackoffError,
    PasswordInputError,
    SecurityError,
    VaultCorruptError,
    VaultEntryError,
    VaultError,
    VaultKeyError,
    WrongPasswordError,
)
from risk_manager.security.password import AdminPassword, TunedParameters, tune_parameters
from risk_manager.security.paths import CONFIG_DIR_ENV, AdminPaths, resolve_config_dir
from risk_manager.security.permissions import check_private, check_private_dir
from risk_manager.security.redaction import mask_secret
from risk_manager.security.vault import Credential, Vault, load_credentials

__all__ = [
    "CONFIG_DIR_ENV", "AccountListing", "AdminAlreadyInitialisedError", "AdminDirectory",
    "AdminNotInitialisedError", "AdminPassword", "AdminPaths", "ConfigDirError", "Credential",
    "GatewayCheckError", "InsecurePermissionsError", "KeyringUnavailableError", "PasswordBackoffError",
    "PasswordInputError", "SecurityError", "TunedParameters", "Vault", "VaultCorruptError", "VaultEntryError",
    "VaultError", "VaultKeyError", "WrongPasswordError", "check_private", "check_private_dir",
    "load_credentials", "mask_secret", "resolve_config_dir", "tune_parameters",
]
