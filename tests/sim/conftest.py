"""Fixtures: a simulator on 127.0.0.1 (ephemeral port) and an HTTP client logged in to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from risk_manager.sim import SimConfig, Simulator

MNQ = "CON.F.US.MNQ.Z26"
ES = "CON.F.US.EP.Z26"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(SimConfig(quote_feed="scripted")) as simulator:
        yield simulator


class Api:
    """A thin REST caller for tests: posts JSON with the bearer token, returns the decoded body."""

    def __init__(self, client: httpx.AsyncClient, token: str | None = None) -> None:
        self.client = client
        self.token = token

    async def raw(self, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        headers.update(kwargs.pop("headers", {}))
        if body is None:
            return await self.client.post(path, headers=headers, **kwargs)
        return await self.client.post(path, json=body, headers=headers, **kwargs)

    async def call(self, path: str, body: Any = None) -> dict[str, Any]:
        response = await self.raw(path, body)
        assert response.status_code == 200, (path, response.status_code, response.text)
        data = response.json()
        assert isinstance(data, dict)
        return data

    async def login(self, user: str = "trader", key: str = "secret-key-1") -> str:
        data = await self.call("/api/Auth/loginKey", {"userName": user, "apiKey": key})
        assert data["success"], data
        self.token = data["token"]
        return str(data["token"])


@asynccontextmanager
async def logged_in(sim: Simulator) -> AsyncIterator[Api]:
    """An `Api` on `sim`, logged in as the default user."""
    async with httpx.AsyncClient(base_url=sim.base_url, timeout=10.0) as client:
        caller = Api(client)
        await caller.login()
        yield caller


@pytest.fixture
async def api(sim: Simulator) -> AsyncIterator[Api]:
    async with logged_in(sim) as caller:
        yield caller


def place_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"accountId": 1001, "contractId": MNQ, "type": 2, "side": 0, "size": 1}
    body.update(overrides)
    return body
