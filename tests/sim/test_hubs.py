"""The SignalR hubs: a real third-party client (pysignalr) and raw WebSocket wire checks."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import httpx
import pytest
from pysignalr.client import SignalRClient

from risk_manager.domain import decode_market_event, decode_user_event
from risk_manager.sim import SimConfig, Simulator
from tests.sim.conftest import MNQ, Api, place_body
from tests.sim.hubclient import RS, RawHub, targets


async def _token(sim: Simulator) -> str:
    async with httpx.AsyncClient(base_url=sim.base_url) as client:
        return await Api(client).login()


async def test_pysignalr_receives_fill_events_in_order_and_resubscribes_after_reconnect(sim: Simulator) -> None:
    token = await _token(sim)
    client = SignalRClient(f"{sim.user_hub_url}?access_token={token}", retry_sleep=0.1)
    received: list[tuple[str, dict[str, Any]]] = []
    subscribed = asyncio.Queue[int]()
    opened = 0

    async def on_open() -> None:
        nonlocal opened
        opened += 1

        async def done(_: Any) -> None:
            await subscribed.put(opened)

        await client.send("SubscribeAccounts", [])
        for method in ("SubscribeOrders", "SubscribePositions", "SubscribeTrades"):
            await client.send(method, [1001], on_invocation=done)  # type: ignore[list-item]

    def recorder(target: str) -> Any:
        async def handler(arguments: list[Any]) -> None:
            received.append((target, arguments[0]))
        return handler

    for target in ("GatewayUserAccount", "GatewayUserOrder", "GatewayUserPosition", "GatewayUserTrade"):
        client.on(target, recorder(target))
    client.on_open(on_open)
    task = asyncio.create_task(client.run())
    try:
        for _ in range(3):
            await asyncio.wait_for(subscribed.get(), 5)
        async with httpx.AsyncClient(base_url=sim.base_url) as http:
            api = Api(http, token)
            assert (await api.call("/api/Order/place", place_body(size=2)))["success"]
            await _wait_for(lambda: any(t == "GatewayUserAccount" for t, _ in received))
            order = [t for t, _ in received]
            assert order == ["GatewayUserOrder", "GatewayUserOrder", "GatewayUserTrade", "GatewayUserPosition",
                             "GatewayUserAccount"]
            events = [decode_user_event(t, [payload]) for t, payload in received]
            assert received[0][1]["action"] == 1
            assert events[1].order.status == 2 and events[1].order.fill_volume == 2  # type: ignore[union-attr]
            assert events[3].position.size == 2  # type: ignore[union-attr]

            # drop the connection: pysignalr reconnects, on_open resubscribes, events flow again
            received.clear()
            sim.hubs.cut("user")
            for _ in range(3):
                await asyncio.wait_for(subscribed.get(), 10)
            assert opened == 2
            assert (await api.call("/api/Position/closeContract", {"accountId": 1001, "contractId": MNQ}))["success"]
            await _wait_for(lambda: any(t == "GatewayUserAccount" for t, _ in received))
            closed = [p for t, p in received if t == "GatewayUserPosition"]
            assert closed[-1]["data"]["size"] == 0  # a closed position is a position event with size 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _wait_for(predicate: Any, seconds: float = 5.0) -> None:
    """Poll a condition fed by a third-party client's callbacks (no event to wait on)."""
    async with asyncio.timeout(seconds):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_pysignalr_market_hub_with_bearer_header(sim: Simulator) -> None:
    token = await _token(sim)
    client = SignalRClient(sim.market_hub_url, headers={"Authorization": f"Bearer {token}"})
    quotes: list[list[Any]] = []

    async def on_quote(arguments: list[Any]) -> None:
        quotes.append(arguments)

    async def on_open() -> None:
        await client.send("SubscribeContractQuotes", [MNQ])  # type: ignore[list-item]

    client.on("GatewayQuote", on_quote)
    client.on_open(on_open)
    task = asyncio.create_task(client.run())
    try:
        await _wait_for(lambda: len(quotes) >= 1)  # the latest quote right after subscribing
        sim.market.set_quote("MNQ", 21000.0)
        await _wait_for(lambda: quotes[-1][1]["lastPrice"] == 21000.0)
        event = decode_market_event("GatewayQuote", quotes[-1])
        assert event.contract_id == MNQ
        assert event.quote.last_price == 21000.0 and event.quote.best_bid == 20999.75  # type: ignore[union-attr]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.parametrize("version", [0, 1, 2])
