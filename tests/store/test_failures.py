"""Start-up errors a trader can act on; runtime disk failures degrade to memory; file permissions."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from risk_manager.domain import VirtualClock
from risk_manager.store import (
    LockRecord,
    Store,
    StoreClosedError,
    StoreCorruptError,
    StoreUnwritableError,
    StoreVersionError,
)
from risk_manager.store import writer as writer_module
from tests.store.conftest import START

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes and users")


def _write_garbage(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not an SQLite database, it is a shopping list\n" * 200)


def _scribble_over_pages(path: Path) -> None:
    data = bytearray(path.read_bytes())
    page = 4096
    for offset in range(3 * page, len(data) - page, 7 * page):  # interior pages; the header stays valid
        data[offset:offset + 512] = os.urandom(512)
    path.write_bytes(bytes(data))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_garbage_file_is_refused_with_a_message_naming_it(db_path: Path, clock: VirtualClock) -> None:
    _write_garbage(db_path)
    with pytest.raises(StoreCorruptError) as caught:
        await Store.open(db_path, clock)
    message = str(caught.value)
    assert str(db_path) in message and "not a sound SQLite database" in message
    assert f"mv {db_path} {db_path}.corrupt" in message


async def test_damaged_pages_fail_the_integrity_check(db_path: Path, clock: VirtualClock) -> None:
    store = await Store.open(db_path, clock)
    for i in range(3000):
        store.append_journal("e", {"i": i, "pad": "p" * 100})
    await store.close()
    _scribble_over_pages(db_path)
    with pytest.raises(StoreCorruptError, match="move the file aside"):
        await Store.open(db_path, clock)


async def test_a_foreign_sqlite_database_is_refused(db_path: Path, clock: VirtualClock) -> None:
    db_path.parent.mkdir(parents=True)
    with sqlite3.connect(db_path) as conn:
        conn.execute("CREATE TABLE photos (id INTEGER)")
    conn.close()
    with pytest.raises(StoreCorruptError, match="not a risk-manager one"):
        await Store.open(db_path, clock)


async def test_a_database_from_a_newer_version_is_refused(db_path: Path, clock: VirtualClock) -> None:
    store = await Store.open(db_path, clock)
    await store.close()
    with sqlite3.connect(db_path) as conn:
        conn.execute("INSERT INTO schema_version VALUES (99, 'x', 'from the future')")
    conn.close()
    with pytest.raises(StoreVersionError, match=r"schema version 99.*upgrade risk-manager"):
        await Store.open(db_path, clock)


async def test_a_directory_in_place_of_the_file_is_refused(tmp_path: Path, clock: VirtualClock) -> None:
    with pytest.raises(StoreUnwritableError, match="not a regular file"):
        await Store.open(tmp_path, clock)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory another user can traverse (pytest's tmp_path is private to its owner)."""
    base = Path(tempfile.mkdtemp(prefix="rm-store-"))
    base.chmod(0o755)
    yield base
    for root, dirs, _files in os.walk(base):
        for name in dirs:
            Path(root, name).chmod(0o755)
    subprocess.run(["rm", "-rf", str(base)], check=True)


_OPEN_AS_OTHER_USER = textwrap.dedent("""
    import asyncio, os, sys
    from risk_manager.domain import SystemClock
    from risk_manager.store import Store, StoreUnwritableError
    if os.geteuid() == 0:  # root ignores permissions: become an ordinary user first
        os.setgid(65534)
        os.setuid(65534)
    try:
        asyncio.run(Store.open(sys.argv[1], SystemClock()))
    except StoreUnwritableError as exc:
        print(exc)
        sys.exit(0)
    sys.exit(3)
""")


def _open_as_other_user(path: Path) -> str:
    done = subprocess.run([sys.executable, "-c", _OPEN_AS_OTHER_USER, str(path)], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@posix_only
def test_read_only_directory_is_a_clear_error_at_start_up(shared_dir: Path) -> None:
    read_only = shared_dir / "ro"
    read_only.mkdir()
    read_only.chmod(0o555)
    message = _open_as_other_user(read_only / "risk.db")
    assert str(read_only / "risk.db") in message
    assert "not writable" in message or "cannot be created" in message
    assert "database.path" in message


@posix_only
async def test_existing_database_in_a_read_only_directory_is_a_clear_error(shared_dir: Path,
                                                                         clock: VirtualClock) -> None:
    path = shared_dir / "ro" / "risk.db"
    store = await Store.open(path, clock)
    await store.close()
    path.chmod(0o666)
    path.parent.chmod(0o555)
    message = _open_as_other_user(path)
    assert f"directory {path.parent} is not writable" in message and "-wal" in message


@posix_only
async def test_new_files_are_0600_in_a_0700_directory(tmp_path: Path, clock: VirtualClock) -> None:
    path = tmp_path / "a" / "b" / "risk.db"
    old_umask = os.umask(0o022)
    try:
        store = await Store.open(path, clock)
        store.append_journal("e", {})
        await store.flush()
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.parent.iterdir()}
        await store.close()
    finally:
        os.umask(old_umask)
    assert modes["risk.db"] == 0o600
    assert modes["risk.db-wal"] == 0o600  # SQLite gives the WAL and shm files the database's mode
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700


