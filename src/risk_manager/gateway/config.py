"""Configuration of the Gateway client: the `config.yaml` sections of the seeds' master schema.

Sections and key names are those of the "Master Configuration Schema" (`api`, `authentication`,
`signalr`, `errorHandling`, `orderManagement`, `stateReconciliation`), camelCase, with the same
defaults. Durations keep the seed's units (milliseconds unless the key says `Seconds`); each
section offers the value in seconds as a property. Keys this client adds beyond the seed are
marked "addition" below and in `docs/gateway-client.md`.

Unknown keys inside these sections are refused (a typo must not silently fall back to a default);
other top-level sections of `config.yaml` (rules, database, logging, ...) are ignored here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from risk_manager.gateway.errors import GatewayConfigError

REAL_API_URL = "https://api.topstepx.com/api"
REAL_USER_HUB_URL = "https://rtc.topstepx.com/hubs/user"
REAL_MARKET_HUB_URL = "https://rtc.topstepx.com/hubs/market"


class _Section(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


Millis = int


def _positive(value: float, name: str) -> float:
    if value <= 0:
        raise ValueError(f"{name} must be greater than 0")
    return value


class ApiConfig(_Section):
    # The seed's default "https://gateway.topstepx.com" is not the documented REST root;
    # gateway-protocol.md wins: https://api.topstepx.com/api.
    base_url: str = REAL_API_URL
    timeout: Millis = Field(30_000, gt=0)

    @property
    def timeout_s(self) -> float:
        return self.timeout / 1000.0

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


class TokenRefreshConfig(_Section):
    buffer_seconds: int = Field(7200, ge=0)
    max_retries: int = Field(3, ge=0)
    retry_delay_ms: list[Millis] = Field(default_factory=lambda: [1000, 5000, 15000])


class StorageConfig(_Section):
    type: Literal["encrypted", "memory"] = "encrypted"
    encryption: Literal["AES-256", "AES-256-GCM"] = "AES-256"
    key_source: Literal["environment", "keyring"] = "environment"
    # addition: where the encrypted token file lives.
    path: Path = Field(default_factory=lambda: Path.home() / ".risk-manager" / "token.enc")
    # addition: the environment variable holding the base64 or hex 32-byte key.
    key_env: str = "RISK_MANAGER_TOKEN_KEY"


class AuthenticationConfig(_Section):
    token_refresh: TokenRefreshConfig = Field(default_factory=lambda: TokenRefreshConfig.model_validate({}))
    storage: StorageConfig = Field(default_factory=lambda: StorageConfig.model_validate({}))


class ReconnectionConfig(_Section):
    max_attempts: int = Field(10, ge=1)
    delays: list[Millis] = Field(default_factory=lambda: [0, 2000, 10000, 30000, 60000], min_length=1)
    max_delay_ms: Millis = Field(60_000, ge=0)
    # addition: random extra delay, as a fraction of each delay (0.2 → up to +20 %).
    jitter: float = Field(0.2, ge=0, le=1)

    @field_validator("delays")
    @classmethod
    def _non_negative(cls, value: list[int]) -> list[int]:
        if any(v < 0 for v in value):
            raise ValueError("delays must be >= 0 milliseconds")
        return value

    def delay_s(self, attempt: int) -> float:
        """The base delay before reconnection attempt `attempt` (0-based), without jitter."""
        # Past the list: keep trying at its last delay (the seed's 60 s), never above maxDelayMs.
        return min(self.delays[min(attempt, len(self.delays) - 1)], self.max_delay_ms) / 1000.0


class HealthConfig(_Section):
    ping_interval: Millis = Field(30_000, gt=0)
    ping_timeout: Millis = Field(5_000, gt=0)
    stale_threshold: Millis = Field(120_000, gt=0)


class SubscriptionsConfig(_Section):
    auto_resubscribe: bool = True
    resubscribe_delay: Millis = Field(1000, ge=0)


class SignalRConfig(_Section):
    # additions: the hub addresses.
    user_hub_url: str = REAL_USER_HUB_URL
    market_hub_url: str = REAL_MARKET_HUB_URL
    reconnection: ReconnectionConfig = Field(default_factory=lambda: ReconnectionConfig.model_validate({}))
    health: HealthConfig = Field(default_factory=lambda: HealthConfig.model_validate({}))
    subscriptions: SubscriptionsConfig = Field(default_factory=lambda: SubscriptionsConfig.model_validate({}))


class RetriesConfig(_Section):
    # Retries after the first try: the seed's 5 with delays 1, 2, 4, 8, 16 s.
    max_attempts: int = Field(5, ge=0)
    backoff_base: Millis = Field(1000, ge=0)
    backoff_multiplier: float = Field(2, ge=1)
    max_backoff_ms: Millis = Field(60_000, ge=0)
    retryable_errors: list[int] = Field(default_factory=lambda: [408, 429, 500, 502, 503, 504])
    # addition: random extra delay as a fraction of each backoff.
    jitter: float = Field(0.2, ge=0, le=1)

    def delay_s(self, retry: int) -> float:
        """Base delay before retry number `retry` (0-based), without jitter."""
        return min(self.backoff_base * self.backoff_multiplier ** retry, self.max_backoff_ms) / 1000.0


class WindowConfig(_Section):
    requests: int = Field(gt=0)
    window_seconds: float = Field(gt=0)


class RateLimitConfig(_Section):
    history: WindowConfig = Field(default_factory=lambda: WindowConfig(requests=50, window_seconds=30))
    general: WindowConfig = Field(default_factory=lambda: WindowConfig(requests=200, window_seconds=60))
    queue_size: int = Field(1000, ge=0)
    drop_oldest: bool = True


class CircuitBreakerConfig(_Section):
    failure_threshold: int = Field(5, ge=1)
    timeout: Millis = Field(60_000, ge=0)
    half_open_requests: int = Field(3, ge=1)


class ErrorHandlingConfig(_Section):
    retries: RetriesConfig = Field(default_factory=lambda: RetriesConfig.model_validate({}))
    rate_limit: RateLimitConfig = Field(default_factory=lambda: RateLimitConfig.model_validate({}))
    circuit_breaker: CircuitBreakerConfig = Field(default_factory=lambda: CircuitBreakerConfig.model_validate({}))


class VerificationConfig(_Section):
    enabled: bool = True
    timeout: Millis = Field(5000, gt=0)
    max_retries: int = Field(3, ge=1)


class PartialFillsConfig(_Section):
    tracking_enabled: bool = True
    complete_timeout: Millis = Field(60_000, gt=0)


class IdempotencyConfig(_Section):
    enabled: bool = True
    cache_ttl: int = Field(3600, ge=0)  # seconds


class OrderManagementConfig(_Section):
    verification: VerificationConfig = Field(default_factory=lambda: VerificationConfig.model_validate({}))
    partial_fills: PartialFillsConfig = Field(default_factory=lambda: PartialFillsConfig.model_validate({}))
    idempotency: IdempotencyConfig = Field(default_factory=lambda: IdempotencyConfig.model_validate({}))


class StateReconciliationConfig(_Section):
    enabled: bool = True
    on_reconnect: bool = True
    min_interval: Millis = Field(5000, ge=0)
    compare_positions: bool = True
    compare_orders: bool = True
    compare_account: bool = True
    # additions: REST polling while the user hub is down (issue 3 §5).
    poll_after: Millis = Field(10_000, ge=0)
    poll_interval: Millis = Field(2_000, gt=0)


class GatewayConfig(BaseModel):
    """The Gateway client's configuration; build it with `GatewayConfig.load(yaml_dict, source=...)`."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)

    api: ApiConfig = Field(default_factory=lambda: ApiConfig.model_validate({}))
    authentication: AuthenticationConfig = Field(default_factory=lambda: AuthenticationConfig.model_validate({}))
    signalr: SignalRConfig = Field(default_factory=lambda: SignalRConfig.model_validate({}))
    error_handling: ErrorHandlingConfig = Field(default_factory=lambda: ErrorHandlingConfig.model_validate({}))
    order_management: OrderManagementConfig = Field(default_factory=lambda: OrderManagementConfig.model_validate({}))
    state_reconciliation: StateReconciliationConfig = Field(
        default_factory=lambda: StateReconciliationConfig.model_validate({}))

    @model_validator(mode="before")
    @classmethod
    def _signalr_key(cls, data: Any) -> Any:
        # to_camel("signalr") is "signalr" already; accept the "signalR" spelling too.
        if isinstance(data, dict) and "signalR" in data and "signalr" not in data:
            data = {**data, "signalr": data["signalR"]}
            del data["signalR"]
        return data

    @classmethod
    def load(cls, data: Any, source: str = "config.yaml") -> GatewayConfig:
        """Validate `data` (the parsed YAML), raising `GatewayConfigError` naming file, key and problem."""
        if data is None:
            data = {}
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise GatewayConfigError.from_validation(source, exc) from None

    @classmethod
    def for_server(cls, base_url: str, overrides: dict[str, Any] | None = None) -> GatewayConfig:
        """A config for a server at `base_url` (e.g. the simulator's `http://127.0.0.1:5100`):
        REST under `/api`, hubs under `/hubs/user` and `/hubs/market`; `overrides` as in config.yaml."""
        root = base_url.rstrip("/")
        data: dict[str, Any] = {
            "api": {"baseUrl": root + "/api"},
            "signalr": {"userHubUrl": root + "/hubs/user", "marketHubUrl": root + "/hubs/market"},
        }
        for section, values in (overrides or {}).items():
            merged = dict(data.get(section, {}))
            merged.update(values)
            data[section] = merged
        return cls.load(data, source="<for_server>")
