"""The credential vault: ProjectX userName + API key per account entry, AES-256-GCM at rest.

File (`credentials.vault`, JSON, 0600)::

    {"format": "risk-manager-credential-vault", "version": 1, "vault_id": "<hex>",
     "key": {"source": "password", "kdf": "argon2id", "salt": "<b64>", "time_cost": 9,
             "memory_cost": 65536, "parallelism": 2}          # or {"source": "keyring", "entry": "vault-<id>"}
     "check": {"nonce": "<b64>", "ciphertext": "<b64>"},
     "entries": {"<name>": {"nonce": "<b64>", "ciphertext": "<b64>"}}}

Each entry's plaintext (`{"user_name", "api_key"}`) is sealed with a fresh 96-bit nonce and
associated data binding it to this vault and its entry name, so an entry copied under another name
or into another vault does not open. `check` seals a constant: if it does not open, the key is
wrong (`VaultKeyError`); if it opens but an entry does not, that entry is damaged
(`VaultCorruptError`). Every save is atomic (temp file + rename): a failure leaves the old file.
Entry names are stored in clear (they are labels, e.g. `topstep-50k`); user names and keys are not.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import secrets
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import argon2
from argon2 import Parameters
from argon2.low_level import hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from risk_manager.logs import log_event
from risk_manager.security import keyring_store
from risk_manager.security.errors import (
    VaultCorruptError,
    VaultEntryError,
    VaultKeyError,
)
from risk_manager.security.paths import write_private_atomic
from risk_manager.security.permissions import check_private
from risk_manager.security.redaction import mask_secret

logger = logging.getLogger("risk_manager.security")

FORMAT = "risk-manager-credential-vault"
VERSION = 1
KEY_BYTES = 32    # AES-256
NONCE_BYTES = 12  # the GCM standard nonce; random per seal (2^-32 collision bound reached after ~2^32 seals)
SALT_BYTES = 16
_CHECK_PLAINTEXT = b"risk-manager vault key check v1"
ENTRY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

KeySource = Literal["password", "keyring"]


@dataclass(frozen=True)
class Credential:
    """What logs in to the ProjectX Gateway for one account entry. `repr` never shows the key."""

    user_name: str
    api_key: str = field(repr=False)

    @property
    def masked_key(self) -> str:
        return mask_secret(self.api_key)

    def __post_init__(self) -> None:
        if not self.user_name.strip():
            raise ValueError("user name: must not be empty")
        if not self.api_key.strip():
            raise ValueError("API key: must not be empty")


def check_entry_name(name: str) -> str:
    if not ENTRY_NAME.match(name):
        raise VaultEntryError(Path("-"), f"invalid account entry name {name!r}",
                              "use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return name


def derive_password_key(password: str, salt: bytes, params: Parameters) -> bytes:
    """The 256-bit vault key from the admin password: argon2id raw, with the vault's own salt."""
    return hash_secret_raw(password.encode(), salt, time_cost=params.time_cost, memory_cost=params.memory_cost,
                           parallelism=params.parallelism, hash_len=KEY_BYTES, type=argon2.Type.ID)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise ValueError("expected base64 text")
    return base64.b64decode(text, validate=True)


def _remedy_corrupt(path: Path) -> str:
    quoted = shlex.quote(str(path))
    return (f"restore it from a backup, or move it aside (`mv {quoted} {quoted}.corrupt`) and add the accounts "
            "again with `risk-manager admin accounts add`")


@dataclass(frozen=True)
class Sealed:
    nonce: bytes
    ciphertext: bytes

    def to_json(self) -> dict[str, str]:
        return {"nonce": _b64(self.nonce), "ciphertext": _b64(self.ciphertext)}

    @classmethod
    def from_json(cls, raw: Any) -> Sealed:
        nonce = _unb64(raw["nonce"])
        if len(nonce) != NONCE_BYTES:
            raise ValueError(f"nonce must be {NONCE_BYTES} bytes")
        return cls(nonce, _unb64(raw["ciphertext"]))


