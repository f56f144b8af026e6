"""REST client against the simulator: typed reads, tokens, rate limit, breaker, lost responses."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from risk_manager.domain import BarUnit, OrderSide, OrderStatus, OrderType, VirtualClock
from risk_manager.gateway import (
    AuthenticationError,
    BreakerState,
    CircuitOpenError,
    GatewayClient,
    GatewayRequestError,
    OrderOutcomeUnknownError,
    custom_tag_for,
)
from risk_manager.gateway.circuit_breaker import urgent_calls

from .conftest import fast_config

ACCOUNT = 1001


def client_for(sim: Any, clock: VirtualClock | None = None, **sections: dict[str, Any]) -> GatewayClient:
    return GatewayClient(fast_config(sim.base_url, **sections), "demo", "demo-key-123", clock=clock)


async def test_typed_reads(sim: Any) -> None:
    async with client_for(sim) as client:
        accounts = await client.search_accounts()
        assert [a.id for a in accounts] == [ACCOUNT]
        es = sim.broker.contract("ES")
        found = await client.search_contracts("ES")
        assert es.id in {c.id for c in found}
        assert (await client.contract_by_id(es.id)).tick_size == es.tick_size
        assert await client.available_contracts()
        now = client.clock.now()
        await client.retrieve_bars(es.id, now - timedelta(hours=1), now, BarUnit.MINUTE, 1, limit=10)
        sim.trader.place_order(ACCOUNT, "ES", side="buy", size=2, type="market")
        positions = await client.search_open_positions(ACCOUNT)
        assert [(p.contract_id, p.size) for p in positions] == [(es.id, 2)]
        trades = await client.search_trades(ACCOUNT, now - timedelta(hours=1))
        assert len(trades) == 1
        orders = await client.search_orders(ACCOUNT, now - timedelta(hours=1))
        assert orders[0].status == OrderStatus.FILLED
        assert await client.search_open_orders(ACCOUNT) == []
        with pytest.raises(GatewayRequestError, match="ContractNotFound"):
            await client.contract_by_id("CON.F.US.NOPE.Z26")
        with pytest.raises(GatewayRequestError, match="AccountNotFound"):
            await client.search_open_positions(999_999)


async def test_bad_credentials_are_a_clear_error(sim: Any) -> None:
    client = GatewayClient(fast_config(sim.base_url), "demo", "short", clock=None)
    with pytest.raises(AuthenticationError, match="check the user name and API key"):
        await client.start(connect_hubs=False)
    await client.aclose()


async def test_token_expiry_mid_operation_and_one_refresh_for_50_callers(sim: Any) -> None:
    async with client_for(sim) as client:
        await client.search_accounts()
        assert client.tokens.logins == 1
        sim.faults.expire_tokens()  # every issued token now answers 401, validate too
        results = await asyncio.gather(*(client.search_open_positions(ACCOUNT) for _ in range(50)))
        assert len(results) == 50
        assert client.tokens.logins == 2  # one fresh login for all 50 callers
        assert sum(1 for r in sim.recorder.requests if r.path.lower() == "/api/auth/loginkey") == 2


async def test_proactive_validate_once_under_50_concurrent_calls(vsim: Any, vclock: VirtualClock) -> None:
    async with client_for(vsim, clock=vclock) as client:
        first = await client.tokens.get_valid_token()
        vclock.advance(timedelta(hours=22, minutes=1))  # inside the 2 h buffer of the 24 h token
        await asyncio.gather(*(client.search_accounts() for _ in range(50)))
        validates = [r for r in vsim.recorder.requests if r.path.lower() == "/api/auth/validate"]
        assert len(validates) == 1
        assert await client.tokens.get_valid_token() != first
        assert client.tokens.logins == 1


async def test_burst_of_500_requests_gets_no_429(vsim: Any, vclock: VirtualClock) -> None:
    async with client_for(vsim, clock=vclock) as client:
        done = asyncio.Event()

        async def advance() -> None:
            while not done.is_set():
                await asyncio.sleep(0.003)
                vclock.advance(2.0)

        mover = asyncio.create_task(advance())
        try:
            results = await asyncio.gather(*(client.search_open_orders(ACCOUNT) for _ in range(500)))
        finally:
            done.set()
            await mover
        assert len(results) == 500
        assert vsim.recorder.http_429 == 0
        assert client.stats.http_429 == 0
        assert client.limiter.general.stats.waited > 0  # it really had to queue


async def test_breaker_opens_on_5xx_and_recovers(vsim: Any, vclock: VirtualClock) -> None:
    async with client_for(vsim, clock=vclock, errorHandling={"retries": {"maxAttempts": 0}}) as client:
        states: list[BreakerState] = []
        client.breaker.on_change(states.append)
        vsim.faults.http_errors(503, 50)
        for _ in range(5):
            with pytest.raises(Exception, match="HTTP 503"):
                await client.search_accounts()
        assert client.breaker.state is BreakerState.OPEN
        with pytest.raises(CircuitOpenError):
            await client.search_accounts()
        vsim.faults.clear()
        vclock.advance(60)
        assert client.breaker.state is BreakerState.HALF_OPEN
        for _ in range(3):
            await client.search_accounts()
        assert client.breaker.state is BreakerState.CLOSED
        assert states == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


async def test_lost_answer_of_a_half_open_probe_is_verified_at_once(vsim: Any, vclock: VirtualClock) -> None:
    # Chaos seed 622: the first enforcement call after a REST outage (the breaker's half-open probe)
    # is executed by the broker but its answer is lost. The lost answer must not re-open the breaker
    # by itself: the verification that follows asks at once, and the next protective call goes too.
    async with client_for(vsim, clock=vclock, errorHandling={"retries": {"maxAttempts": 0}}) as client:
        es = vsim.broker.contract("ES")
        price = es_price(vsim)
        placed = await client.place_order(ACCOUNT, es.id, OrderType.LIMIT, OrderSide.BID, 1,
                                          idempotency_key="probe-lost", limit_price=price - 20)
        assert placed.order_id is not None
        vsim.trader.place_order(ACCOUNT, "ES", side="sell", size=2, type="market")
        vsim.faults.http_errors(503, 5)
        for _ in range(5):
            with pytest.raises(Exception, match="HTTP 503"):
                await client.search_accounts()
        assert client.breaker.state is BreakerState.OPEN
        vclock.advance(client.breaker.urgent_probe_s)   # the outage is over; the urgent probe is due
        vsim.faults.lose_responses(1)
        with urgent_calls():
            cancelled = await client.cancel_order(ACCOUNT, placed.order_id)
            assert client.breaker.state is not BreakerState.OPEN
            closed = await client.close_position(ACCOUNT, es.id)
        assert cancelled.ok and cancelled.verified
        assert cancelled.order is not None and cancelled.order.status == OrderStatus.CANCELLED
        assert closed.ok and vsim.broker.positions(ACCOUNT) == []


async def test_a_lost_mutation_answer_still_opens_the_breaker_when_its_verification_fails(
        vsim: Any, vclock: VirtualClock) -> None:
    # A Gateway that is really down fails the verification queries too; those count.
    async with client_for(vsim, clock=vclock, errorHandling={"retries": {"maxAttempts": 0}}) as client:
        es = vsim.broker.contract("ES")
        placed = await client.place_order(ACCOUNT, es.id, OrderType.LIMIT, OrderSide.BID, 1,
                                          idempotency_key="down", limit_price=es_price(vsim) - 20)
        assert placed.order_id is not None
        vsim.faults.cut("rest", 30.0)
        with pytest.raises(OrderOutcomeUnknownError):
            await client.cancel_order(ACCOUNT, placed.order_id)
        assert client.breaker.consecutive_failures >= 3
        with pytest.raises(OrderOutcomeUnknownError):
            await client.cancel_order(ACCOUNT, placed.order_id)
        assert client.breaker.state is BreakerState.OPEN


async def test_reads_retry_transient_errors(sim: Any) -> None:
    async with client_for(sim) as client:
        sim.faults.http_errors(502, 3)
        assert [a.id for a in await client.search_accounts()] == [ACCOUNT]
        assert client.stats.retries == 3


async def test_lost_place_response_gives_exactly_one_order(sim: Any) -> None:
    async with client_for(sim) as client:
        es = sim.broker.contract("ES")
        sim.faults.lose_responses(1)
        result = await client.place_order(ACCOUNT, es.id, OrderType.MARKET, OrderSide.BID, 1,
                                          idempotency_key="test-lost-1")
        assert result.ok and result.verified and result.order_id is not None
        tagged = [o for o in sim.broker.orders(ACCOUNT) if o.custom_tag == custom_tag_for("test-lost-1")]
        assert len(tagged) == 1 and tagged[0].id == result.order_id
        assert sim.recorder.duplicate_orders == []
        again = await client.place_order(ACCOUNT, es.id, OrderType.MARKET, OrderSide.BID, 1,
                                         idempotency_key="test-lost-1")
        assert again.cached and again.order_id == result.order_id
        places = [r for r in sim.recorder.requests if r.path.lower() == "/api/order/place"]
        assert len(places) == 1


async def test_repeated_key_in_a_new_client_finds_the_existing_order(sim: Any) -> None:
    es = sim.broker.contract("ES")
    async with client_for(sim) as first:
        placed = await first.place_order(ACCOUNT, es.id, OrderType.LIMIT, OrderSide.BID, 1,
                                         idempotency_key="k-restart", limit_price=es_price(sim) - 50)
    async with client_for(sim) as second:  # e.g. after a daemon restart: empty cache
        again = await second.place_order(ACCOUNT, es.id, OrderType.LIMIT, OrderSide.BID, 1,
                                          idempotency_key="k-restart", limit_price=es_price(sim) - 50)
    assert again.ok and again.order_id == placed.order_id
    assert len(sim.broker.open_orders(ACCOUNT)) == 1


def es_price(sim: Any) -> float:
    return float(sim.broker.contract("ES").tick_size * round(sim.market.set_quote("ES", 5000.0).last_price /
                                                              sim.broker.contract("ES").tick_size))


async def test_lost_cancel_and_close_responses_are_verified(sim: Any) -> None:
    async with client_for(sim) as client:
        es = sim.broker.contract("ES")
        price = es_price(sim)
        placed = await client.place_order(ACCOUNT, es.id, OrderType.LIMIT, OrderSide.BID, 1,
                                          idempotency_key="cancel-me", limit_price=price - 20)
        assert placed.ok and placed.order_id is not None
        sim.faults.lose_responses(1)
        cancelled = await client.cancel_order(ACCOUNT, placed.order_id)
        assert cancelled.ok and cancelled.verified and cancelled.order is not None
        assert cancelled.order.status == OrderStatus.CANCELLED
        sim.trader.place_order(ACCOUNT, "ES", side="sell", size=3, type="market")
        sim.faults.lose_responses(1)
        closed = await client.close_position(ACCOUNT, es.id)
        assert closed.ok and closed.verified
        assert sim.broker.positions(ACCOUNT) == []
        refused = await client.close_position(ACCOUNT, es.id)
        assert not refused.ok and refused.error_name == "PositionNotFound"


async def test_lost_partial_close_and_modify(sim: Any) -> None:
    async with client_for(sim) as client:
        es = sim.broker.contract("ES")
        price = es_price(sim)
        sim.trader.place_order(ACCOUNT, "ES", side="buy", size=3, type="market")
        sim.faults.lose_responses(1)
        partial = await client.partial_close_position(ACCOUNT, es.id, 2)
        assert partial.ok and partial.verified
        assert [p.size for p in sim.broker.positions(ACCOUNT)] == [1]
        placed = await client.place_order(ACCOUNT, es.id, OrderType.LIMIT, OrderSide.BID, 1,
                                          idempotency_key="modify-me", limit_price=price - 20)
        assert placed.order_id is not None
        sim.faults.lose_responses(1)
        modified = await client.modify_order(ACCOUNT, placed.order_id, limit_price=price - 10)
        assert modified.ok and modified.verified
        assert sim.broker.open_orders(ACCOUNT)[0].limit_price == price - 10


async def test_encrypted_token_file_with_the_simulator(sim: Any, tmp_path: Any) -> None:
    import os
    import secrets
    import stat

    from risk_manager.gateway import EncryptedTokenStore

    path = tmp_path / "token.enc"
    key = secrets.token_bytes(32)

    def logins() -> int:
        return sum(1 for r in sim.recorder.requests if r.path.lower() == "/api/auth/loginkey")

    first = GatewayClient(fast_config(sim.base_url), "demo", "demo-key-123",
                            token_store=EncryptedTokenStore(path, key))
    await first.start(connect_hubs=False)
    token = await first.tokens.get_valid_token()
    await first.aclose()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert token.encode() not in path.read_bytes()
    second = GatewayClient(fast_config(sim.base_url), "demo", "demo-key-123",
                             token_store=EncryptedTokenStore(path, key))
    await second.start(connect_hubs=False)
    assert [a.id for a in await second.search_accounts()] == [ACCOUNT]
    await second.aclose()
    assert logins() == 1  # the stored token was reused
    path.write_bytes(path.read_bytes()[:20] + b"corrupted")
    third = GatewayClient(fast_config(sim.base_url), "demo", "demo-key-123",
                            token_store=EncryptedTokenStore(path, key))
    await third.start(connect_hubs=False)  # logged, then a fresh login — no crash
    assert [a.id for a in await third.search_accounts()] == [ACCOUNT]
    await third.aclose()
    assert logins() == 2
    assert EncryptedTokenStore(path, key).load("demo") is not None  # rewritten with the new token


async def test_random_faults_never_duplicate_an_order(sim: Any) -> None:
    import random

    from risk_manager.gateway import OrderOutcomeUnknownError

    rng = random.Random(7)
    es = sim.broker.contract("ES")
    price = es_price(sim)
    async with client_for(sim, orderManagement={"verification": {"timeout": 300}}) as client:
        for i in range(20):
            fault = rng.choice(["none", "lose", "503", "429"])
            if fault == "lose":
                sim.faults.lose_responses(1)
            elif fault in ("503", "429"):
                sim.faults.http_errors(int(fault), 1)
            key = f"chaos-{i}"
            try:
                result = await client.place_order(ACCOUNT, es.id, OrderType.LIMIT, OrderSide.BID, 1,
                                                  idempotency_key=key, limit_price=price - 40 - i)
            except OrderOutcomeUnknownError:
                result = await client.place_order(ACCOUNT, es.id, OrderType.LIMIT, OrderSide.BID, 1,
                                                  idempotency_key=key, limit_price=price - 40 - i)
            assert result.ok, (fault, result)
            sim.faults.clear()
    tags = [o.custom_tag for o in sim.broker.orders(ACCOUNT)]
    assert sorted(tags) == sorted(custom_tag_for(f"chaos-{i}") for i in range(20))
    assert sim.recorder.duplicate_orders == []


async def test_timeout_then_same_key_finds_the_late_order(sim: Any) -> None:
    from risk_manager.gateway import OrderOutcomeUnknownError

    es = sim.broker.contract("ES")
    price = es_price(sim)
    async with client_for(sim, api={"timeout": 300}, orderManagement={"verification": {"timeout": 300}}) as client:
        sim.faults.latency(rest_ms=600)  # every answer, the verification queries' too, comes too late
        with pytest.raises(OrderOutcomeUnknownError, match="check the account"):
            await client.place_order(ACCOUNT, es.id, OrderType.LIMIT, OrderSide.BID, 1,
                                     idempotency_key="slow-1", limit_price=price - 30)
        sim.faults.clear()
        await asyncio.sleep(0.7)  # the first request is executed late
        again = await client.place_order(ACCOUNT, es.id, OrderType.LIMIT, OrderSide.BID, 1,
                                         idempotency_key="slow-1", limit_price=price - 30)
        assert again.ok and again.order_id is not None
    tagged = [o for o in sim.broker.orders(ACCOUNT) if o.custom_tag == custom_tag_for("slow-1")]
    assert len(tagged) == 1 and tagged[0].id == again.order_id
