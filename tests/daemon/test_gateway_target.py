"""`--gateway URL` keeps every other setting; `--sim` reads missing credential variables as placeholders."""

from __future__ import annotations

import pytest

from risk_manager.daemon.gateway_target import SimulatorEnvironment, point_at
from risk_manager.gateway import GatewayConfig


def test_point_at_moves_rest_and_hubs_only() -> None:
    base = GatewayConfig.load({"api": {"timeout": 1234}, "signalr": {"reconnection": {"maxAttempts": 7}}})
    moved = point_at(base, "http://127.0.0.1:5100/")
    assert moved.api.base_url == "http://127.0.0.1:5100/api"
    assert moved.signalr.user_hub_url == "http://127.0.0.1:5100/hubs/user"
    assert moved.signalr.market_hub_url == "http://127.0.0.1:5100/hubs/market"
    assert moved.api.timeout == 1234 and moved.signalr.reconnection.max_attempts == 7
    with pytest.raises(ValueError, match="http:// or https://"):
        point_at(base, "ftp://example")


def test_simulator_environment() -> None:
    env = SimulatorEnvironment({"SET": "value"})
    assert env["SET"] == "value"
    assert "ANYTHING" in env and env["TOPSTEPX_API_KEY"] == "simulated-topstepx_api_key"
    assert list(env) == ["SET"] and len(env) == 1