@dataclass(frozen=True)
class VaultHeader:
    """What can be read without the key: the id, the key source and the entry names."""

    path: Path
    vault_id: str
    key: dict[str, Any]
    check: Sealed
    entries: dict[str, Sealed]

    @property
    def key_source(self) -> KeySource:
        source = self.key["source"]
        assert source in ("password", "keyring")  # validated by `read`
        return source  # type: ignore[no-any-return]

    @property
    def keyring_entry(self) -> str:
        return str(self.key["entry"])

    def kdf_parameters(self) -> Parameters:
        k = self.key
        return Parameters(type=argon2.Type.ID, version=19, salt_len=SALT_BYTES, hash_len=KEY_BYTES,
                          time_cost=int(k["time_cost"]), memory_cost=int(k["memory_cost"]),
                          parallelism=int(k["parallelism"]))

    @classmethod
    def read(cls, path: Path) -> VaultHeader:
        """Parse the vault file (`VaultCorruptError` if it is not one); checks it is private first."""
        check_private(path)
        try:
            raw = json.loads(path.read_bytes())
            if raw.get("format") != FORMAT:
                raise ValueError("not a risk-manager credential vault")
            if raw.get("version") != VERSION:
                raise ValueError(f"vault version {raw.get('version')!r}, this risk-manager reads {VERSION}")
            vault_id = raw["vault_id"]
            if not isinstance(vault_id, str) or not re.fullmatch(r"[0-9a-f]{32}", vault_id):
                raise ValueError("bad vault_id")
            key = dict(raw["key"])
            if key.get("source") == "password":
                if key.get("kdf") != "argon2id":
                    raise ValueError(f"unknown kdf {key.get('kdf')!r}")
                if len(_unb64(key["salt"])) != SALT_BYTES:
                    raise ValueError("bad salt length")
                for name in ("time_cost", "memory_cost", "parallelism"):
                    if not isinstance(key.get(name), int) or key[name] < 1:
                        raise ValueError(f"bad {name}")
            elif key.get("source") == "keyring":
                if not isinstance(key.get("entry"), str) or not key["entry"]:
                    raise ValueError("keyring key without an entry name")
            else:
                raise ValueError(f"unknown key source {key.get('source')!r}")
            entries = {check_entry_name(str(n)): Sealed.from_json(e) for n, e in dict(raw["entries"]).items()}
            return cls(path, vault_id, key, Sealed.from_json(raw["check"]), entries)
        except FileNotFoundError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error, VaultEntryError) as exc:
            raise VaultCorruptError(path, f"is damaged or not a vault ({exc})", _remedy_corrupt(path)) from exc


