"""The OS keyring (optional extra `risk-manager[keyring]`) as a home for the vault key.

`keyring` is imported lazily: without the package, or with only its "fail"/"null" backends (a
headless Linux server without Secret Service), the keyring counts as unavailable and the vault key
is derived from the admin password instead.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from risk_manager.logs import log_event
from risk_manager.security.errors import KeyringUnavailableError

logger = logging.getLogger("risk_manager.security")

SERVICE = "risk-manager"
_REMEDY = ("install a keyring backend (`pip install 'risk-manager[keyring]'` and a running Secret Service, "
           "macOS Keychain or Windows Credential Manager), or use `--key-source password`")


def _module() -> Any:
    try:
        import keyring
    except ImportError:
        return None
    return keyring


def keyring_available() -> bool:
    """True when `keyring` is installed and its backend can really store secrets."""
    module = _module()
    if module is None:
        return False
    try:
        backend = module.get_keyring()
        priority = float(getattr(backend, "priority", 0))
    except Exception as exc:  # a backend may fail in any way while probing (D-Bus, locked keychain)
        log_event(logger, "keyring_probe_failed", logging.WARNING, error=type(exc).__name__)
        return False
    name = type(backend).__module__
    return priority > 0 and not name.startswith(("keyring.backends.fail", "keyring.backends.null"))


def store_key(username: str, key: bytes) -> None:
    module = _require()
    try:
        module.set_password(SERVICE, username, base64.b64encode(key).decode())
    except Exception as exc:  # keyring.errors.KeyringError or a backend's own error
        raise KeyringUnavailableError(f"the OS keyring refused to store the vault key ({type(exc).__name__})",
                                      _REMEDY) from exc


def load_key(username: str) -> bytes | None:
    """The stored key, or None when the keyring has no entry for `username`."""
    module = _require()
    try:
        text = module.get_password(SERVICE, username)
    except Exception as exc:
        raise KeyringUnavailableError(f"the OS keyring could not be read ({type(exc).__name__})", _REMEDY) from exc
    if text is None:
        return None
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        return b""  # an entry that is not ours: the vault's key check reports it as a wrong key


def delete_key(username: str) -> None:
    module = _require()
    try:
        module.delete_password(SERVICE, username)
    except Exception as exc:  # PasswordDeleteError when already gone, which is what we want anyway
        log_event(logger, "keyring_delete_failed", logging.WARNING, entry=username, error=type(exc).__name__)


def _require() -> Any:
    module = _module()
    if module is None or not keyring_available():
        raise KeyringUnavailableError("the OS keyring is not available here", _REMEDY)
    return module
