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


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.setblocking(False)
    yield sock
    sock.close()


def received(sock: socket.socket) -> list[str]:
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except BlockingIOError:
            return messages


def test_run_serves_health_sd_notify_logs_and_dashboard(tmp_path: Path, notify_socket: socket.socket) -> None:
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
    messages: list[str] = []
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "risk_manager", "run", "--config", str(config), "--sim"],
                                   stdout=out, stderr=out, env=env)
        try:
            def got(text: str, times: int = 1) -> bool:
                messages.extend(received(notify_socket))
                return sum(text in m for m in messages) >= times

            wait_for(lambda: got("READY=1"), "READY=1", process, log)
            ready = next(m for m in messages if "READY=1" in m)
            assert "STATUS=protecting 1 account(s)" in ready
            wait_for(lambda: got("WATCHDOG=1", 2), "two WATCHDOG=1", process, log, 5)

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
    messages.extend(received(notify_socket))
    assert any(m.startswith("STOPPING=1") for m in messages), messages
    assert "operations_stopped" in (data / "logs" / "daemon.log").read_text()
