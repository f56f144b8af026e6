"""Admin password, encrypted credentials and owner-only files (issue 7).

- `AdminPaths.resolve(config_dir)` — where the admin files live (`paths.py`).
- `AdminDirectory` — password + vault + audit file, what `risk-manager admin` drives.
- `load_credentials(vault_file, password)` — what the daemon calls to get each account's login.
- `check_private(path)` — refuse a credential/config file others can read (`chmod 600` hint).
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# The package's names are loaded on first use (PEP 562): the daemon imports small parts of this
# package (file permissions, private writes) and must not pay for argon2 and cryptography (≈ 7 MB
# resident) unless it opens a vault. A table and `__getattr__` rather than the `lazy_loader` package:
# that one reads the names from a `.pyi` stub — another file to keep in step, and a dependency.
_LAZY = {
    "AccountListing": "risk_manager.security.admin_directory",
    "AdminDirectory": "risk_manager.security.admin_directory",
    "AdminAlreadyInitialisedError": "risk_manager.security.errors",
    "AdminNotInitialisedError": "risk_manager.security.errors",
    "ConfigDirError": "risk_manager.security.errors",
    "GatewayCheckError": "risk_manager.security.errors",
    "InsecurePermissionsError": "risk_manager.security.errors",
    "KeyringUnavailableError": "risk_manager.security.errors",
    "PasswordBackoffError": "risk_manager.security.errors",
    "PasswordInputError": "risk_manager.security.errors",
    "SecurityError": "risk_manager.security.errors",
    "VaultCorruptError": "risk_manager.security.errors",
    "VaultEntryError": "risk_manager.security.errors",
    "VaultError": "risk_manager.security.errors",
    "VaultKeyError": "risk_manager.security.errors",
    "WrongPasswordError": "risk_manager.security.errors",
    "AdminPassword": "risk_manager.security.password",
    "TunedParameters": "risk_manager.security.password",
    "tune_parameters": "risk_manager.security.password",
    "AdminPaths": "risk_manager.security.paths",
    "CONFIG_DIR_ENV": "risk_manager.security.paths",
    "resolve_config_dir": "risk_manager.security.paths",
    "check_private": "risk_manager.security.permissions",
    "check_private_dir": "risk_manager.security.permissions",
    "mask_secret": "risk_manager.security.redaction",
    "Credential": "risk_manager.security.vault",
    "Vault": "risk_manager.security.vault",
    "load_credentials": "risk_manager.security.vault",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'risk_manager.security' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "CONFIG_DIR_ENV", "AccountListing", "AdminAlreadyInitialisedError", "AdminDirectory",
    "AdminNotInitialisedError", "AdminPassword", "AdminPaths", "ConfigDirError", "Credential",
    "GatewayCheckError", "InsecurePermissionsError", "KeyringUnavailableError", "PasswordBackoffError",
    "PasswordInputError", "SecurityError", "TunedParameters", "Vault", "VaultCorruptError", "VaultEntryError",
    "VaultError", "VaultKeyError", "WrongPasswordError", "check_private", "check_private_dir",
    "load_credentials", "mask_secret", "resolve_config_dir", "tune_parameters",
]