async def test_handshake_versions(sim: Simulator, version: int) -> None:
    hub = await RawHub.connect(sim.user_hub_url, await _token(sim), version=version)
    await hub.close()


@pytest.mark.parametrize(("handshake", "error"), [
    ({"protocol": "messagepack", "version": 1}, "protocol"),
    ({"protocol": "json", "version": 3}, "version"),
])
async def test_bad_handshake_gets_error_and_close(sim: Simulator, handshake: dict[str, Any], error: str) -> None:
    hub = await RawHub.connect(sim.user_hub_url, await _token(sim), handshake=False)
    await hub.send_raw(json.dumps(handshake) + RS)
    reply = await hub.next()
    assert error in reply["error"]
    assert (await hub.ws.receive(timeout=3)).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    await hub.close()


async def test_negotiate_v0_and_v1(sim: Simulator) -> None:
    token = await _token(sim)
    async with httpx.AsyncClient(base_url=sim.base_url) as client:
        v0 = (await client.post(f"/hubs/user/negotiate?access_token={token}")).json()
        assert v0["negotiateVersion"] == 0 and "connectionToken" not in v0
        assert v0["availableTransports"] == [{"transport": "WebSockets", "transferFormats": ["Text", "Binary"]}]
        v1 = (await client.post("/hubs/market/negotiate?negotiateVersion=1",
                                headers={"Authorization": f"Bearer {token}"})).json()
        assert v1["negotiateVersion"] == 1 and v1["connectionToken"] and v1["connectionId"]
        assert (await client.post("/hubs/user/negotiate")).status_code == 401
        assert (await client.post("/hubs/user/negotiate?access_token=forged.token.x")).status_code == 401
        assert (await client.get(f"/hubs/user?access_token={token}")).status_code == 400  # not a WebSocket


async def test_upgrade_needs_a_valid_token(sim: Simulator) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await session.ws_connect(sim.user_hub_url + "?access_token=bad")
        assert err.value.status == 401


async def test_bearer_header_and_stale_id_are_accepted(sim: Simulator) -> None:
    token = await _token(sim)
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(sim.user_hub_url + "?id=stale-connection-id",
                                      headers={"Authorization": f"Bearer {token}"})
        await ws.send_str('{"protocol":"json","version":1}' + RS)
        assert (await ws.receive(timeout=3)).data == "{}" + RS
        await ws.close()


async def test_several_records_per_frame_and_completion_ids_never_deduplicated(sim: Simulator) -> None:
    hub = await RawHub.connect(sim.user_hub_url, await _token(sim), handshake=False)
    frame = (json.dumps({"protocol": "json", "version": 1}) + RS
             + json.dumps({"type": 1, "target": "SubscribeOrders", "arguments": [1001], "invocationId": "0"}) + RS
             + json.dumps({"type": 1, "target": "SubscribeTrades", "arguments": [1001], "invocationId": "0"}) + RS
             + json.dumps({"type": 1, "target": "NoSuchMethod", "arguments": [], "invocationId": "7"}) + RS
             + json.dumps({"type": 1, "target": "SubscribePositions", "arguments": [1001]}) + RS
             + json.dumps({"type": 6}) + RS)
    await hub.send_raw(frame)
    assert await hub.next() == {}
    first, second, third = await hub.next(), await hub.next(), await hub.next()
    assert first == {"type": 3, "invocationId": "0", "result": None}
    assert second == {"type": 3, "invocationId": "0", "result": None}
    assert third["invocationId"] == "7" and "NoSuchMethod" in third["error"] and "result" not in third
    await hub.close()


