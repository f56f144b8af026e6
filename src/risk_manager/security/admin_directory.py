"""The admin directory as one object: the password, the credential vault and the audit file together.

`risk-manager admin …` commands are thin wrappers around `AdminDirectory`; the daemon uses only
`AdminPaths` and `load_credentials` (see docs/security.md).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from argon2 import Parameters

from risk_manager.domain.clock import Clock, SystemClock
from risk_manager.logs import log_event
from risk_manager.security import keyring_store
from risk_manager.security.audit_file import AuditFile, current_terminal, current_user
from risk_manager.security.errors import (
    AdminAlreadyInitialisedError,
    KeyringUnavailableError,
    PasswordBackoffError,
    SecurityError,
    VaultCorruptError,
    VaultError,
    WrongPasswordError,
)
from risk_manager.security.password import AdminPassword, TunedParameters, check_new_password
from risk_manager.security.paths import AdminPaths
from risk_manager.security.vault import Credential, KeySource, Vault, VaultHeader

logger = logging.getLogger("risk_manager.security")

KeyChoice = Literal["auto", "keyring", "password"]


@dataclass(frozen=True)
class AccountListing:
    name: str
    user_name: str | None   # None when the entry cannot be opened
    masked_key: str
    problem: str | None = None


class AdminDirectory:
    def __init__(self, paths: AdminPaths, clock: Clock | None = None) -> None:
        self.paths = paths
        self.clock = clock or SystemClock()
        self.password = AdminPassword(paths, self.clock)
        self.audit = AuditFile(paths.audit_file, self.clock)

    @property
    def pending_vault_file(self) -> Path:
        return self.paths.vault_file.with_name(self.paths.vault_file.name + ".pending")

    # --- the password ----------------------------------------------------------------------------

    def unlock(self, password: str) -> None:
        """Check the admin password (counted, with back-off); every refusal is audited."""
        who, terminal = current_user(), current_terminal()
        try:
            self.password.verify(password, who=who, terminal=terminal)
        except WrongPasswordError as exc:
            self.audit.append("admin.password_failed", f"failure {exc.failures}, {exc.remaining} left",
                              who=who, terminal=terminal)
            raise
        except PasswordBackoffError:
            self.audit.append("admin.password_refused", "back-off running", who=who, terminal=terminal)
            raise

    def initialise(self, new_password: str, tuned: TunedParameters, key_choice: KeyChoice = "auto",
                   old_password: str | None = None) -> KeySource:
        """Set the admin password and create the vault. With `old_password` (`--force`): re-initialise,
        keeping the stored accounts (re-encrypted); without it an existing setup is refused."""
        check_new_password(new_password)
        source = self._choose_source(key_choice)
        kept: dict[str, Credential] = {}
        old_vault: Vault | None = None
        if self.password.is_initialised():
            if old_password is None:
                raise AdminAlreadyInitialisedError(self.paths.directory)
            self.unlock(old_password)
            old_vault = self._open_vault_if_any(old_password)
            kept = old_vault.credentials() if old_vault is not None else {}
        self.paths.ensure()
        vault = self._new_vault(source, new_password, tuned.params)
        for name, credential in kept.items():
            vault.put(name, credential)
        self._commit(vault, new_password, tuned)
        if old_vault is not None and old_vault.key_source == "keyring":
            self._forget_keyring_key(old_vault.key_header)
        self.audit.append("admin.init", f"key source {source}; {len(kept)} account(s) kept"
                          + ("; forced" if old_password is not None else ""))
        return source

    def wipe_and_initialise(self, new_password: str, tuned: TunedParameters,
                            key_choice: KeyChoice = "auto") -> KeySource:
        """Forgotten password: delete the hash, the vault (and its keyring key) and the counter, start over."""
        check_new_password(new_password)
        self._choose_source(key_choice)  # an unusable keyring must stop us before anything is deleted
        self.paths.ensure()
        removed = []
        try:
            header = VaultHeader.read(self.paths.vault_file)
            if header.key_source == "keyring":
                self._forget_keyring_key(header.key)
        except (FileNotFoundError, VaultError):
            pass  # nothing to forget, or a damaged vault that is deleted below anyway
        for path in (self.paths.vault_file, self.pending_vault_file, self.paths.admin_file,
                     self.paths.attempts_file):
            if os.path.exists(path):
                os.remove(path)
                removed.append(os.path.basename(path))
        self.audit.append("admin.wipe", f"removed {', '.join(removed) or 'nothing'}")
        log_event(logger, "admin_wiped", logging.WARNING, directory=self.paths.directory, removed=len(removed))
        return self.initialise(new_password, tuned, key_choice)

    def change_password(self, old_password: str, new_password: str, tuned: TunedParameters) -> None:
        """Verify the old password, set the new one; a password-keyed vault is re-encrypted.

        Crash-safe: see `_commit`.
        """
        check_new_password(new_password)
        self.unlock(old_password)
        vault = self._open_vault_if_any(old_password)
        rekey = vault is not None and vault.key_source == "password"
        if vault is not None and rekey:
            vault.rekey_with_password(new_password, tuned.params)
            self._commit(vault, new_password, tuned)
        else:
            self.password.set(new_password, tuned, None if vault is None else vault.vault_id)
        self.audit.append("admin.password_changed", "vault re-encrypted" if rekey else "vault key unchanged")

    # --- the vault -------------------------------------------------------------------------------

    def open_vault(self, password: str) -> Vault:
        """The vault (call `unlock` first); created empty if missing. Finishes an interrupted change."""
        vault = self._open_vault_if_any(password)
        if vault is None:
            source = self._choose_source("auto")
            vault = self._new_vault(source, password, self.password.record().parameters)
            log_event(logger, "vault_created", path=self.paths.vault_file, key_source=source)
        return vault

    def add_account(self, password: str, name: str, credential: Credential) -> None:
        vault = self.open_vault(password)
        vault.put(name, credential)
        vault.save()
        self.audit.append("accounts.add", "user name and API key stored", account=name)

    def remove_account(self, password: str, name: str) -> None:
        vault = self.open_vault(password)
        vault.remove(name)
        vault.save()
        self.audit.append("accounts.remove", "", account=name)

    def list_accounts(self, password: str) -> list[AccountListing]:
        vault = self.open_vault(password)
        listings = []
        for name in vault.names():
            try:
                credential = vault.get(name)
            except VaultCorruptError as exc:
                listings.append(AccountListing(name, None, "***", exc.problem))
                continue
            listings.append(AccountListing(name, credential.user_name, credential.masked_key))
        return listings

    # --- internals -------------------------------------------------------------------------------

    def _commit(self, vault: Vault, new_password: str, tuned: TunedParameters) -> None:
        """Write a new vault and a new password hash so that a crash at any point leaves a matching pair.

        The vault goes to `credentials.vault.pending`, then `admin.json` is written naming that vault's
        id, then the pending file is renamed into place. `_open_vault_if_any` finishes the rename when
        `admin.json` names the pending vault, and discards the pending file when it does not.
        """
        pending = self.pending_vault_file
        vault.save(pending)
        self.password.set(new_password, tuned, vault.vault_id)
        os.replace(pending, self.paths.vault_file)

    def _open_vault_if_any(self, password: str) -> Vault | None:
        pending = self.pending_vault_file
        if pending.exists():
            wanted = self.password.record().vault_id
            try:
                pending_id: str | None = VaultHeader.read(pending).vault_id
            except VaultError:
                pending_id = None
            if pending_id is not None and pending_id == wanted:
                os.replace(pending, self.paths.vault_file)  # the new password was set: finish the change
                log_event(logger, "vault_pending_completed", path=self.paths.vault_file)
            else:
                pending.unlink()  # the change stopped before the new password was set: the old vault holds
                log_event(logger, "vault_pending_discarded", path=pending)
        if not self.paths.vault_file.exists():
            return None
        return Vault.open(self.paths.vault_file, password)

    def _choose_source(self, choice: KeyChoice) -> KeySource:
        if choice == "keyring" and not keyring_store.keyring_available():
            raise KeyringUnavailableError("--key-source keyring was asked for, but the OS keyring is not available",
                                          "install `risk-manager[keyring]` with a working backend, or use "
                                          "--key-source password")
        if choice == "auto":
            return "keyring" if keyring_store.keyring_available() else "password"
        return choice

    def _new_vault(self, source: KeySource, password: str, params: Parameters) -> Vault:
        if source == "keyring":
            return Vault.create_with_keyring(self.paths.vault_file)
        return Vault.create_with_password(self.paths.vault_file, password, params)

    def _forget_keyring_key(self, key_header: dict[str, object]) -> None:
        try:
            keyring_store.delete_key(str(key_header["entry"]))
        except (SecurityError, KeyError) as exc:
            log_event(logger, "keyring_key_not_forgotten", logging.WARNING, error=type(exc).__name__)
