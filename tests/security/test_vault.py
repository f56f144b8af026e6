from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from risk_manager.security import vault as vault_module
from risk_manager.security.errors import (
    InsecurePermissionsError,
    KeyringUnavailableError,
    VaultCorruptError,
    VaultEntryError,
    VaultKeyError,
)
from risk_manager.security.vault import Credential, Vault, load_credentials
from tests.security.conftest import ADMIN_PW, API_KEY, CHEAP, USER, MemoryKeyring


@pytest.fixture
def vault_file(tmp_path: Path) -> Path:
    return tmp_path / "credentials.vault"


def _saved(vault_file: Path, *entries: tuple[str, Credential]) -> Vault:
    vault = Vault.create_with_password(vault_file, ADMIN_PW, CHEAP.params)
    for name, credential in entries:
        vault.put(name, credential)
    vault.save()
    return vault


def test_round_trip(vault_file: Path) -> None:
    second = Credential("other.user", "k" * 40)
    _saved(vault_file, ("main", Credential(USER, API_KEY)), ("eval-2", second))
    opened = Vault.open(vault_file, ADMIN_PW)
    assert opened.names() == ["eval-2", "main"]
    assert opened.get("main") == Credential(USER, API_KEY)
    assert load_credentials(vault_file, ADMIN_PW) == {"main": Credential(USER, API_KEY), "eval-2": second}


def test_file_holds_no_plaintext_key_or_user_name(vault_file: Path) -> None:
    _saved(vault_file, ("main", Credential(USER, API_KEY)))
    raw = vault_file.read_bytes()
    for secret in (API_KEY, USER, ADMIN_PW):
        for form in (secret.encode(), base64.b64encode(secret.encode()), secret.encode().hex().encode()):
            assert form not in raw
    assert b"main" in raw  # entry names are labels, stored in clear


def test_file_is_owner_only_whatever_the_umask(vault_file: Path) -> None:
    old = os.umask(0o022)
    try:
        _saved(vault_file, ("main", Credential(USER, API_KEY)))
    finally:
        os.umask(old)
    assert vault_file.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in vault_file.parent.iterdir()] == [vault_file.name]  # no temp file left behind


def test_repr_and_str_never_show_the_key() -> None:
    credential = Credential(USER, API_KEY)
    assert API_KEY not in repr(credential)
    assert credential.masked_key == "pXk3…QqZ1"
    assert Credential(USER, "short-key").masked_key == "***"


def test_wrong_password_is_a_clear_error_and_the_file_is_untouched(vault_file: Path) -> None:
    _saved(vault_file, ("main", Credential(USER, API_KEY)))
    before = vault_file.read_bytes()
    with pytest.raises(VaultKeyError, match="the key does not open it") as caught:
        Vault.open(vault_file, "not-the-admin-password")
    assert "admin password" in caught.value.remedy
    assert vault_file.read_bytes() == before


def test_password_keyed_vault_needs_a_password(vault_file: Path) -> None:
    _saved(vault_file)
    with pytest.raises(VaultKeyError, match="derived from the admin password"):
        Vault.open(vault_file)