async def test_subscription_errors_complete_with_error(sim: Simulator) -> None:
    hub = await RawHub.connect(sim.user_hub_url, await _token(sim))
    await hub.invoke("SubscribeOrders", 999, invocation_id="a")
    await hub.invoke("SubscribeOrders", invocation_id="b")
    assert "999" in (await hub.next())["error"]
    assert "argument" in (await hub.next())["error"]
    await hub.close()
    market = await RawHub.connect(sim.market_hub_url, await _token(sim))
    await market.invoke("SubscribeContractQuotes", "CON.F.US.NOPE.Z26", invocation_id="c")
    assert "not found" in (await market.next())["error"]
    await market.invoke("SubscribeContractQuotes", "MNQ", invocation_id="d")  # a symbol is not a contract id
    assert "not found" in (await market.next())["error"]
    await market.close()


async def test_server_sends_keepalive_pings_and_no_websocket_pings() -> None:
    async with Simulator(SimConfig(quote_feed="scripted", keepalive_interval=0.2)) as sim:
        hub = await RawHub.connect(sim.user_hub_url, await _token(sim))
        kinds = []
        for _ in range(3):
            msg = await hub.ws.receive(timeout=2)  # autoping is off: a WS ping frame would show up here
            kinds.append((msg.type, msg.data))
        assert kinds == [(aiohttp.WSMsgType.TEXT, '{"type":6}' + RS)] * 3
        # the client's own WebSocket pings are answered
        await hub.ws.ping(b"hello")
        msg = await hub.ws.receive(timeout=2)
        while msg.type == aiohttp.WSMsgType.TEXT:
            msg = await hub.ws.receive(timeout=2)
        assert msg.type == aiohttp.WSMsgType.PONG and msg.data == b"hello"
        await hub.close()


async def test_subscriptions_belong_to_the_connection(sim: Simulator) -> None:
    token = await _token(sim)
    one = await RawHub.connect(sim.user_hub_url, token)
    two = await RawHub.connect(sim.user_hub_url, token)
    await one.invoke("SubscribeOrders", 1001, invocation_id="1")
    await one.next()
    await two.invoke("SubscribeTrades", 1001, invocation_id="1")
    await two.next()
    sim.trader.place_order(1001, "MNQ", "buy", 1)
    got_one = await one.until(
        lambda m: m.get("target") == "GatewayUserOrder" and m["arguments"][0]["data"]["status"] == 2)
    got_two = await two.until(lambda m: m.get("target") == "GatewayUserTrade")
    assert set(targets(got_one)) == {"GatewayUserOrder"}
    assert set(targets(got_two)) == {"GatewayUserTrade"}
    await one.invoke("UnsubscribeOrders", 1001, invocation_id="2")
    await one.next()
    sim.trader.place_order(1001, "MNQ", "sell", 1)
    await two.until(lambda m: m.get("target") == "GatewayUserTrade")
    await sim.wait_quiet()
    with pytest.raises(TimeoutError):  # nothing more for the connection that unsubscribed
        await one.next(timeout=0.3)
    await one.close()
    await two.close()


async def test_unwrapped_user_events() -> None:
    async with Simulator(SimConfig(quote_feed="scripted", wrap_user_events=False)) as sim:
        hub = await RawHub.connect(sim.user_hub_url, await _token(sim))
        await hub.invoke("SubscribeAccounts", invocation_id="1")
        await hub.until(lambda m: m.get("type") == 3)
        sim.set_account(1001, balance=123.0)
        msgs = await hub.until(lambda m: m.get("target") == "GatewayUserAccount")
        assert msgs[-1]["arguments"] == [{"id": 1001, "name": "SIM-1001", "balance": 123.0, "canTrade": True,
                                          "isVisible": True, "simulated": True}]
        await hub.close()


async def test_market_hub_quotes_trades_and_depth(sim: Simulator) -> None:
    hub = await RawHub.connect(sim.market_hub_url, await _token(sim))
    for method in ("SubscribeContractQuotes", "SubscribeContractTrades", "SubscribeContractMarketDepth"):
        await hub.invoke(method, MNQ)
    snapshot = await hub.until(lambda m: m.get("target") == "GatewayQuote")
    quote = snapshot[-1]["arguments"][1]
    assert {"symbol", "lastPrice", "bestBid", "bestAsk", "timestamp"} <= set(quote)
    assert quote["symbol"] == "F.US.MNQ"
    sim.market.set_quote("MNQ", 20000.0, bid=19999.5, ask=20000.5)
    msgs = await hub.until(lambda m: m.get("target") == "GatewayDepth")
    assert targets(msgs) == ["GatewayQuote", "GatewayTrade", "GatewayDepth"]
    trade = msgs[1]["arguments"][1][0]
    assert trade["price"] == 20000.0 and trade["symbolId"] == "F.US.MNQ"
    depth = decode_market_event("GatewayDepth", msgs[2]["arguments"])
    assert any(e.price == 19999.5 for e in depth.entries)  # type: ignore[union-attr]
    await hub.close()


