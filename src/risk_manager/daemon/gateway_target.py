"""Where the daemon connects: the configured Gateway, another server (`--gateway URL`) or the simulator."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping

from risk_manager.gateway import GatewayConfig


def point_at(config: GatewayConfig, base_url: str) -> GatewayConfig:
    """`config` with REST under `base_url/api` and the hubs under `base_url/hubs/{user,market}`;
    every other setting (timeouts, retries, rate limits...) is kept."""
    root = base_url.rstrip("/")
    if not root.startswith(("http://", "https://")):
        raise ValueError(f"--gateway must be an http:// or https:// address, got {base_url!r}")
    api = config.api.model_copy(update={"base_url": root + "/api"})
    signalr = config.signalr.model_copy(update={"user_hub_url": root + "/hubs/user",
                                                "market_hub_url": root + "/hubs/market"})
    return config.model_copy(update={"api": api, "signalr": signalr})


class SimulatorEnvironment(Mapping[str, str]):
    """The process environment, where a missing variable reads as a placeholder: with `--sim` the
    credentials referenced by accounts.yaml need not exist (the simulator accepts any API key)."""

    def __init__(self, base: Mapping[str, str] | None = None) -> None:
        self._base = os.environ if base is None else base

    def __getitem__(self, key: str) -> str:
        return self._base.get(key, f"simulated-{key.lower()}")

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str)

    def __iter__(self) -> Iterator[str]:
        return iter(self._base)

    def __len__(self) -> int:
        return len(self._base)
