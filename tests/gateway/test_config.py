from __future__ import annotations

import pytest

from risk_manager.gateway import GatewayConfig, GatewayConfigError
from risk_manager.gateway.config import REAL_API_URL


def test_defaults_match_the_seed_schema() -> None:
    c = GatewayConfig.load({})
    assert c.api.timeout == 30000
    assert c.authentication.token_refresh.buffer_seconds == 7200
    assert c.signalr.reconnection.delays == [0, 2000, 10000, 30000, 60000]
    assert c.signalr.reconnection.max_attempts == 10
    assert c.error_handling.retries.max_attempts == 5
    assert [c.error_handling.retries.delay_s(i) for i in range(5)] == [1, 2, 4, 8, 16]
    assert c.error_handling.rate_limit.general.requests == 200
    assert c.error_handling.rate_limit.history.window_seconds == 30
    assert c.error_handling.circuit_breaker.half_open_requests == 3
    assert c.order_management.idempotency.cache_ttl == 3600
    assert c.state_reconciliation.min_interval == 5000
    assert c.api.base_url == REAL_API_URL   # the protocol doc's host, never contacted


def test_seed_yaml_keys_are_accepted_and_other_sections_ignored() -> None:
    data = {
        "api": {"baseUrl": "http://127.0.0.1:5100/api/", "timeout": 1000},
        "signalr": {"reconnection": {"maxAttempts": 3, "delays": [0, 50], "maxDelayMs": 40},
                    "health": {"pingInterval": 1000, "pingTimeout": 500, "staleThreshold": 2000},
                    "subscriptions": {"autoResubscribe": True, "resubscribeDelay": 0}},
        "errorHandling": {"retries": {"maxAttempts": 2, "backoffBase": 10, "backoffMultiplier": 2,
                                      "maxBackoffMs": 15, "retryableErrors": [503]},
                          "rateLimit": {"history": {"requests": 5, "windowSeconds": 1},
                                        "general": {"requests": 10, "windowSeconds": 1},
                                        "queueSize": 3, "dropOldest": False},
                          "circuitBreaker": {"failureThreshold": 2, "timeout": 100, "halfOpenRequests": 1}},
        "database": {"schemaVersion": 2},
        "logging": {"level": "INFO"},
    }
    c = GatewayConfig.load(data)
    assert c.api.base_url == "http://127.0.0.1:5100/api"
    assert c.api.timeout_s == 1.0
    assert c.signalr.reconnection.delay_s(1) == 0.04
    assert c.signalr.reconnection.delay_s(7) == 0.04  # past the list: its last delay, capped at maxDelayMs
    assert c.error_handling.retries.delay_s(3) == 0.015
    assert c.error_handling.rate_limit.drop_oldest is False


@pytest.mark.parametrize(("data", "fragment"), [
    ({"api": {"timeout": -1}}, "api.timeout"),
    ({"signalr": {"reconnection": {"delays": [0, -5]}}}, "signalr.reconnection.delays"),
    ({"errorHandling": {"retries": {"maxAtempts": 3}}}, "errorHandling.retries.maxAtempts: unknown key"),
    ({"authentication": {"storage": {"type": "plaintext"}}}, "authentication.storage.type"),
    ({"api": {"baseUrl": "ftp://x"}}, "api.baseUrl"),
])
def test_bad_values_name_file_and_key(data: dict[str, object], fragment: str) -> None:
    with pytest.raises(GatewayConfigError) as info:
        GatewayConfig.load(data, source="/etc/risk-manager/config.yaml")
    assert str(info.value).startswith("/etc/risk-manager/config.yaml: invalid configuration")
    assert fragment in str(info.value)


def test_for_server_builds_sim_urls() -> None:
    c = GatewayConfig.for_server("http://127.0.0.1:5100/", {"api": {"timeout": 500}})
    assert c.api.base_url == "http://127.0.0.1:5100/api"
    assert c.signalr.user_hub_url == "http://127.0.0.1:5100/hubs/user"
    assert c.signalr.market_hub_url == "http://127.0.0.1:5100/hubs/market"
    assert c.api.timeout == 500