async def test_random_feed_quotes_at_least_every_second() -> None:
    async with Simulator(SimConfig(quote_feed="random", feed_interval=0.2, poll_interval=0.05)) as sim:
        hub = await RawHub.connect(sim.market_hub_url, await _token(sim))
        await hub.invoke("SubscribeContractQuotes", MNQ)
        loop = asyncio.get_running_loop()
        start = loop.time()
        quotes = 0
        while loop.time() - start < 1.0:
            msg = await hub.next()
            quotes += msg.get("target") == "GatewayQuote"
        assert quotes >= 2  # feed_interval 0.2 s gives ~5; the requirement is >= 1 per second
        await hub.close()


async def test_invalid_message_closes_with_error(sim: Simulator) -> None:
    hub = await RawHub.connect(sim.user_hub_url, await _token(sim))
    await hub.send_raw("{oops" + RS)
    msg = await hub.next()
    assert msg["type"] == 7 and "InvalidDataException" in msg["error"] and set(msg) == {"type", "error"}
    await hub.close()


async def test_pysignalr_rides_out_a_hub_cut_fault(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    import websockets.asyncio.client as ws_client

    def quick_retries() -> Any:
        while True:
            yield 0.05

    # websockets waits up to 5 s (random) before its first retry; shorten it for the test
    monkeypatch.setitem(ws_client.connect.__init__.__kwdefaults__, "reconnect_delays", quick_retries)
    token = await _token(sim)
    client = SignalRClient(f"{sim.user_hub_url}?access_token={token}")
    subscribed = asyncio.Queue[None]()
    orders: list[Any] = []

    async def on_open() -> None:
        async def done(_: Any) -> None:
            await subscribed.put(None)
        await client.send("SubscribeOrders", [1001], on_invocation=done)  # type: ignore[list-item]

    async def on_order(arguments: list[Any]) -> None:
        orders.append(arguments[0])

    client.on_open(on_open)
    client.on("GatewayUserOrder", on_order)
    task = asyncio.create_task(client.run())
    try:
        await asyncio.wait_for(subscribed.get(), 5)
        sim.faults.cut("user_hub", 0.5)
        refused_at = asyncio.get_running_loop().time()
        await asyncio.wait_for(subscribed.get(), 10)  # reconnected and resubscribed after the cut
        assert asyncio.get_running_loop().time() - refused_at >= 0.5
        sim.trader.place_order(1001, "MNQ", "buy", 1)
        await _wait_for(lambda: len(orders) >= 2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_partial_quotes_carry_only_what_changed() -> None:
    async with Simulator(SimConfig(quote_feed="scripted", partial_quotes=True)) as sim:
        hub = await RawHub.connect(sim.market_hub_url, await _token(sim))
        await hub.invoke("SubscribeContractQuotes", MNQ)
        snapshot = (await hub.until(lambda m: m.get("target") == "GatewayQuote"))[-1]["arguments"][1]
        assert {"symbol", "lastPrice", "bestBid", "bestAsk", "open", "high", "low"} <= set(snapshot)
        sim.market.set_quote("MNQ", 25001.0)
        sim.market.set_quote("MNQ", 25001.0, bid=25000.5)
        first = (await hub.until(lambda m: m.get("target") == "GatewayQuote"))[-1]["arguments"][1]
        second = (await hub.until(lambda m: m.get("target") == "GatewayQuote"))[-1]["arguments"][1]
        assert first["lastPrice"] == 25001.0 and "open" in first  # a contract's first publication is complete
        assert set(second) == {"symbol", "bestBid", "volume", "lastUpdated", "timestamp"}
        assert second["bestBid"] == 25000.5
        await hub.close()