class Vault:
    """An opened vault: entries stay sealed in memory and are opened one by one with `get`."""

    def __init__(self, path: Path, vault_id: str, key_header: dict[str, Any], key: bytes,
                 entries: dict[str, Sealed] | None = None) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"a vault key is {KEY_BYTES} bytes")
        self.path = path
        self.vault_id = vault_id
        self.key_header = key_header
        self._aead = AESGCM(key)
        self._entries: dict[str, Sealed] = dict(entries or {})

    def __repr__(self) -> str:
        return f"Vault({self.path}, source={self.key_source}, entries={self.names()})"

    # --- creating and opening -------------------------------------------------------------------

    @classmethod
    def create_with_password(cls, path: Path, password: str, params: Parameters) -> Vault:
        """A new, empty vault whose key is derived from `password` (not written until `save`)."""
        salt = secrets.token_bytes(SALT_BYTES)
        header = {"source": "password", "kdf": "argon2id", "salt": _b64(salt), "time_cost": params.time_cost,
                  "memory_cost": params.memory_cost, "parallelism": params.parallelism}
        return cls(path, secrets.token_hex(16), header, derive_password_key(password, salt, params))

    @classmethod
    def create_with_keyring(cls, path: Path) -> Vault:
        """A new, empty vault with a random key stored in the OS keyring (`KeyringUnavailableError` if none)."""
        vault_id = secrets.token_hex(16)
        key = secrets.token_bytes(KEY_BYTES)
        entry = f"vault-{vault_id}"
        keyring_store.store_key(entry, key)
        return cls(path, vault_id, {"source": "keyring", "entry": entry}, key)

    @classmethod
    def open(cls, path: Path, password: str | None = None) -> Vault:
        """Open an existing vault. A password-keyed vault needs the admin `password`.

        Raises `VaultKeyError` (wrong password / keyring entry), `VaultCorruptError`,
        `InsecurePermissionsError`, `KeyringUnavailableError`, `FileNotFoundError`.
        """
        header = VaultHeader.read(path)
        if header.key_source == "password":
            if password is None:
                raise VaultKeyError(path, "its key is derived from the admin password, and none was given",
                                    "enter the admin password")
            key = derive_password_key(password, _unb64(header.key["salt"]), header.kdf_parameters())
        else:
            stored = keyring_store.load_key(header.keyring_entry)
            if stored is None:
                raise VaultKeyError(path, f"the OS keyring has no key for it (entry {header.keyring_entry!r})",
                                    "run as the user who created the vault, or restore the keyring; otherwise "
                                    "`risk-manager admin init --wipe` starts over")
            key = stored if len(stored) == KEY_BYTES else bytes(KEY_BYTES)
        return cls.open_with_key(path, key, header)

    @classmethod
    def open_with_key(cls, path: Path, key: bytes, header: VaultHeader | None = None) -> Vault:
        """Open with the vault key itself (a service key file, `security/service_key.py`); `VaultKeyError` if
        it is not this vault's key. Checks the file is private first, like `open`."""
        header = header or VaultHeader.read(path)
        if len(key) != KEY_BYTES:
            raise VaultKeyError(path, f"the key given is {len(key)} bytes, not {KEY_BYTES}",
                                "write the service key again with `risk-manager admin service-key`")
        vault = cls(path, header.vault_id, header.key, key, header.entries)
        try:
            vault._aead.decrypt(header.check.nonce, header.check.ciphertext, vault._aad("check"))
        except InvalidTag:
            raise VaultKeyError(
                path,
                "the key does not open it (the admin password or keyring entry differs from the one it was "
                "encrypted with)",
                "use the admin password that was set when these accounts were added; if admin.json was replaced, "
                "restore the matching one, or start over with `risk-manager admin init --wipe`",
            ) from None
        return vault

    # --- entries --------------------------------------------------------------------------------

    @property
    def key_source(self) -> KeySource:
        return "keyring" if self.key_header["source"] == "keyring" else "password"

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def get(self, name: str) -> Credential:
        sealed = self._entries.get(name)
        if sealed is None:
            raise VaultEntryError(self.path, f"no account entry named {name!r}",
                                  f"known entries: {', '.join(self.names()) or 'none'}")
        try:
            plain = self._aead.decrypt(sealed.nonce, sealed.ciphertext, self._aad(f"entry:{name}"))
            raw = json.loads(plain)
            return Credential(str(raw["user_name"]), str(raw["api_key"]))
        except (InvalidTag, ValueError, KeyError, TypeError) as exc:
            raise VaultCorruptError(self.path, f"entry {name!r} fails its integrity check",
                                    f"remove it with `risk-manager admin accounts remove {name}` and add it again"
                                    ) from exc

    def put(self, name: str, credential: Credential, replace: bool = False) -> None:
        check_entry_name(name)
        if name in self._entries and not replace:
            raise VaultEntryError(self.path, f"an account entry named {name!r} already exists",
                                  f"remove it first with `risk-manager admin accounts remove {name}`")
        plain = json.dumps({"user_name": credential.user_name, "api_key": credential.api_key}).encode()
        self._entries[name] = self._seal(plain, f"entry:{name}")

    def remove(self, name: str) -> None:
        if self._entries.pop(name, None) is None:
            raise VaultEntryError(self.path, f"no account entry named {name!r}",
                                  f"known entries: {', '.join(self.names()) or 'none'}")

    def credentials(self) -> dict[str, Credential]:
        """Every entry, opened (what the daemon needs to log in)."""
        return {name: self.get(name) for name in self.names()}

    # --- writing --------------------------------------------------------------------------------

    def save(self, path: Path | None = None) -> None:
        """Write the vault atomically (0600) to `path` (default: its own file). On error the old file stays."""
        document = {
            "format": FORMAT, "version": VERSION, "vault_id": self.vault_id, "key": self.key_header,
            "check": self._seal(_CHECK_PLAINTEXT, "check").to_json(),
            "entries": {name: sealed.to_json() for name, sealed in sorted(self._entries.items())},
        }
        target = path or self.path
        write_private_atomic(target, (json.dumps(document, indent=2) + "\n").encode())
        log_event(logger, "vault_saved", path=target, entries=len(self._entries), key_source=self.key_source)

    def rekey_with_password(self, new_password: str, params: Parameters) -> None:
        """Re-encrypt every entry under a key derived from `new_password` (a new salt); call `save` after.

        Every entry is opened first, so a damaged entry stops the change before anything is written.
        """
        opened = self.credentials()
        replacement = Vault.create_with_password(self.path, new_password, params)
        self.vault_id = replacement.vault_id
        self.key_header = replacement.key_header
        self._aead = replacement._aead
        self._entries = {}
        for name, credential in opened.items():
            self.put(name, credential)

    # --- internals ------------------------------------------------------------------------------

    def _aad(self, what: str) -> bytes:
        return f"{FORMAT}:v{VERSION}:{self.vault_id}:{what}".encode()

    def _seal(self, plain: bytes, what: str) -> Sealed:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return Sealed(nonce, self._aead.encrypt(nonce, plain, self._aad(what)))


def load_credentials(vault_file: Path, password: str | None = None) -> dict[str, Credential]:
    """For the daemon: every credential in the vault (checks the file is 0600 first; typed errors)."""
    return Vault.open(vault_file, password).credentials()
