"""Rate limits (exact), every fault kind, the virtual clock and the control API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import httpx
import pytest

from risk_manager.domain import VirtualClock
from risk_manager.sim import SimConfig, Simulator
from risk_manager.sim.control import _is_loopback
from risk_manager.sim.ratelimit import SlidingWindowLimiter
from tests.sim.conftest import MNQ, Api, logged_in, place_body
from tests.sim.hubclient import RawHub

START = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(START)


@pytest.fixture
async def vsim(clock: VirtualClock) -> AsyncIterator[Simulator]:
    async with Simulator(SimConfig(clock=clock, quote_feed="scripted")) as simulator:
        yield simulator


@pytest.fixture
async def vapi(vsim: Simulator) -> AsyncIterator[Api]:
    async with logged_in(vsim) as caller:
        yield caller


# -- rate limits -------------------------------------------------------------------------------------

async def test_the_201st_request_in_60s_is_429(vapi: Api, vsim: Simulator, clock: VirtualClock) -> None:
    body = {"onlyActiveAccounts": True}
    for i in range(200):
        response = await vapi.raw("/api/Account/search", body)
        assert response.status_code == 200, i
        if i == 99:
            clock.advance(timedelta(seconds=30))
    refused = await vapi.raw("/api/Account/search", body)
    assert refused.status_code == 429 and refused.content == b""
    assert "retry-after" not in refused.headers
    assert vsim.recorder.http_429 == 1
    clock.advance(timedelta(seconds=30))  # the first 100 leave the window
    assert (await vapi.raw("/api/Account/search", body)).status_code == 200


async def test_history_allows_50_per_30s(vapi: Api, clock: VirtualClock) -> None:
    body = {"contractId": MNQ, "live": False, "startTime": "2026-03-03T14:00:00Z", "endTime": "2026-03-03T15:00:00Z",
            "unit": 2, "unitNumber": 1, "limit": 1, "includePartialBar": False}
    for _ in range(50):
        assert (await vapi.raw("/api/History/retrieveBars", body)).status_code == 200
    assert (await vapi.raw("/api/History/retrieveBars", body)).status_code == 429
    # the general budget is separate
    assert (await vapi.raw("/api/Account/search", {"onlyActiveAccounts": True})).status_code == 200
    clock.advance(timedelta(seconds=30))
    assert (await vapi.raw("/api/History/retrieveBars", body)).status_code == 200


def test_limiter_counts_exactly(clock: VirtualClock) -> None:
    limiter = SlidingWindowLimiter(clock, 3, 10.0)
    assert [limiter.allow("k") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("other")
    clock.advance(9.999)
    assert not limiter.allow("k")
    clock.advance(0.001)
    assert limiter.allow("k")


# -- faults --------------------------------------------------------------------------------------------

async def test_rest_cut_refuses_until_the_clock_passes(vapi: Api, vsim: Simulator, clock: VirtualClock) -> None:
    vsim.faults.cut("rest", 5)
    with pytest.raises(httpx.TransportError):
        await vapi.raw("/api/Account/search", {"onlyActiveAccounts": True})
    assert vsim.recorder.requests[-1].status == 0
    clock.advance(timedelta(seconds=5))
    assert (await vapi.raw("/api/Account/search", {"onlyActiveAccounts": True})).status_code == 200


async def test_hub_cut_closes_connections_and_refuses_new_ones(vapi: Api, vsim: Simulator,
                                                               clock: VirtualClock) -> None:
    token = vapi.token
    hub = await RawHub.connect(vsim.user_hub_url, token)
    market = await RawHub.connect(vsim.market_hub_url, token)
    vsim.faults.apply({"cut": "user_hub", "for": "10s"})
    msg = await hub.ws.receive(timeout=3)
    assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE)
    with pytest.raises((aiohttp.ClientError, ConnectionError)):
        await RawHub.connect(vsim.user_hub_url, token)
    async with httpx.AsyncClient(base_url=vsim.base_url) as client:
        with pytest.raises(httpx.TransportError):
            await client.post(f"/hubs/user/negotiate?access_token={token}")
    # the market hub is untouched
    await market.invoke("SubscribeContractQuotes", MNQ, invocation_id="1")
    assert (await market.next())["type"] in (1, 3)
    clock.advance(timedelta(seconds=10))
    again = await RawHub.connect(vsim.user_hub_url, token)
    await again.close()
    await market.close()
    await hub.close()


async def test_latency_delays_rest_and_hub(vapi: Api, vsim: Simulator) -> None:
    hub = await RawHub.connect(vsim.user_hub_url, vapi.token)
    await hub.invoke("SubscribeAccounts", invocation_id="1")
    await hub.next()
    vsim.faults.latency(rest_ms=150, hub_ms=150)
    started = time.perf_counter()
    await vapi.raw("/api/Account/search", {"onlyActiveAccounts": True})
    assert time.perf_counter() - started >= 0.15
    started = time.perf_counter()
    vsim.set_account(1001, balance=1.0)
    await hub.until(lambda m: m.get("target") == "GatewayUserAccount")
    assert time.perf_counter() - started >= 0.15
    await hub.close()


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_forced_http_errors(vapi: Api, vsim: Simulator, status: int) -> None:
    vsim.faults.http_errors(status, 2)
    for _ in range(2):
        response = await vapi.raw("/api/Order/place", place_body())
        assert response.status_code == status and response.content == b""
    assert (await vapi.raw("/api/Order/place", place_body())).status_code == 200
    assert len(vsim.broker.orders(1001)) == 1  # the refused ones were not executed
    assert vsim.recorder.http_429 == (2 if status == 429 else 0)


async def test_expire_tokens(vapi: Api, vsim: Simulator) -> None:
    vsim.faults.expire_tokens()
    assert (await vapi.raw("/api/Account/search", {"onlyActiveAccounts": True})).status_code == 401
    assert (await vapi.raw("/api/Auth/validate")).status_code == 401
    await vapi.login()
    assert (await vapi.raw("/api/Account/search", {"onlyActiveAccounts": True})).status_code == 200


async def test_lost_response_executes_the_request(vapi: Api, vsim: Simulator) -> None:
    vsim.faults.lose_responses(1)
    assert (await vapi.raw("/api/Account/search", {"onlyActiveAccounts": True})).status_code == 200  # not mutating
    with pytest.raises(httpx.TransportError):
        await vapi.raw("/api/Order/place", place_body(customTag="t1"))
    assert len(vsim.broker.orders(1001)) == 1  # it was executed
    intent = vsim.recorder.intents[-1]
    assert intent.response_lost and intent.outcome == "ok" and intent.custom_tag == "t1"
    retry = await vapi.call("/api/Order/place", place_body(customTag="t1"))  # the classic retry
    assert retry["success"] is False and retry["errorCode"] == 2
    assert len(vsim.recorder.duplicate_orders) == 1


async def test_dropped_events_are_silently_lost(vapi: Api, vsim: Simulator) -> None:
    hub = await RawHub.connect(vsim.user_hub_url, vapi.token)
    for method in ("SubscribeOrders", "SubscribeTrades", "SubscribePositions"):
        await hub.invoke(method, 1001, invocation_id="x")
        await hub.next()
    await hub.invoke("SubscribeAccounts", invocation_id="y")
    await hub.next()
    vsim.faults.drop_events("user", 2)
    await vapi.call("/api/Order/place", place_body())
    await vsim.wait_quiet()
    got = await hub.until(lambda m: m.get("target") == "GatewayUserAccount")
    assert [m["target"] for m in got] == ["GatewayUserTrade", "GatewayUserPosition", "GatewayUserAccount"]
    sent = [h.target for h in vsim.recorder.hub_sent if h.hub == "user"]
    assert sent == ["GatewayUserTrade", "GatewayUserPosition", "GatewayUserAccount"]
    await hub.close()


async def test_clear_removes_every_fault(vapi: Api, vsim: Simulator) -> None:
    vsim.faults.http_errors(503, 5)
    vsim.faults.lose_responses(3)
    vsim.faults.cut("rest", 60)
    vsim.faults.clear()
    assert (await vapi.raw("/api/Order/place", place_body())).status_code == 200


def test_fault_specs_are_validated(vsim: Simulator) -> None:
    with pytest.raises(ValueError, match="cut target"):
        vsim.faults.apply({"cut": "everything", "for": "1s"})
    with pytest.raises(ValueError, match="status"):
        vsim.faults.apply({"http_errors": {"status": 404, "count": 1}})
    with pytest.raises(ValueError, match="unknown fault"):
        vsim.faults.apply({"meteor": True})
    with pytest.raises(ValueError, match="duration"):
        vsim.faults.apply({"cut": "rest", "for": "soon"})


# -- virtual clock -------------------------------------------------------------------------------

async def test_virtual_clock_drives_timestamps_and_steps(vsim: Simulator, clock: VirtualClock) -> None:
    order = vsim.trader.place_order(1001, "MNQ", "buy", 2, fill=[1, 1])
    assert order.creation_timestamp == START
    clock.advance(timedelta(hours=2))
    await vsim.poll()
    trades = vsim.broker.trades(1001)
    assert [t.creation_timestamp for t in trades] == [START, START + timedelta(hours=2)]


async def test_scripted_feed_resends_the_last_quote(vsim: Simulator, vapi: Api, clock: VirtualClock) -> None:
    hub = await RawHub.connect(vsim.market_hub_url, vapi.token)
    await hub.invoke("SubscribeContractQuotes", MNQ)
    await hub.until(lambda m: m.get("target") == "GatewayQuote")
    clock.advance(timedelta(seconds=5))
    await vsim.poll()
    await vsim.wait_quiet()
    with pytest.raises(TimeoutError):  # 5 s is not yet stale
        await hub.next(timeout=0.3)
    clock.advance(timedelta(seconds=20))
    await vsim.poll()
    again = await hub.until(lambda m: m.get("target") == "GatewayQuote")
    assert again[-1]["arguments"][0] == MNQ
    await hub.close()


async def test_random_feed_is_seeded(clock: VirtualClock) -> None:
    paths = []
    for _ in range(2):
        sim = Simulator(SimConfig(clock=VirtualClock(START), quote_feed="random", seed=7))
        prices = []
        for _ in range(20):
            sim.clock.advance(timedelta(seconds=1))  # type: ignore[attr-defined]
            sim.poll_now()
            prices.append(sim.market.quote("MNQ").last_price)
        paths.append(prices)
    assert paths[0] == paths[1] and len(set(paths[0])) > 1


async def test_wait_quiet_times_out_while_busy(vsim: Simulator, vapi: Api) -> None:
    vsim.faults.latency(rest_ms=500)
    request = asyncio.create_task(vapi.raw("/api/Account/search", {"onlyActiveAccounts": True}))
    async with asyncio.timeout(5):
        while not vsim.rest.in_flight:  # noqa: ASYNC110 - waiting for the request to arrive
            await asyncio.sleep(0.005)
    with pytest.raises(TimeoutError, match="in flight"):
        await vsim.wait_quiet(timeout=0.1)
    await request
    await vsim.wait_quiet()


# -- control API ---------------------------------------------------------------------------------

async def test_control_api(vsim: Simulator) -> None:
    async with httpx.AsyncClient(base_url=vsim.base_url) as client:
        r = await client.post("/_sim/quote", json={"symbol": "MNQ", "price": 20000})
        assert r.status_code == 200 and r.json()["result"]["lastPrice"] == 20000.0
        r = await client.post("/_sim/trader/order", json={"account": 1001, "symbol": "MNQ", "side": "buy", "size": 2,
                                                          "type": "market", "tag": "e"})
        assert r.json()["result"]["status"] == 2
        r = await client.post("/_sim/trader/order", json={"account": 1001, "symbol": "MNQ", "side": "sell", "size": 2,
                                                          "type": "stop", "stop_price": 19990, "tag": "sl"})
        assert r.json()["result"]["status"] == 1
        assert (await client.post("/_sim/trader/cancel", json={"account": 1001, "tag": "sl"})).json()["result"][
            "status"] == 3
        assert (await client.post("/_sim/account", json={"id": 1001, "can_trade": False})).json()["result"][
            "canTrade"] is False
        assert (await client.post("/_sim/account", json={"id": 2002, "name": "NEW"})).status_code == 200
        assert (await client.post("/_sim/faults", json={"http_errors": {"status": 503, "count": 1}})).status_code == 200
        assert (await client.post("/_sim/poll")).status_code == 200
        state = (await client.get("/_sim/state")).json()["result"]
        assert state["accounts"]["1001"]["positions"][0]["size"] == 2
        assert state["faults"]["http_errors"] == {"status": 503, "count": 1}
        assert "2002" in state["accounts"]
        assert (await client.post("/_sim/trader/close", json={"account": 1001, "symbol": "MNQ"})).status_code == 200
        record = (await client.get("/_sim/record")).json()["result"]
        assert record["requests"] == 0 and record["duplicate_orders"] == 0
        bad = await client.post("/_sim/trader/order", json={"account": "x", "symbol": "MNQ", "side": "buy", "size": 1})
        assert bad.status_code == 400 and "account" in bad.json()["error"]
        assert (await client.post("/_sim/quote", content=b"{nope")).status_code == 400
        assert (await client.post("/_sim/faults", json={"meteor": 1})).status_code == 400
        assert (await client.get("/_sim/nothing")).status_code == 404


def test_control_api_is_loopback_only() -> None:
    assert _is_loopback("127.0.0.1") and _is_loopback("::1") and _is_loopback("127.0.0.2")
    assert not _is_loopback("10.0.0.1") and not _is_loopback(None) and not _is_loopback("garbage")


async def test_hub_latency_delays_each_event_not_the_sum(vapi: Api, vsim: Simulator) -> None:
    hub = await RawHub.connect(vsim.user_hub_url, vapi.token)
    for method in ("SubscribeOrders", "SubscribeTrades", "SubscribePositions"):
        await hub.invoke(method, 1001, invocation_id="x")
        await hub.next()
    vsim.faults.latency(hub_ms=200)
    started = time.perf_counter()
    vsim.trader.place_order(1001, "MNQ", "buy", 1)
    await hub.until(lambda m: m.get("target") == "GatewayUserPosition")
    elapsed = time.perf_counter() - started
    assert 0.2 <= elapsed < 0.9  # five events: the sum of delays would be 1 s
    await hub.close()


async def test_deeply_nested_json_is_400(vapi: Api) -> None:
    response = await vapi.raw("/api/Order/place", content=b"[" * 100_000 + b"]" * 100_000)
    assert response.status_code == 400


async def test_hub_without_handshake_is_closed(vsim: Simulator, vapi: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("risk_manager.sim.hubs.HANDSHAKE_TIMEOUT", 0.2)
    hub = await RawHub.connect(vsim.user_hub_url, vapi.token, handshake=False)
    msg = await hub.ws.receive(timeout=3)
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    await hub.close()


async def test_control_api_rejects_bad_types(vsim: Simulator) -> None:
    async with httpx.AsyncClient(base_url=vsim.base_url) as client:
        for body in ({"account": 1001, "symbol": "MNQ", "side": "buy", "size": 1, "type": ["market"]},
                     {"account": 1001, "symbol": "MNQ", "side": "buy", "size": 2, "fill": ["1", 1]},
                     {"account": 1001, "symbol": "ZZZ", "side": "buy", "size": 1}):
            response = await client.post("/_sim/trader/order", json=body)
            assert response.status_code == 400, body


async def test_oversized_body_is_413(vapi: Api) -> None:
    response = await vapi.raw("/api/Order/place", content=b"{" + b" " * (2 * 1024 * 1024) + b"}")
    assert response.status_code == 413
