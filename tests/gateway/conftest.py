"""Fixtures: the project's simulator on 127.0.0.1 (ephemeral port) and a fast client configuration."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from risk_manager.domain import VirtualClock
from risk_manager.gateway import GatewayConfig

T0 = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)


def fast_config(base_url: str, **sections: dict[str, Any]) -> GatewayConfig:
    """Small delays so resilience tests run in well under a second each."""
    overrides: dict[str, dict[str, Any]] = {
        "api": {"timeout": 2000},
        "authentication": {"tokenRefresh": {"retryDelayMs": [10, 20, 50]}, "storage": {"type": "memory"}},
        "signalr": {"reconnection": {"delays": [0, 50, 100, 200], "maxDelayMs": 200, "jitter": 0.1},
                    "subscriptions": {"resubscribeDelay": 0}},
        "errorHandling": {"retries": {"backoffBase": 10, "maxBackoffMs": 80}},
        "orderManagement": {"verification": {"timeout": 600}},
        "stateReconciliation": {"minInterval": 0},
    }
    for name, values in sections.items():
        merged = dict(overrides.get(name, {}))
        merged.update(values)
        overrides[name] = merged
    return GatewayConfig.for_server(base_url, overrides)


@pytest.fixture
async def sim() -> AsyncIterator[Any]:
    sim_module = pytest.importorskip("risk_manager.sim")
    simulator = sim_module.Simulator(sim_module.SimConfig(seed=1, quote_feed="scripted"))
    await simulator.start(host="127.0.0.1", port=0)
    try:
        yield simulator
    finally:
        await simulator.stop()


@pytest.fixture
def vclock() -> VirtualClock:
    return VirtualClock(T0)


@pytest.fixture
async def vsim(vclock: VirtualClock) -> AsyncIterator[Any]:
    """A simulator on a virtual clock (rate-limit windows, token exp and fault durations follow it)."""
    sim_module = pytest.importorskip("risk_manager.sim")
    simulator = sim_module.Simulator(sim_module.SimConfig(seed=1, quote_feed="scripted", clock=vclock))
    await simulator.start(host="127.0.0.1", port=0)
    try:
        yield simulator
    finally:
        await simulator.stop()
