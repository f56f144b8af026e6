"""Rate limiter and circuit breaker on a virtual clock (pure logic, no server)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from risk_manager.domain import VirtualClock
from risk_manager.gateway import BreakerState, CircuitBreaker, CircuitOpenError, RateLimitQueueFullError
from risk_manager.gateway.config import CircuitBreakerConfig, WindowConfig
from risk_manager.gateway.rate_limit import SlidingWindowLimiter


def _clock() -> VirtualClock:
    return VirtualClock(datetime(2026, 3, 3, 15, 0, tzinfo=UTC))


async def test_limiter_queues_until_the_window_slides() -> None:
    clock = _clock()
    limiter = SlidingWindowLimiter("general", WindowConfig(requests=3, window_seconds=10), clock)
    for _ in range(3):
        (await limiter.acquire()).release()
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0.05)
    assert not waiter.done() and limiter.queued == 1
    clock.advance(9.9)
    await asyncio.sleep(0.3)
    assert not waiter.done()
    clock.advance(0.2)
    permit = await asyncio.wait_for(waiter, 1)
    permit.release()
    assert limiter.stats.waited == 1 and limiter.stats.granted == 4


async def test_in_flight_requests_hold_their_slot() -> None:
    clock = _clock()
    limiter = SlidingWindowLimiter("general", WindowConfig(requests=2, window_seconds=1), clock)
    a = await limiter.acquire()
    b = await limiter.acquire()
    clock.advance(5)  # long in flight: still counted
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0.05)
    assert not waiter.done()
    a.release()  # finished now: counts until now + 1 s
    await asyncio.sleep(0.05)
    assert not waiter.done()
    clock.advance(1.01)
    (await asyncio.wait_for(waiter, 1)).release()
    b.release()


async def test_queue_full_drops_oldest_or_newest() -> None:
    clock = _clock()
    limiter = SlidingWindowLimiter("general", WindowConfig(requests=1, window_seconds=10), clock, queue_size=1,
                                   drop_oldest=True)
    await limiter.acquire()
    first = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    second = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0.01)
    with pytest.raises(RateLimitQueueFullError, match="queueSize"):
        await first
    second.cancel()
    strict = SlidingWindowLimiter("history", WindowConfig(requests=1, window_seconds=10), clock, queue_size=0,
                                  drop_oldest=False)
    await strict.acquire()
    with pytest.raises(RateLimitQueueFullError):
        await strict.acquire()


def test_breaker_opens_half_opens_and_closes() -> None:
    clock = _clock()
    breaker = CircuitBreaker(CircuitBreakerConfig(failure_threshold=5, timeout=60_000, half_open_requests=3), clock)
    seen: list[BreakerState] = []
    breaker.on_change(seen.append)
    for _ in range(4):
        breaker.record_failure(breaker.before_call())
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure(breaker.before_call())
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpenError, match=r"60\.0 s"):
        breaker.before_call()
    clock.advance(60)
    assert breaker.state is BreakerState.HALF_OPEN
    probes = [breaker.before_call() for _ in range(3)]
    assert probes == [True, True, True]
    with pytest.raises(CircuitOpenError):
        breaker.before_call()  # only 3 probes at a time
    for p in probes:
        breaker.record_success(p)
    assert breaker.state is BreakerState.CLOSED
    assert seen == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


def test_failed_probe_reopens_and_success_resets_count() -> None:
    clock = _clock()
    breaker = CircuitBreaker(CircuitBreakerConfig(failure_threshold=2, timeout=1000, half_open_requests=1), clock)
    breaker.record_failure(False)
    breaker.record_success(False)
    breaker.record_failure(False)
    assert breaker.state is BreakerState.CLOSED  # not consecutive
    breaker.record_failure(False)
    assert breaker.state is BreakerState.OPEN
    clock.advance(1)
    breaker.record_failure(breaker.before_call())
    assert breaker.state is BreakerState.OPEN and breaker.times_opened == 2
