"""Bad input never crashes or hangs the simulator: random JSON to every REST endpoint and random
records on a hub connection. The simulator runs in its own thread and event loop."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from risk_manager.sim import SimConfig, Simulator


class _ErrorLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(f"{record.name}: {record.getMessage()}")


class ThreadedSim:
    def __init__(self) -> None:
        self.errors = _ErrorLog()
        self.loop = asyncio.new_event_loop()
        self.sim = Simulator(SimConfig(quote_feed="scripted", rate_limit_general=(1_000_000, 60.0),
                                       rate_limit_history=(1_000_000, 30.0)))
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> ThreadedSim:
        for name in ("aiohttp", "risk_manager.sim", "asyncio"):
            logging.getLogger(name).addHandler(self.errors)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.sim.start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.sim.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        for name in ("aiohttp", "risk_manager.sim", "asyncio"):
            logging.getLogger(name).removeHandler(self.errors)


@pytest.fixture(scope="module")
def threaded() -> Iterator[ThreadedSim]:
    with ThreadedSim() as running:
        yield running


@pytest.fixture(scope="module")
def http(threaded: ThreadedSim) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=threaded.sim.base_url, timeout=5.0) as client:
        token = client.post("/api/Auth/loginKey", json={"userName": "fuzz", "apiKey": "fuzz-key-1"}).json()["token"]
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


PATHS = ["/api/Account/search", "/api/Contract/search", "/api/Contract/searchById", "/api/Contract/available",
         "/api/History/retrieveBars", "/api/Order/search", "/api/Order/searchOpen", "/api/Order/searchById",
         "/api/Order/place", "/api/Order/cancel", "/api/Order/modify", "/api/Position/searchOpen",
         "/api/Position/closeContract", "/api/Position/partialCloseContract", "/api/Trade/search",
         "/api/Auth/validate", "/api/Auth/loginKey"]
KEYS = ["accountId", "contractId", "type", "side", "size", "limitPrice", "stopPrice", "trailPrice", "customTag",
        "orderId", "startTimestamp", "endTimestamp", "live", "searchText", "onlyActiveAccounts", "unit",
        "unitNumber", "limit", "includePartialBar", "startTime", "endTime", "stopLossBracket", "userName", "apiKey"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
                    st.text(max_size=12), st.sampled_from([1001, "CON.F.US.MNQ.Z26", "2026-03-03T15:00:00Z", 1, 2]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                      max_leaves=6)
bodies = st.one_of(st.dictionaries(st.sampled_from(KEYS), values, max_size=8), values)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(PATHS), body=bodies)
def test_random_json_gets_a_documented_answer(http: httpx.Client, path: str, body: Any) -> None:
    response = http.post(path, content=json.dumps(body))
    assert response.status_code in (200, 400), (path, body, response.status_code, response.text)
    if response.status_code == 200:
        data = response.json()
        assert isinstance(data["success"], bool) and isinstance(data["errorCode"], int)
    else:
        assert response.headers["content-type"].startswith("application/problem+json")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=64))
def test_random_bytes_get_a_documented_answer(http: httpx.Client, raw: bytes) -> None:
    response = http.post("/api/Order/place", content=raw)
    assert response.status_code in (200, 400)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(st.one_of(st.text(max_size=30), values.map(json.dumps)), max_size=4))
def test_random_hub_records_never_take_the_server_down(threaded: ThreadedSim, http: httpx.Client,
                                                        records: list[str]) -> None:
    token = str(http.headers["Authorization"]).removeprefix("Bearer ")

    async def session() -> None:
        import aiohttp

        async with aiohttp.ClientSession() as client, client.ws_connect(
                f"{threaded.sim.user_hub_url}?access_token={token}") as ws:
            await ws.send_str('{"protocol":"json","version":1}\x1e' + "\x1e".join(records) + "\x1e")
            try:
                while True:
                    msg = await ws.receive(timeout=0.2)
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        break
            except TimeoutError:
                pass

    asyncio.run(session())
    assert http.get("/api/Status/ping").json() == "pong"


def test_no_server_error_was_logged(threaded: ThreadedSim) -> None:
    """Runs last in this module: none of the inputs above made the server log an error."""
    assert threaded.errors.records == []