@posix_only
async def test_a_world_readable_database_is_tightened(db_path: Path, clock: VirtualClock,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    store = await Store.open(db_path, clock)
    await store.close()
    os.chmod(db_path, 0o644)
    with caplog.at_level(logging.INFO, logger="risk_manager.store"):
        store = await Store.open(db_path, clock)
        await store.close()
    assert _mode(db_path) == 0o600
    assert "store_permissions_tightened" in caplog.text


async def _fill_the_disk(store: Store) -> None:
    """Cap the database at its current size: the next growth fails with SQLITE_FULL, like a full disk."""
    await store._call(lambda conn: conn.execute(
        "PRAGMA max_page_count = " + str(conn.execute("PRAGMA page_count").fetchone()[0])))


async def test_disk_full_while_running_switches_to_memory_with_a_loud_warning(
        db_path: Path, clock: VirtualClock, caplog: pytest.LogCaptureFixture) -> None:
    reasons: list[str] = []
    store = await Store.open(db_path, clock, on_degraded=reasons.append)
    lock = LockRecord("lock-1", 7, "until_reset", "daily loss limit", START)
    await store.add_lock(lock)
    store.append_journal("before", {"n": 1})
    await store.flush()
    await _fill_the_disk(store)
    with caplog.at_level(logging.WARNING, logger="risk_manager.store"):
        for i in range(2000):  # the event path: never raises
            store.append_journal("after", {"n": i, "pad": "x" * 500})
        await store.flush()
        assert await store.claim("k", 7, {"kind": "flatten_account"})
        assert not await store.claim("k", 7, {"kind": "flatten_account"})
    assert store.degraded and reasons and "full" in reasons[0]
    assert store.degraded_reason == reasons[0]
    [record] = [r for r in caplog.records if "store_degraded " in r.getMessage()]
    assert record.levelno == logging.ERROR and "will NOT survive a restart" in record.getMessage()
    # State from before the failure was carried into memory, and new writes land there.
    assert await store.active_locks() == [lock]
    journal = await store.journal()
    assert [e.kind for e in journal].count("after") == 2000 and journal[0].kind == "before"
    await store.close()
    # The disk file still holds what was committed before the failure, and opens clean.
    reopened = await Store.open(db_path, clock)
    try:
        assert await reopened.active_locks() == [lock]
        assert [e.kind for e in await reopened.journal()] == ["before"]
        assert not reopened.degraded
    finally:
        await reopened.close()


async def test_a_bad_payload_is_rejected_alone_and_logged(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="risk_manager.store"):
        store.append_journal("ok", {"n": 1})
        store.append_journal("bad", {"n": object()})
        store.append_journal("ok", {"n": 3})
        await store.flush()
    assert [e.kind for e in await store.journal()] == ["ok", "ok"]
    assert "store_write_rejected" in caplog.text and "journal bad seq=2" in caplog.text
    assert not store.degraded


async def test_a_closed_store_refuses_calls(store: Store) -> None:
    await store.close()
    with pytest.raises(StoreClosedError):
        store.append_journal("e", {})
    with pytest.raises(StoreClosedError):
        await store.flush()


def _overwrite_with_garbage(path: Path) -> None:
    with path.open("r+b") as file:
        file.write(os.urandom(path.stat().st_size))


async def test_a_file_corrupted_while_running_degrades_even_when_nothing_can_be_copied(
        db_path: Path, clock: VirtualClock, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_module, "DEGRADED_JOURNAL_KEEP", 100)
    store = await Store.open(db_path, clock)
    for i in range(3000):
        store.append_journal("e", {"i": i, "pad": "y" * 300})
    await store.flush()
    await store._call(lambda conn: conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall(), transaction=False)
    await store._call(lambda conn: conn.execute("PRAGMA cache_size = -1"), transaction=False)  # reread pages
    _overwrite_with_garbage(db_path)
    with caplog.at_level(logging.ERROR, logger="risk_manager.store"):
        for i in range(500):
            store.append_journal("after", {"i": i})
        await store.add_lock(LockRecord("l", 7, "manual", "break", START))
    assert store.degraded
    assert "store_degraded_copy_failed" in caplog.text and "state_copied=False" in caplog.text
    assert [lock.id for lock in await store.active_locks()] == ["l"]
    journal = await store.journal()
    assert len(journal) == 100 and journal[-1].seq == 3500  # the in-memory journal keeps its newest entries
    await store.close()


async def test_a_batch_size_below_one_is_refused(db_path: Path, clock: VirtualClock) -> None:
    with pytest.raises(ValueError, match="batch_max must be ≥ 1, got 0"):
        await Store.open(db_path, clock, batch_max=0)


async def test_small_batches_still_keep_order(db_path: Path, clock: VirtualClock) -> None:
    store = await Store.open(db_path, clock, batch_max=3)
    try:
        for i in range(10):
            store.append_journal("e", {"i": i})
        assert await store.claim("k", 7, {})
        assert [e.payload["i"] for e in await store.journal()] == list(range(10))
    finally:
        await store.close()
