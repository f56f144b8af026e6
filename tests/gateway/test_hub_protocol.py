"""Hub protocol edge cases against a scripted SignalR server on 127.0.0.1 (ephemeral port).

The simulator's hubs always speak the protocol correctly; a real server (or a proxy in front of it)
may refuse the handshake, answer in binary, refuse the upgrade with 401, fail a subscription, send
broken frames or close the connection with an error. `ScriptedHub` plays one script per connection
attempt, then behaves like a normal hub. Whatever it does, the hub connection must log it, count it,
and come back connected with its subscriptions — a risk daemon never gives up on its event feed.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from risk_manager.domain import GatewayEvent, LogoutEvent, OrderEvent
from risk_manager.gateway import GatewayConfig, HubConnection, HubState, TokenManager
from risk_manager.gateway.errors import HubError
from risk_manager.gateway.hubs import Decoder, market_hub_decoder, user_hub_decoder

RS = "\x1e"
ORDER = {"id": 7, "accountId": 1001, "contractId": "CON.F.US.EP.Z26", "creationTimestamp": "2026-03-03T15:00:00Z",
         "status": 1, "type": 2, "side": 0, "size": 1}
Plan = Callable[[ServerConnection], Awaitable[None]]


def jwt(n: int) -> str:
    payload = base64.urlsafe_b64encode(json.dumps({"exp": time.time() + 86400, "n": n}).encode()).decode().rstrip("=")
    return f"h.{payload}.s"


class CountingAuth:
    """The two raw calls of the token manager, in process (the hub is under test, not the REST side)."""

    def __init__(self) -> None:
        self.issued: list[str] = []

    async def login_key(self) -> str:
        self.issued.append(jwt(len(self.issued)))
        return self.issued[-1]

    async def validate_token(self, token: str) -> str | None:
        return await self.login_key()


def event(target: str, *arguments: Any) -> str:
    return json.dumps({"type": 1, "target": target, "arguments": list(arguments)}) + RS


async def handshake(ws: ServerConnection) -> None:
    await ws.recv()
    await ws.send("{}" + RS)


async def answer_invocations(ws: ServerConnection, error: str | None = None) -> None:
    """Complete every invocation (with `error`, if given) until the client goes away."""
    async for frame in ws:
        for record in str(frame).split(RS)[:-1]:
            message = json.loads(record)
            if message.get("invocationId") is not None:
                reply: dict[str, Any] = {"type": 3, "invocationId": message["invocationId"]}
                reply.update({"error": error} if error else {"result": None})
                await ws.send(json.dumps(reply) + RS)


async def normal(ws: ServerConnection) -> None:
    await handshake(ws)
    await answer_invocations(ws)


class ScriptedHub:
    def __init__(self) -> None:
        self.plans: deque[Plan] = deque()
        self.refuse_upgrades = 0
        self.paths: list[str] = []
        self.connections: list[ServerConnection] = []
        self._server: Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        port = next(iter(self._server.sockets)).getsockname()[1]
        return f"http://127.0.0.1:{port}/hubs/user"

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.paths.append(request.path)
        if self.refuse_upgrades:
            self.refuse_upgrades -= 1
            return Response(401, "Unauthorized", Headers(), b"")
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        self.connections.append(ws)
        plan = self.plans.popleft() if self.plans else normal
        await plan(ws)

    async def __aenter__(self) -> ScriptedHub:
        self._server = await serve(self._handler, "127.0.0.1", 0, process_request=self._process_request,
                                   ping_interval=None)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


@pytest.fixture
async def server() -> AsyncIterator[ScriptedHub]:
    async with ScriptedHub() as hub:
        yield hub


def hub_for(server: ScriptedHub, decoder: Decoder = user_hub_decoder,
            **signalr: Any) -> tuple[HubConnection, TokenManager, CountingAuth]:
    auth = CountingAuth()
    tokens = TokenManager(auth, "demo")
    config = GatewayConfig.load({"signalr": {"reconnection": {"delays": [0, 20, 40], "maxDelayMs": 40, "jitter": 0},
                                             "subscriptions": {"resubscribeDelay": 0}, **signalr}}).signalr
    name = "user" if decoder is user_hub_decoder else "market"
    return HubConnection(name, server.url, tokens, config, decoder), tokens, auth


async def eventually(predicate: Callable[[], bool], timeout: float = 3.0) -> None:  # noqa: ASYNC109
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_refused_or_binary_handshake_is_retried(server: ScriptedHub, caplog: pytest.LogCaptureFixture) -> None:
    async def refuse(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(json.dumps({"error": "Requested protocol 'json' is not available."}) + RS)

    async def binary(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(b"{}\x1e")

    server.plans.extend([refuse, binary])
    hub, _tokens, _auth = hub_for(server)
    states: list[HubState] = []
    hub.on_state(states.append)
    await hub.start()
    try:
        await hub.wait_connected(3)
        assert len(server.connections) == 3 and hub.stats.connects == 1
        assert states[0] is HubState.CONNECTING and states[-1] is HubState.CONNECTED
        assert HubState.RECONNECTING not in states  # never connected before: still "connecting"
        assert "server refused the handshake: Requested protocol 'json' is not available." in caplog.text
        assert "binary handshake answer" in caplog.text
    finally:
        await hub.stop()
    assert hub.state is HubState.DISCONNECTED


async def test_401_on_upgrade_gets_a_fresh_token(server: ScriptedHub) -> None:
    server.refuse_upgrades = 1
    hub, tokens, auth = hub_for(server)
    await tokens.start()
    await hub.start()
    try:
        await hub.wait_connected(3)
        assert len(auth.issued) == 2  # the refused token was replaced (validate) before the next attempt
        assert f"access_token={auth.issued[0]}" in server.paths[0]
        assert f"access_token={auth.issued[1]}" in server.paths[1]
    finally:
        await hub.stop()
        await tokens.aclose()


async def test_failed_subscription_is_retried_until_confirmed(server: ScriptedHub,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    async def fail_subscriptions(ws: ServerConnection) -> None:
        await handshake(ws)
        await answer_invocations(ws, error="Subscription refused")

    server.plans.append(fail_subscriptions)
    hub, _tokens, _auth = hub_for(server)
    await hub.subscribe_orders(1001)
    await hub.start()
    try:
        await hub.wait_connected(3)
        assert len(server.connections) == 2
        assert "user hub: server error: Subscription refused" in caplog.text
    finally:
        await hub.stop()


async def test_broken_frames_and_a_close_with_error_then_reconnect(server: ScriptedHub,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """allowReconnect false is logged but not obeyed: the daemon must keep its event feed."""
    async def misbehave(ws: ServerConnection) -> None:
        await handshake(ws)
        await ws.send(b"\x00\x01binary")
        await ws.send('{"type":1,"target":"GatewayUserOrder"')  # no record separator
        await ws.send(event("GatewayUserOrder", {"action": 1, "data": ORDER}) + '{"type":6}' + RS)
        await ws.send(json.dumps({"type": 7, "error": "Server is shutting down", "allowReconnect": False}) + RS)
        await answer_invocations(ws)

    server.plans.append(misbehave)
    hub, _tokens, _auth = hub_for(server)
    received: list[GatewayEvent] = []

    async def on_event(e: GatewayEvent) -> None:
        received.append(e)

    hub.on_event(on_event)
    await hub.start()
    try:
        await eventually(lambda: hub.stats.reconnects == 1 and hub.state is HubState.CONNECTED)
        assert [e.order.id for e in received if isinstance(e, OrderEvent)] == [7]
        assert hub.stats.malformed == 2
        assert "hub_server_close" in caplog.text and "Server is shutting down" in caplog.text
    finally:
        await hub.stop()


async def test_invocations_subscriptions_and_observer_failures(server: ScriptedHub,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    hub, _tokens, _auth = hub_for(server)
    with pytest.raises(HubError, match="user hub: not connected, cannot invoke SubscribeAccounts"):
        await hub.invoke("SubscribeAccounts")

    def broken_listener(state: HubState) -> None:
        raise RuntimeError("observer bug")

    hub.on_state(broken_listener)
    order_ids: list[int] = []

    async def broken_handler(e: GatewayEvent) -> None:
        raise RuntimeError("handler bug")

    async def good_handler(e: GatewayEvent) -> None:
        if isinstance(e, OrderEvent):
            order_ids.append(e.order.id)

    hub.on_event(broken_handler)
    hub.on_event(good_handler)
    await hub.start()
    try:
        await hub.wait_connected(3)
        await hub.subscribe_trades(1001)  # connected: sent at once and remembered
        await hub.unsubscribe("SubscribeTrades", 1001)
        assert hub.subscriptions == []
        ws = server.connections[-1]
        for order_id in (1, 2):
            await ws.send(event("GatewayUserOrder", {**ORDER, "id": order_id}))
        await eventually(lambda: order_ids == [1, 2])  # a handler's bug does not stop the stream
        assert hub.stats.handler_errors == 2
        assert "hub_state_listener_failed" in caplog.text and "observer bug" in caplog.text
    finally:
        await hub.stop()


async def test_drain_reports_a_stuck_handler(server: ScriptedHub) -> None:
    hub, _tokens, _auth = hub_for(server)
    release = asyncio.Event()

    async def slow(e: GatewayEvent) -> None:
        await release.wait()

    hub.on_event(slow)
    await hub.start()
    try:
        await hub.wait_connected(3)
        await server.connections[-1].send(event("GatewayUserOrder", ORDER))
        await eventually(lambda: hub.stats.events == 1)
        assert await hub.drain(0.05) is False
        release.set()
        assert await hub.drain(1.0) is True
    finally:
        await hub.stop()


async def test_attempts_past_max_are_logged_and_it_keeps_trying(server: ScriptedHub,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    async def hang_up(ws: ServerConnection) -> None:
        await ws.close()

    server.plans.extend([hang_up] * 3)
    hub, _tokens, _auth = hub_for(server, reconnection={"delays": [0, 10], "maxDelayMs": 10, "jitter": 0,
                                                        "maxAttempts": 2})
    with caplog.at_level(logging.WARNING):
        await hub.start()
        try:
            await hub.wait_connected(3)
            assert len(server.connections) == 4
            assert "hub_reconnect_attempts_exhausted" in caplog.text
        finally:
            await hub.stop()


async def test_events_in_the_handshake_frame_are_delivered(server: ScriptedHub) -> None:
    async def eager(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send("{}" + RS + event("GatewayUserOrder", {"action": 1, "data": ORDER}))
        await answer_invocations(ws)

    server.plans.append(eager)
    hub, _tokens, _auth = hub_for(server)
    received: list[GatewayEvent] = []

    async def on_event(e: GatewayEvent) -> None:
        received.append(e)

    hub.on_event(on_event)
    await hub.start()
    try:
        await eventually(lambda: len(received) == 1)
        assert isinstance(received[0], OrderEvent) and received[0].order.id == 7
    finally:
        await hub.stop()


async def test_a_subscription_without_completion_times_out_and_is_retried(
        server: ScriptedHub, caplog: pytest.LogCaptureFixture) -> None:
    async def silent(ws: ServerConnection) -> None:
        await handshake(ws)
        async for _frame in ws:  # never completes anything
            pass

    server.plans.append(silent)
    hub, _tokens, _auth = hub_for(server, health={"pingTimeout": 50})
    await hub.subscribe_positions(1001)
    await hub.start()
    try:
        await hub.wait_connected(3)
        assert "user hub: no completion for SubscribePositions within 0.1 s" in caplog.text
        assert len(server.connections) == 2
    finally:
        await hub.stop()


async def test_market_hub_logout_relogs_in_and_resubscribes_after_the_delay(server: ScriptedHub) -> None:
    async def logout(ws: ServerConnection) -> None:
        await handshake(ws)
        reader = asyncio.create_task(answer_invocations(ws))
        await asyncio.sleep(0.05)  # after the subscriptions are confirmed
        await ws.send(event("GatewayLogout", "session ended"))
        await reader

    server.plans.append(logout)
    hub, _tokens, auth = hub_for(server, decoder=market_hub_decoder, subscriptions={"resubscribeDelay": 30})
    received: list[GatewayEvent] = []

    async def on_event(e: GatewayEvent) -> None:
        received.append(e)

    hub.on_event(on_event)
    await hub.subscribe_market_trades("CON.F.US.EP.Z26")
    await hub.subscribe_depth("CON.F.US.EP.Z26")
    await hub.start()
    try:
        await eventually(lambda: hub.stats.reconnects == 1 and hub.state is HubState.CONNECTED)
        assert any(isinstance(e, LogoutEvent) and e.reason == "session ended" for e in received)
        assert len(auth.issued) == 2  # a fresh login before reconnecting
        assert [m for m, _ in hub.subscriptions] == ["SubscribeContractTrades", "SubscribeContractMarketDepth"]
    finally:
        await hub.stop()


async def test_token_failures_are_logged_and_retried(server: ScriptedHub, caplog: pytest.LogCaptureFixture) -> None:
    hub, _tokens, auth = hub_for(server)
    original = auth.login_key
    calls = 0

    async def flaky_login() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("keyring locked")
        return await original()

    auth.login_key = flaky_login  # type: ignore[method-assign]
    await hub.start()
    try:
        await hub.wait_connected(3)
        assert "hub_error" in caplog.text and "RuntimeError: keyring locked" in caplog.text
        assert len(server.connections) == 1
    finally:
        await hub.stop()