@pytest.mark.parametrize("damage", [
    lambda raw: raw[: len(raw) // 2],
    lambda raw: b"\x00\x01garbage",
    lambda raw: raw.replace(b'"format": "risk-manager-credential-vault"', b'"format": "something-else"'),
    lambda raw: raw.replace(b'"source": "password"', b'"source": "usb-stick"'),
])
def test_corrupt_file_is_a_clear_error_with_a_remedy(vault_file: Path, damage) -> None:  # type: ignore[no-untyped-def]
    _saved(vault_file, ("main", Credential(USER, API_KEY)))
    damaged = damage(vault_file.read_bytes())
    vault_file.write_bytes(damaged)
    with pytest.raises(VaultCorruptError, match="damaged or not a vault") as caught:
        Vault.open(vault_file, ADMIN_PW)
    assert "mv " in caught.value.remedy and "accounts add" in caught.value.remedy
    assert vault_file.read_bytes() == damaged


def _edit(vault_file: Path, change) -> None:  # type: ignore[no-untyped-def]
    document = json.loads(vault_file.read_text())
    change(document)
    vault_file.write_text(json.dumps(document))


def test_a_tampered_entry_is_named(vault_file: Path) -> None:
    _saved(vault_file, ("main", Credential(USER, API_KEY)), ("spare", Credential(USER, "x" * 30)))

    def flip(document: dict) -> None:  # type: ignore[type-arg]
        blob = bytearray(base64.b64decode(document["entries"]["main"]["ciphertext"]))
        blob[0] ^= 1
        document["entries"]["main"]["ciphertext"] = base64.b64encode(bytes(blob)).decode()

    _edit(vault_file, flip)
    opened = Vault.open(vault_file, ADMIN_PW)
    assert opened.get("spare").api_key == "x" * 30
    with pytest.raises(VaultCorruptError, match="entry 'main' fails its integrity check"):
        opened.get("main")


def test_an_entry_moved_under_another_name_does_not_open(vault_file: Path) -> None:
    _saved(vault_file, ("main", Credential(USER, API_KEY)))
    _edit(vault_file, lambda d: d["entries"].update({"renamed": d["entries"].pop("main")}))
    with pytest.raises(VaultCorruptError, match="entry 'renamed'"):
        Vault.open(vault_file, ADMIN_PW).get("renamed")


def test_an_entry_copied_from_another_vault_does_not_open(tmp_path: Path) -> None:
    first, second = tmp_path / "a.vault", tmp_path / "b.vault"
    _saved(first, ("main", Credential(USER, API_KEY)))
    _saved(second)
    entry = json.loads(first.read_text())["entries"]["main"]
    _edit(second, lambda d: d["entries"].update({"main": entry}))
    with pytest.raises(VaultCorruptError):
        Vault.open(second, ADMIN_PW).get("main")


def test_a_failed_save_keeps_the_old_file(vault_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vault = _saved(vault_file, ("main", Credential(USER, API_KEY)))
    before = vault_file.read_bytes()
    vault.put("second", Credential(USER, "y" * 30))

    def disk_full(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OSError, match="No space"):
        vault.save()
    monkeypatch.undo()
    assert vault_file.read_bytes() == before
    assert [p.name for p in vault_file.parent.iterdir()] == [vault_file.name]


def test_entry_names_and_duplicates(vault_file: Path) -> None:
    vault = _saved(vault_file, ("main", Credential(USER, API_KEY)))
    with pytest.raises(VaultEntryError, match="already exists"):
        vault.put("main", Credential(USER, API_KEY))
    with pytest.raises(VaultEntryError, match="letters, digits"):
        vault.put("../etc/passwd", Credential(USER, API_KEY))
    with pytest.raises(VaultEntryError, match="known entries: main"):
        vault.remove("nope")
    vault.remove("main")
    assert vault.names() == []


def test_rekey_changes_the_key_and_keeps_the_entries(vault_file: Path) -> None:
    vault = _saved(vault_file, ("main", Credential(USER, API_KEY)))
    vault.rekey_with_password("a-new-password", CHEAP.params)
    vault.save()
    with pytest.raises(VaultKeyError):
        Vault.open(vault_file, ADMIN_PW)
    assert Vault.open(vault_file, "a-new-password").get("main") == Credential(USER, API_KEY)


def test_open_refuses_a_file_others_can_read(vault_file: Path) -> None:
    _saved(vault_file)
    vault_file.chmod(0o644)
    with pytest.raises(InsecurePermissionsError, match="chmod 600"):
        Vault.open(vault_file, ADMIN_PW)


def test_keyring_held_key(vault_file: Path, memory_keyring: MemoryKeyring) -> None:
    vault = Vault.create_with_keyring(vault_file)
    vault.put("main", Credential(USER, API_KEY))
    vault.save()
    assert len(memory_keyring.items) == 1
    assert Vault.open(vault_file).get("main").api_key == API_KEY  # no password needed
    stored_key = next(iter(memory_keyring.items.values()))
    assert stored_key.encode() not in vault_file.read_bytes()
    memory_keyring.items.clear()
    with pytest.raises(VaultKeyError, match="no key for it"):
        Vault.open(vault_file)
    memory_keyring.items[("risk-manager", vault.key_header["entry"])] = base64.b64encode(b"k" * 32).decode()
    with pytest.raises(VaultKeyError, match="does not open it"):
        Vault.open(vault_file)


def test_keyring_asked_for_but_missing(vault_file: Path, no_keyring: None) -> None:
    with pytest.raises(KeyringUnavailableError, match="key-source password"):
        Vault.create_with_keyring(vault_file)


def test_nonce_is_fresh_for_every_seal(vault_file: Path) -> None:
    vault = _saved(vault_file, ("a", Credential(USER, API_KEY)), ("b", Credential(USER, API_KEY)))
    document = json.loads(vault_file.read_text())
    assert document["entries"]["a"]["nonce"] != document["entries"]["b"]["nonce"]
    assert len(base64.b64decode(document["entries"]["a"]["nonce"])) == vault_module.NONCE_BYTES
    assert vault.key_source == "password"


_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=80).filter(lambda s: s.strip() != "")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(user=_text, key=_text, name=st.from_regex(vault_module.ENTRY_NAME, fullmatch=True))
def test_any_credential_survives_a_round_trip(tmp_path: Path, user: str, key: str, name: str) -> None:
    path = tmp_path / "property.vault"
    vault = Vault.create_with_password(path, ADMIN_PW, CHEAP.params)
    vault.put(name, Credential(user, key))
    vault.save()
    assert Vault.open(path, ADMIN_PW).get(name) == Credential(user, key)
