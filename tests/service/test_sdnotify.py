from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from risk_manager.service.sdnotify import SdNotify, run_watchdog, watchdog_interval

pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="unix datagram sockets")


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(2)
        yield sock, str(path)


def test_states_reach_a_real_socket(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notify = SdNotify({"NOTIFY_SOCKET": path})
    assert notify.enabled
    assert notify.ready("protecting 2 accounts")
    assert sock.recv(4096) == b"READY=1\nSTATUS=protecting 2 accounts"
    assert notify.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert notify.status("reconnecting\nuser hub")
    assert sock.recv(4096) == b"STATUS=reconnecting user hub"
    assert notify.stopping()
    assert sock.recv(4096) == b"STOPPING=1"


def test_abstract_namespace_socket() -> None:
    name = f"risk-manager-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        assert SdNotify({"NOTIFY_SOCKET": "@" + name}).ready()
        assert sock.recv(64) == b"READY=1"


def test_without_systemd_nothing_happens(tmp_path: Path) -> None:
    assert not SdNotify({}).enabled
    assert not SdNotify({}).ready()
    assert not SdNotify({"NOTIFY_SOCKET": "vsock:2:1234"}).enabled
    gone = SdNotify({"NOTIFY_SOCKET": str(tmp_path / "missing.sock")})
    assert gone.enabled and not gone.watchdog()  # logged, never raised


def test_watchdog_interval_is_half_of_watchdog_sec() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, pid=2) is None
    assert watchdog_interval({}) is None and watchdog_interval({"WATCHDOG_USEC": "0"}) is None


async def test_watchdog_pings_only_while_healthy(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    sock.setblocking(False)
    health = {"ok": True}
    task = asyncio.create_task(run_watchdog(SdNotify({"NOTIFY_SOCKET": path}), lambda: health["ok"], 0.02))
    await asyncio.sleep(0.09)
    health["ok"] = False
    await asyncio.sleep(0.01)
    pings = _drain(sock)
    await asyncio.sleep(0.1)
    withheld = _drain(sock)
    health["ok"] = True
    await asyncio.sleep(0.05)
    resumed = _drain(sock)
    task.cancel()
    assert pings >= 3 and withheld == 0 and resumed >= 1


async def test_watchdog_returns_when_not_armed() -> None:
    await asyncio.wait_for(run_watchdog(SdNotify({}), lambda: True), 1)


def _drain(sock: socket.socket) -> int:
    count = 0
    while True:
        try:
            assert sock.recv(64) == b"WATCHDOG=1"
        except BlockingIOError:
            return count
        count += 1
