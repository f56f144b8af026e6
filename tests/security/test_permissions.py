from __future__ import annotations

import os
from pathlib import Path

import pytest

from risk_manager.security import paths as paths_module
from risk_manager.security.errors import ConfigDirError, InsecurePermissionsError
from risk_manager.security.paths import AdminPaths, ensure_private_dir, resolve_config_dir, write_private_atomic
from risk_manager.security.permissions import check_private, check_private_dir

pytestmark = pytest.mark.skipif(os.name != "posix", reason="mode bits are POSIX; Windows uses ACLs (issue 8)")


def test_check_private_refuses_0644_with_the_fix(tmp_path: Path) -> None:
    secret = tmp_path / "my creds.vault"
    secret.write_text("x")
    secret.chmod(0o644)
    with pytest.raises(InsecurePermissionsError) as caught:
        check_private(secret)
    assert caught.value.fix == f"chmod 600 '{secret}'"
    assert "mode 0644" in str(caught.value) and f"chmod 600 '{secret}'" in str(caught.value)
    secret.chmod(0o600)
    check_private(secret)
    secret.chmod(0o400)
    check_private(secret)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o606])
def test_any_group_or_other_bit_is_refused(tmp_path: Path, mode: int) -> None:
    secret = tmp_path / "f"
    secret.write_text("x")
    secret.chmod(mode)
    with pytest.raises(InsecurePermissionsError):
        check_private(secret)


def test_directory_writable_by_others_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "cfg"
    directory.mkdir()
    directory.chmod(0o777)
    with pytest.raises(InsecurePermissionsError, match="chmod 700"):
        check_private_dir(directory)
    with pytest.raises(InsecurePermissionsError):
        AdminPaths(directory).ensure()
    directory.chmod(0o755)
    check_private_dir(directory)  # readable is fine: the files inside are 0600


def test_ensure_private_dir_creates_every_missing_level_0700(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        target = ensure_private_dir(tmp_path / "a" / "b" / "cfg")
    finally:
        os.umask(old)
    for path in (tmp_path / "a", tmp_path / "a" / "b", target):
        assert path.stat().st_mode & 0o777 == 0o700


def test_ensure_private_dir_refuses_a_file(tmp_path: Path) -> None:
    (tmp_path / "cfg").write_text("")
    with pytest.raises(ConfigDirError, match="not a directory"):
        ensure_private_dir(tmp_path / "cfg")


def test_admin_paths_check_finds_an_open_file(tmp_path: Path) -> None:
    paths = AdminPaths(tmp_path / "cfg").ensure()
    write_private_atomic(paths.admin_file, b"{}")
    paths.check()
    paths.admin_file.chmod(0o644)
    with pytest.raises(InsecurePermissionsError, match=r"admin\.json"):
        paths.check()


def test_config_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"RISK_MANAGER_CONFIG_DIR": str(tmp_path / "from-env")}
    assert resolve_config_dir(tmp_path / "explicit", env) == tmp_path / "explicit"
    assert resolve_config_dir(None, env) == tmp_path / "from-env"
    monkeypatch.setattr(paths_module, "_is_root", lambda: False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert resolve_config_dir(None, {}) == tmp_path / "xdg" / "risk-manager"
    system = tmp_path / "etc-risk-manager"
    system.mkdir()
    monkeypatch.setattr(paths_module, "SYSTEM_CONFIG_DIR", system)
    assert resolve_config_dir(None, {}) == tmp_path / "xdg" / "risk-manager"  # not root
    monkeypatch.setattr(paths_module, "_is_root", lambda: True)
    assert resolve_config_dir(None, {}) == system
    assert resolve_config_dir(None, env) == tmp_path / "from-env"


def test_windows_checks_are_a_documented_no_op(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from risk_manager.security import permissions

    secret = tmp_path / "f"
    secret.write_text("x")
    secret.chmod(0o644)
    monkeypatch.setattr(permissions, "CHECKS_APPLY", False)
    check_private(secret)
    assert "ACL" in (permissions.__doc__ or "")
