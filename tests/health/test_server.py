"""The health endpoint on 127.0.0.1 (ephemeral port) with fake probes, and its refusals."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest

from risk_manager.health import HealthServer, HealthServerError, LivenessMonitor, Metrics, ReadinessBoard, ReadyState


@dataclass
class FakeProbes:
    live: bool = True
    state: ReadyState = field(default_factory=lambda: ReadyState(True, [], {"PRAC-1": {"ready": True}}))

    def is_live(self) -> bool:
        return self.live

    def ready(self) -> ReadyState:
        return self.state


@pytest.fixture
async def served() -> AsyncIterator[tuple[FakeProbes, httpx.AsyncClient]]:
    probes = FakeProbes()
    async with HealthServer("127.0.0.1", 0, live=probes.is_live, ready=probes.ready) as server, \
            httpx.AsyncClient(base_url=server.url, timeout=5) as http:
        yield probes, http


async def test_live_and_ready_flip_with_the_probes(served: tuple[FakeProbes, httpx.AsyncClient]) -> None:
    probes, http = served
    live = await http.get("/health/live")
    assert live.status_code == 200 and live.json() == {"live": True, "reasons": []}
    assert live.headers["cache-control"] == "no-store"
    ready = await http.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert ready.json()["accounts"] == {"PRAC-1": {"ready": True}}

    probes.state = ReadyState(False, ["account PRAC-1: user hub is reconnecting"],
                              {"PRAC-1": {"ready": False, "reason": "user hub is reconnecting"}},
                              {"user hub": "reconnecting"})
    probes.live = False
    not_ready = await http.get("/health/ready")
    assert not_ready.status_code == 503
    assert not_ready.json() == {"ready": False, "reasons": ["account PRAC-1: user hub is reconnecting"],
                                "hubs": {"user hub": "reconnecting"},
                                "accounts": {"PRAC-1": {"ready": False, "reason": "user hub is reconnecting"}}}
    assert (await http.get("/health/live")).status_code == 503

    probes.live, probes.state = True, ReadyState(True, [], {})
    assert (await http.get("/health/live")).status_code == 200
    assert (await http.get("/health/ready")).status_code == 200


async def test_metrics_route_only_when_enabled(served: tuple[FakeProbes, httpx.AsyncClient]) -> None:
    _probes, http = served
    assert (await http.get("/metrics")).status_code == 404
    assert (await http.post("/health/ready")).status_code == 405


async def test_a_probe_that_raises_is_not_healthy(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> ReadyState:
        raise RuntimeError("boom")

    def broken_live() -> bool:
        raise KeyError("x")

    async with HealthServer("127.0.0.1", 0, live=broken_live, ready=broken) as server, \
            httpx.AsyncClient(base_url=server.url) as http:
        ready = await http.get("/health/ready")
        live = await http.get("/health/live")
    assert ready.status_code == 503 and ready.json()["reasons"] == ["the readiness check failed: RuntimeError"]
    assert live.status_code == 503 and live.json()["reasons"] == ["the liveness check failed: KeyError"]
    assert "health_check_failed check=ready error=RuntimeError('boom')" in caplog.text


async def test_liveness_names_the_task_that_ended(caplog: pytest.LogCaptureFixture) -> None:
    monitor = LivenessMonitor()

    async def worker() -> None:
        await asyncio.sleep(3600)

    async def crasher() -> None:
        raise ValueError("journal disk full")

    keep = asyncio.create_task(worker(), name="engine-worker")
    crash = asyncio.create_task(crasher())
    monitor.watch(keep)
    monitor.watch(crash, "enforcement-queue")
    async with HealthServer("127.0.0.1", 0, live=monitor, ready=ReadinessBoard(),
                            live_reasons=monitor.reasons) as server, httpx.AsyncClient(base_url=server.url) as http:
        await asyncio.sleep(0)  # the crasher runs and ends
        live = await http.get("/health/live")
        assert live.status_code == 503
        assert live.json()["reasons"] == ["task enforcement-queue crashed: ValueError('journal disk full')"]
        assert "task_ended task=enforcement-queue" in caplog.text
        monitor.forget("enforcement-queue")
        assert (await http.get("/health/live")).status_code == 200
        keep.cancel()
        await asyncio.sleep(0)
        assert (await http.get("/health/live")).json()["reasons"] == ["task engine-worker cancelled"]
        monitor.forget_all()
        assert (await http.get("/health/live")).status_code == 200
        starting = await http.get("/health/ready")
        assert starting.status_code == 503
        assert starting.json()["reasons"] == ["nothing to protect yet: the daemon is starting"]


def test_only_loopback_hosts() -> None:
    def ready() -> ReadyState:
        return ReadyState(True, [], {})

    for host in ("0.0.0.0", "192.168.1.10", "example.com", "::"):
        with pytest.raises(HealthServerError, match="loopback"):
            HealthServer(host, 0, live=lambda: True, ready=ready)
    assert HealthServer("::1", 0, live=lambda: True, ready=ready).host == "::1"


async def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = HealthServer("127.0.0.1", port, live=lambda: True, ready=ReadinessBoard())
        with pytest.raises(HealthServerError, match=rf"127\.0\.0\.1:{port} .*health\.port"):
            await server.start()
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.port


async def test_metrics_endpoint_serves_the_registry() -> None:
    metrics = Metrics()
    metrics.event("trade")
    async with HealthServer("127.0.0.1", 0, live=lambda: True, ready=ReadinessBoard(), metrics=metrics) as server, \
            httpx.AsyncClient(base_url=server.url) as http:
        answer = await http.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    assert 'risk_manager_events_total{kind="trade"} 1.0' in answer.text
