"""`risk-manager run --sim` in a subprocess serves what docs/operations.md says: sd_notify READY/WATCHDOG/STOPPING
on a unix datagram socket (NOTIFY_SOCKET), the health endpoint, rotating log files 0600, and the dashboard
channel that `risk-manager status --json` reads."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from risk_manager.daemon.config_templates import write_example_config

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and unix sockets")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: object, what: str, process: subprocess.Popen[bytes], log: Path, within_s: float = 20) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():  # type: ignore[operator]
        assert process.poll() is None, f"daemon exited while waiting for {what}:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"no {what} within {within_s} s:\n{log.read_text()}"
        time.sleep(0.05)


class NotifySocket:
    """A unix datagram socket read continuously by a thread, like systemd's (its queue never fills)."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue

    def count(self, text: str) -> int:
        return sum(text in m for m in list(self.messages))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


def test_run_serves_health_sd_notify_logs_and_dashboard(tmp_path: Path, notify_socket: NotifySocket) -> None:
    config = tmp_path / "cfg"
    write_example_config(config)
    data = tmp_path / "data"
    health_port, dashboard_port = free_port(), free_port()
    with (config / "config.yaml").open("a") as fh:
        fh.write(f"health: {{port: {health_port}, metrics: true}}\n"
                 f"dashboard: {{port: {dashboard_port}}}\n")
    env = {**os.environ, "RISK_MANAGER_DATA_DIR": str(data), "NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
           "WATCHDOG_USEC": "200000"}   # a ping every 0.1 s
    env.pop("WATCHDOG_PID", None)
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "risk_manager", "run", "--config", str(config), "--sim"],
                                   stdout=out, stderr=out, env=env)
        try:
            wait_for(lambda: notify_socket.count("READY=1"), "READY=1", process, log)
            ready = next(m for m in notify_socket.messages if "READY=1" in m)
            assert "STATUS=protecting 1 account(s)" in ready
            wait_for(lambda: notify_socket.count("WATCHDOG=1") >= 2, "two WATCHDOG=1", process, log, 5)

            health = httpx.get(f"http://127.0.0.1:{health_port}/health/ready", timeout=2)
            assert health.status_code == 200, health.text
            assert health.json()["ready"] is True
            assert httpx.get(f"http://127.0.0.1:{health_port}/health/live", timeout=2).status_code == 200
            exposition = httpx.get(f"http://127.0.0.1:{health_port}/metrics", timeout=2).text
            assert "risk_manager_connected_hubs 2.0" in exposition

            token = data / "dashboard.token"
            assert stat.S_IMODE(token.stat().st_mode) == 0o600
            status = subprocess.run([sys.executable, "-m", "risk_manager", "status", "--json", "--url",
                                     f"ws://127.0.0.1:{dashboard_port}", "--token-file", str(token)],
                                    capture_output=True, text=True, timeout=30, env=env)
            assert status.returncode == 0, status.stderr
            snapshot = json.loads(status.stdout)
            assert snapshot["source"] == "daemon" and snapshot["daemon"] == {"state": "fresh"}
            (account,) = snapshot["accounts"].values()
            assert account["connection"] == "connected"

            for name in ("daemon.log", "enforcement.log", "errors.log"):
                path = data / "logs" / name
                assert path.exists(), name
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
            assert stat.S_IMODE((data / "logs").stat().st_mode) == 0o700
            assert "daemon_protecting" in (data / "logs" / "daemon.log").read_text()

            stopped_at = time.monotonic()
            process.send_signal(signal.SIGTERM)
            assert process.wait(6) == 0, log.read_text()
            assert time.monotonic() - stopped_at < 5.0
        finally:
            if process.poll() is None:
                process.kill()
    time.sleep(0.2)
    assert any(m.startswith("STOPPING=1") for m in notify_socket.messages), notify_socket.messages
    assert "sd_notify_failed" not in log.read_text()
    assert "operations_stopped" in (data / "logs" / "daemon.log").read_text()
