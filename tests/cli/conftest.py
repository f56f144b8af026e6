"""Fixtures of the CLI tests: an initialised admin directory (cheap argon2 parameters) and a health endpoint
served from a background thread (CliRunner runs the command synchronously in the test's thread)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from risk_manager.health import HealthServer, ReadyState
from risk_manager.security.admin_directory import AdminDirectory
from risk_manager.security.paths import AdminPaths
from tests.security.conftest import ADMIN_PW, CHEAP


@pytest.fixture
def admin_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "config"
    AdminDirectory(AdminPaths(directory)).initialise(ADMIN_PW, CHEAP, "password")
    return directory


class ThreadedHealth:
    """A `HealthServer` on 127.0.0.1:0 in its own thread and event loop; `state` is what /health/ready answers."""

    def __init__(self, state: ReadyState) -> None:
        self.state = state
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._serve(),), daemon=True)

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with HealthServer("127.0.0.1", 0, live=lambda: True, ready=lambda: self.state) as server:
            self.port = server.port
            self._started.set()
            await self._stop.wait()

    def __enter__(self) -> ThreadedHealth:
        self._thread.start()
        assert self._started.wait(5), "the health server did not start"
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)
        self._loop.close()


@pytest.fixture
def health_endpoint() -> Iterator[Callable[[ReadyState], ThreadedHealth]]:
    servers: list[ThreadedHealth] = []

    def serve(state: ReadyState) -> ThreadedHealth:
        server = ThreadedHealth(state).__enter__()
        servers.append(server)
        return server

    yield serve
    for server in servers:
        server.__exit__()
