from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from risk_manager.logs import log_event
from risk_manager.service.logfiles import LogFiles, LogFilesConfig, install_log_files
from risk_manager.service.paths import ServiceMode

posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


@pytest.fixture
def files(tmp_path: Path) -> Iterator[LogFiles]:
    root = logging.getLogger()
    old = root.level
    root.setLevel(logging.INFO)
    installed = install_log_files(LogFilesConfig(directory=tmp_path / "logs", retention_days=2))
    assert installed is not None
    yield installed
    installed.close()
    root.setLevel(old)


def _read(files: LogFiles, name: str) -> str:
    files.handlers[name].flush()
    return (files.directory / name).read_text(encoding="utf-8")


def test_lines_are_routed_to_the_right_files(files: LogFiles) -> None:
    log_event(logging.getLogger("risk_manager.daemon"), "daemon_started", accounts=2)
    log_event(logging.getLogger("risk_manager.enforcement"), "flattened", account="PRAC-1", token="s3cr3t-tok")
    log_event(logging.getLogger("risk_manager.gateway"), "hub_lost", logging.WARNING, hub="user")
    logging.getLogger("risk_manager.gateway").debug("below the level")

    daemon, enforcement, errors = (_read(files, n) for n in ("daemon.log", "enforcement.log", "errors.log"))
    assert "daemon_started accounts=2" in daemon and "flattened" in daemon and "hub_lost" in daemon
    assert "below the level" not in daemon
    assert enforcement.count("\n") == 1 and "risk_manager.enforcement flattened account=PRAC-1 token=***" in enforcement
    assert errors.count("\n") == 1 and "WARNING risk_manager.gateway hub_lost hub=user" in errors
    assert "s3cr3t-tok" not in daemon + enforcement + errors


@posix_only
def test_files_are_private(files: LogFiles) -> None:
    logging.getLogger("risk_manager.enforcement").error("x")
    assert stat.S_IMODE(files.directory.stat().st_mode) == 0o700
    for name in ("daemon.log", "enforcement.log", "errors.log"):
        assert stat.S_IMODE((files.directory / name).stat().st_mode) == 0o600


@posix_only
def test_rotation_keeps_the_retention_and_new_files_stay_private(files: LogFiles) -> None:
    handler = files.handlers["daemon.log"]
    for day in ("2026-01-01", "2026-01-02", "2026-01-03"):
        old = files.directory / f"daemon.log.{day}"
        old.write_text("old\n")
    logging.getLogger("risk_manager.daemon").info("before rotation")
    handler.doRollover()  # type: ignore[attr-defined]
    logging.getLogger("risk_manager.daemon").info("after rotation")
    backups = sorted(p.name for p in files.directory.glob("daemon.log.*"))
    assert len(backups) == 2  # retention_days=2: the oldest went
    assert "daemon.log.2026-01-01" not in backups and "daemon.log.2026-01-02" not in backups
    assert "after rotation" in _read(files, "daemon.log")
    assert stat.S_IMODE((files.directory / "daemon.log").stat().st_mode) == 0o600


@posix_only
def test_an_existing_world_readable_file_is_tightened(tmp_path: Path) -> None:
    directory = tmp_path / "logs"
    directory.mkdir()
    (directory / "errors.log").write_text("")
    (directory / "errors.log").chmod(0o644)
    installed = install_log_files(LogFilesConfig(directory=directory))
    assert installed is not None
    try:
        assert stat.S_IMODE((directory / "errors.log").stat().st_mode) == 0o600
    finally:
        installed.close()


def test_install_twice_replaces_and_disabled_removes(tmp_path: Path) -> None:
    first = install_log_files(LogFilesConfig(directory=tmp_path / "a"))
    second = install_log_files(LogFilesConfig(directory=tmp_path / "b"))
    marked = [h for h in logging.getLogger().handlers if getattr(h, "_risk_manager_file", False)]
    assert len(marked) == 2 and first is not None and second is not None
    assert install_log_files(LogFilesConfig(enabled=False), ServiceMode.USER) is None
    assert not [h for h in logging.getLogger().handlers if getattr(h, "_risk_manager_file", False)]
    assert not [h for h in logging.getLogger("risk_manager.enforcement").handlers
                if getattr(h, "_risk_manager_file", False)]


def test_config_refuses_unknown_keys() -> None:
    with pytest.raises(ValueError, match="retention"):
        LogFilesConfig.model_validate({"retention": 3})
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        LogFilesConfig.model_validate({"retention_days": 0})
