"""Error paths of the REST client a caller relies on: each failure is a typed error whose message
names the endpoint and what happened, permanent ones are not retried, malformed bodies are never
read as "nothing there", and uncertain mutations are resolved by asking the broker.

The simulator gives the normal answers and its fault kinds; `ScriptedGateway` (a loopback front
that forwards to the simulator) gives the answers the simulator never does (403, bodies that are
not an envelope, a refusal or a 5xx on one chosen call)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from risk_manager.domain import OrderSide, OrderStatus, OrderType, VirtualClock
from risk_manager.gateway import (
    GatewayClient,
    GatewayRequestError,
    OrderOutcomeUnknownError,
    PermanentHttpError,
    TransportError,
    custom_tag_for,
)

from .conftest import fast_config
from .scripted_gateway import ScriptedGateway

ACCOUNT = 1001


@pytest.fixture
async def front(sim: Any) -> AsyncIterator[ScriptedGateway]:
    async with ScriptedGateway(sim.base_url) as gateway:
        yield gateway


def client_via(front: ScriptedGateway, clock: VirtualClock | None = None, **sections: dict[str, Any]) -> GatewayClient:
    """A client whose REST calls go through the front (its hubs straight to the simulator)."""
    hubs = {"userHubUrl": front.upstream + "/hubs/user", "marketHubUrl": front.upstream + "/hubs/market"}
    return GatewayClient(fast_config(front.base_url, signalr=hubs, **sections), "demo", "demo-key-123", clock=clock)


def es_id(sim: Any) -> str:
    return str(sim.broker.contract("ES").id)


@pytest.mark.parametrize(("script", "message"), [
    ({"status": 403}, "Account/search: HTTP 403 (access denied for this user)"),
    ({"status": 404}, "Account/search: HTTP 404 (unknown endpoint)"),
    ({"status": 400, "body": {"type": "https://tools.ietf.org/html/rfc9110#section-15.5.1", "status": 400,
                              "errors": {"onlyActiveAccounts": ["The field is required."]}}},
     "Account/search: HTTP 400 (the request was malformed): onlyActiveAccounts: The field is required."),
    ({"status": 400, "raw": b"Bad Request"}, "Account/search: HTTP 400 (the request was malformed): Bad Request"),
])
async def test_permanent_statuses_are_not_retried_and_say_what_is_wrong(
        front: ScriptedGateway, script: dict[str, Any], message: str) -> None:
    async with client_via(front) as client:
        front.script("Account/search", times=2, **script)
        with pytest.raises(PermanentHttpError) as caught:
            await client.search_accounts()
        assert str(caught.value) == message
        assert front.requests.count("Account/search") == 1
        assert client.stats.retries == 0
        assert client.breaker.state.value == "closed"  # the Gateway answered: not a failure


async def test_401_after_a_fresh_token_is_permanent(front: ScriptedGateway) -> None:
    async with client_via(front) as client:
        front.script("Account/search", status=401, times=2)
        with pytest.raises(PermanentHttpError, match=r"HTTP 401 \(the token was refused even after a fresh login"):
            await client.search_accounts()
        assert front.requests.count("Account/search") == 2  # refused, refreshed, refused again
        assert front.requests.count("Auth/validate") == 1 and client.tokens.refreshes == 1
        assert [a.id for a in await client.search_accounts()] == [ACCOUNT]  # the new token works


def _malformed(kind: str, key: str) -> dict[str, Any]:
    return {"not json": {"raw": b"<html>upstream timeout</html>"},
            "a list": {"body": [{"id": 1001}]},
            "no list": {"body": {"success": True, "errorCode": 0}},
            "an object": {"body": {"success": True, "errorCode": 0, key: {"id": 1}}}}[kind]


@pytest.mark.parametrize(("kind", "error"), [
    ("not json", "{path}: the Gateway answered 200 with a body that is not JSON"),
    ("a list", "{path}: the Gateway answered 200 with JSON that is not an envelope object"),
    ("no list", "{path}: payload has no '{key}' list"),
    ("an object", "{path}: payload field '{key}' is not a list"),
])
async def test_malformed_bodies_are_errors_never_an_empty_answer(front: ScriptedGateway, kind: str,
                                                                 error: str) -> None:
    """Read as "no positions", a broken answer would look like a missed close: it must be an error."""
    async with client_via(front) as client:
        front.script("Position/searchOpen", **_malformed(kind, "positions"))
        with pytest.raises(TransportError) as caught:
            await client.search_open_positions(ACCOUNT, retries=0)
        assert str(caught.value) == error.format(path="Position/searchOpen", key="positions")
        front.script("Account/search", **_malformed(kind, "accounts"))
        assert [a.id for a in await client.search_accounts()] == [ACCOUNT]  # retried like any transient failure
        assert client.stats.retries == 1


async def test_a_broken_contract_answer_is_a_gateway_error(front: ScriptedGateway) -> None:
    async with client_via(front) as client:
        front.script("Contract/searchById", body={"success": True, "errorCode": 0, "contract": None})
        with pytest.raises(TransportError, match="Contract/searchById: payload field 'contract' is malformed"):
            await client.contract_by_id("CON.F.US.EP.Z26")


async def test_malformed_items_are_skipped_and_counted(front: ScriptedGateway) -> None:
    async with client_via(front) as client:
        good = (await client.search_accounts())[0].to_wire()
        front.script("Account/search", body={"success": True, "errorCode": 0, "accounts": [{"id": "x"}, good]})
        assert [a.id for a in await client.search_accounts()] == [ACCOUNT]
        assert client.stats.malformed_items == 1


async def test_timeouts_and_lost_connections_are_transient(sim: Any, front: ScriptedGateway) -> None:
    async with client_via(front, api={"timeout": 200}) as client:
        front.script("Position/searchOpen", delay_s=0.5, body={"success": True, "positions": []})
        with pytest.raises(TransportError, match=r"Position/searchOpen: no answer within 0.2 s"):
            await client.search_open_positions(ACCOUNT, retries=0)
        front.script("Position/searchOpen", delay_s=0.5, body={"success": True, "positions": []})
        assert await client.search_open_positions(ACCOUNT) == []  # second try answered in time
    async with GatewayClient(fast_config(sim.base_url), "demo", "demo-key-123") as direct:
        sim.faults.cut("rest", 0.5)
        with pytest.raises(TransportError, match="Order/searchOpen: connection lost") as caught:
            await direct.search_open_orders(ACCOUNT, retries=0)
        assert caught.value.sent


async def test_validate_refused_or_failing_falls_back_to_login(front: ScriptedGateway) -> None:
    async with client_via(front) as client:
        for refusal in ({"status": 401}, {"body": {"success": False, "errorCode": 3, "newToken": None}},
                        {"status": 503}):
            front.script("Auth/validate", **refusal)
            await client.tokens.invalidate(await client.tokens.get_valid_token())
            await client.search_accounts()
        assert client.tokens.refreshes == 0
        assert client.tokens.logins == 4  # the first, then one per refusal


async def test_login_refused_by_status_is_retried_then_raised(front: ScriptedGateway) -> None:
    client = client_via(front)
    front.script("Auth/loginKey", status=503, times=4)
    try:
        with pytest.raises(Exception, match="Auth/loginKey: HTTP 503"):
            await client.start(connect_hubs=False)
        assert front.requests.count("Auth/loginKey") == 4  # tokenRefresh.maxRetries 3 + the first
    finally:
        await client.aclose()


async def test_ping_and_logout(sim: Any) -> None:
    async with GatewayClient(fast_config(sim.base_url), "demo", "demo-key-123") as client:
        assert await client.ping()
        await client.logout()
        assert [a.id for a in await client.search_accounts()] == [ACCOUNT]  # logged out: one fresh login
        assert client.tokens.logins == 2
    dead = GatewayClient(fast_config("http://127.0.0.1:9"), "demo", "demo-key-123")
    assert not await dead.ping()
    await dead.aclose()


# ----------------------------------------------------------------------------------------- mutations

async def test_a_refused_place_is_a_result_not_an_exception(sim: Any, front: ScriptedGateway) -> None:
    async with client_via(front) as client:
        front.script("Order/place", body={"success": False, "errorCode": 2, "errorMessage": "Outside limits"})
        result = await client.place_order(ACCOUNT, es_id(sim), OrderType.MARKET, OrderSide.BID, 1,
                                          idempotency_key="refused-1")
        assert (result.ok, result.error_code, result.error_name, result.message) == (
            False, 2, "OrderRejected", "Outside limits")
        assert front.requests.count("Order/search") == 1  # errorCode 2 may be our repeated tag: looked up
        assert sim.broker.orders(ACCOUNT) == []
    with pytest.raises(ValueError, match="idempotency_key"):
        custom_tag_for("")


async def test_place_never_sent_is_sent_again_once(sim: Any, front: ScriptedGateway) -> None:
    """A 503 from a proxy in front of the Gateway: uncertain; the broker has no order with our tag, so the
    client sends it again (the tag makes that safe) and reports the verified outcome."""
    async with client_via(front) as client:
        front.script("Order/place", status=503)
        result = await client.place_order(ACCOUNT, es_id(sim), OrderType.MARKET, OrderSide.BID, 1,
                                          idempotency_key="absent-1")
        assert result.ok and result.verified and result.order_id is not None
        assert [o.id for o in sim.broker.orders(ACCOUNT)] == [result.order_id]
        assert front.requests.count("Order/place") == 2


async def test_place_lost_twice_or_refused_on_the_second_send(sim: Any, front: ScriptedGateway) -> None:
    async with client_via(front) as client:
        front.script("Order/place", status=503, times=2)
        with pytest.raises(OrderOutcomeUnknownError, match=r"second attempt was lost too.*check the account"):
            await client.place_order(ACCOUNT, es_id(sim), OrderType.MARKET, OrderSide.BID, 1,
                                     idempotency_key="lost-twice")
        front.script("Order/place", status=503)
        front.script("Order/place", body={"success": False, "errorCode": 3, "errorMessage": "no funds"})
        refused = await client.place_order(ACCOUNT, es_id(sim), OrderType.MARKET, OrderSide.BID, 1,
                                           idempotency_key="refused-second")
        assert (refused.ok, refused.verified, refused.error_name) == (False, True, "InsufficientFunds")
        assert sim.broker.orders(ACCOUNT) == []
        front.script("Order/place", status=503)  # never reached the broker
        sim.faults.lose_responses(1)  # the second send executes, its answer is lost
        late = await client.place_order(ACCOUNT, es_id(sim), OrderType.MARKET, OrderSide.BID, 1,
                                        idempotency_key="second-lost-but-done")
        assert late.ok and late.verified and [o.id for o in sim.broker.orders(ACCOUNT)] == [late.order_id]


async def test_place_uncertain_with_verification_disabled_says_so(sim: Any) -> None:
    async with GatewayClient(fast_config(sim.base_url, orderManagement={"verification": {"enabled": False}}),
                             "demo", "demo-key-123") as client:
        sim.faults.lose_responses(1)
        with pytest.raises(OrderOutcomeUnknownError, match="verification is disabled"):
            await client.place_order(ACCOUNT, es_id(sim), OrderType.MARKET, OrderSide.BID, 1,
                                     idempotency_key="no-verify")


async def test_verification_that_cannot_ask_the_broker_raises(sim: Any, front: ScriptedGateway) -> None:
    async with client_via(front) as client:
        front.script("Order/place", status=503)
        front.script("Order/search", status=503, times=3)
        with pytest.raises(OrderOutcomeUnknownError, match=r"Order/place: outcome unknown .*HTTP 503"):
            await client.place_order(ACCOUNT, es_id(sim), OrderType.MARKET, OrderSide.BID, 1,
                                     idempotency_key="cannot-ask")


async def test_not_sent_mutation_is_retried_until_the_gateway_is_back(sim: Any) -> None:
    gateway = ScriptedGateway(sim.base_url)
    await gateway.start()
    client = client_via(gateway, errorHandling={"retries": {"maxAttempts": 2, "backoffBase": 100,
                                                            "maxBackoffMs": 200}})
    revived = ScriptedGateway(sim.base_url)
    try:
        await client.start(connect_hubs=False)
        await gateway.stop()  # connection refused: the request certainly never left

        async def come_back() -> None:
            await asyncio.sleep(0.15)
            await revived.start(port=gateway.port)

        back = asyncio.create_task(come_back())
        result = await client.place_order(ACCOUNT, es_id(sim), OrderType.MARKET, OrderSide.BID, 1,
                                          idempotency_key="refused-then-back")
        await back
        assert result.ok and not result.verified
        assert [o.id for o in sim.broker.orders(ACCOUNT)] == [result.order_id]
        await revived.stop()
        with pytest.raises(TransportError, match="Order/cancel: cannot reach the Gateway") as caught:
            await client.cancel_order(ACCOUNT, result.order_id or 0)
        assert not caught.value.sent
    finally:
        await client.aclose()


async def test_expired_idempotency_entry_still_finds_the_order_by_tag(vsim: Any, vclock: VirtualClock) -> None:
    async with GatewayClient(fast_config(vsim.base_url), "demo", "demo-key-123", clock=vclock) as client:
        es = vsim.broker.contract("ES")
        price = float(vsim.market.set_quote("ES", 5000.0).last_price)
        first = await client.place_order(ACCOUNT, es.id, OrderType.LIMIT, OrderSide.BID, 1,
                                         idempotency_key="ttl-1", limit_price=price - 50)
        vclock.advance(timedelta(seconds=3601))  # past orderManagement.idempotency.cacheTTL
        again = await client.place_order(ACCOUNT, es.id, OrderType.LIMIT, OrderSide.BID, 1,
                                         idempotency_key="ttl-1", limit_price=price - 50)
        assert not again.cached and again.verified and again.order_id == first.order_id
        assert len(vsim.broker.open_orders(ACCOUNT)) == 1


async def test_uncertain_cancel_modify_close_of_what_the_broker_does_not_have(
        sim: Any, front: ScriptedGateway) -> None:
    async with client_via(front) as client:
        for path in ("Order/cancel", "Order/modify", "Position/closeContract", "Position/partialCloseContract"):
            front.script(path, status=503)
        cancel = await client.cancel_order(ACCOUNT, 987_654)
        assert (cancel.ok, cancel.verified, cancel.message) == (False, True, "order 987654 is unknown to the broker")
        modify = await client.modify_order(ACCOUNT, 987_654, size=2)
        assert (modify.ok, modify.message) == (False, "order 987654 is unknown to the broker")
        sim.trader.place_order(ACCOUNT, "ES", side="buy", size=2, type="market")
        close = await client.close_position(ACCOUNT, es_id(sim))  # the 503 came from the front: still open
        assert (close.ok, close.verified, close.message) == (False, True, "position still open (2 contracts)")
        partial = await client.partial_close_position(ACCOUNT, es_id(sim), 1)
        assert (partial.ok, partial.message) == (False, "only 0 of 1 contracts closed")


async def test_uncertain_cancel_of_a_filled_order_reports_its_status(sim: Any, front: ScriptedGateway) -> None:
    async with client_via(front) as client:
        filled = sim.trader.place_order(ACCOUNT, "ES", side="buy", size=1, type="market")
        front.script("Order/cancel", status=503)
        result = await client.cancel_order(ACCOUNT, filled.id)
        assert (result.ok, result.verified) == (False, True)
        assert result.order is not None and result.order.status == OrderStatus.FILLED
        assert result.message == f"order {filled.id} is FILLED"


async def test_read_refusals_name_the_error_code(front: ScriptedGateway) -> None:
    async with client_via(front) as client:
        front.script("Contract/available", body={"success": False, "errorCode": 9, "errorMessage": None})
        with pytest.raises(GatewayRequestError, match=r"^Contract/available refused: error 9 \(errorCode 9\)$"):
            await client.available_contracts()
        front.script("Trade/search", body={"success": False, "errorMessage": "broken"})
        with pytest.raises(GatewayRequestError, match=r"errorCode -1\): broken"):
            await client.search_trades(ACCOUNT, client.clock.now())
