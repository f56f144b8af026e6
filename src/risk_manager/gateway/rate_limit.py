"""Client-side sliding-window rate limiter: queue callers instead of letting the Gateway answer 429.

Why hand-written: the Gateway's limits are sliding windows counted on the broker's clock (the
injected `Clock`, shared with the simulator in replays), and a request must count from the moment
it is sent until the server has certainly seen it. Generic token-bucket libraries (aiolimiter,
asyncio-throttle) read the event loop's clock and count at send time only, which under latency can
let the server see 201 requests in its window.

Counting rule (conservative, so the server can never see more than `limit` in any window): a
request occupies a slot from `acquire()` while it is in flight, and after it finishes its slot
carries the finish time (not the send time) until `window` seconds have passed on the clock.
Waiting callers are served first-in first-out; the queue is bounded (`queueSize`) and, when full,
either the oldest waiter (`dropOldest: true`) or the new caller gets `RateLimitQueueFullError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass

from risk_manager.domain import Clock
from risk_manager.gateway.config import RateLimitConfig, WindowConfig
from risk_manager.gateway.errors import RateLimitQueueFullError
from risk_manager.logs import log_event

log = logging.getLogger("risk_manager.gateway.rate_limit")

# A virtual clock moves in jumps, so waiters re-check at least this often (real seconds).
_MAX_SLEEP_S = 0.25


@dataclass(slots=True)
class LimiterStats:
    granted: int = 0
    waited: int = 0  # requests that had to queue
    dropped: int = 0
    max_queue: int = 0


class Permit:
    """One slot of the window; `release()` when the response (or failure) is in."""

    __slots__ = ("_limiter", "_released")

    def __init__(self, limiter: SlidingWindowLimiter) -> None:
        self._limiter = limiter
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._limiter._release()


class SlidingWindowLimiter:
    def __init__(self, name: str, window: WindowConfig, clock: Clock, queue_size: int = 1000,
                 drop_oldest: bool = True) -> None:
        self.name = name
        self.limit = window.requests
        self.window_s = window.window_seconds
        self.queue_size = queue_size
        self.drop_oldest = drop_oldest
        self.stats = LimiterStats()
        self._clock = clock
        self._done: deque[float] = deque()  # finish times of completed requests, oldest first
        self._in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._changed = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None

    @property
    def in_window(self) -> int:
        self._prune()
        return len(self._done) + self._in_flight

    @property
    def queued(self) -> int:
        return len(self._waiters)

    def _prune(self) -> None:
        horizon = self._clock.timestamp() - self.window_s
        done = self._done
        while done and done[0] <= horizon:
            done.popleft()

    def _room(self) -> bool:
        return self.in_window < self.limit

    async def acquire(self) -> Permit:
        if not self._waiters and self._room():
            self._in_flight += 1
            self.stats.granted += 1
            return Permit(self)
        if len(self._waiters) >= self.queue_size:
            self.stats.dropped += 1
            if not self.drop_oldest or not self._waiters:
                log_event(log, "rate_limit_queue_full", logging.WARNING, bucket=self.name, dropped="new")
                raise RateLimitQueueFullError(self.name, len(self._waiters))
            oldest = self._waiters.popleft()
            log_event(log, "rate_limit_queue_full", logging.WARNING, bucket=self.name, dropped="oldest")
            oldest.set_exception(RateLimitQueueFullError(self.name, len(self._waiters) + 1))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        self.stats.waited += 1
        self.stats.max_queue = max(self.stats.max_queue, len(self._waiters))
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._run_pump(), name=f"rate-limit-{self.name}")
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled() and future.exception() is None:
                self._release()  # granted just as we were cancelled: give the slot back
            elif future in self._waiters:
                self._waiters.remove(future)
            raise
        return Permit(self)

    def _release(self) -> None:
        self._in_flight -= 1
        self._done.append(self._clock.timestamp())
        self._changed.set()

    async def _run_pump(self) -> None:
        while self._waiters:
            while self._waiters and self._room():
                head = self._waiters.popleft()
                if head.done():
                    continue
                self._in_flight += 1
                self.stats.granted += 1
                head.set_result(None)
            if not self._waiters:
                break
            self._changed.clear()
            wait = _MAX_SLEEP_S
            if self._done and len(self._done) + self._in_flight >= self.limit and len(self._done) > 0:
                wait = min(wait, max(0.001, self._done[0] + self.window_s - self._clock.timestamp()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._changed.wait()


HISTORY_PATH = "history/retrievebars"


class RateLimiter:
    """The Gateway's two limits: `History/retrieveBars` (50/30 s) and everything else (200/60 s)."""

    def __init__(self, config: RateLimitConfig, clock: Clock) -> None:
        self.general = SlidingWindowLimiter("general", config.general, clock, config.queue_size, config.drop_oldest)
        self.history = SlidingWindowLimiter("history", config.history, clock, config.queue_size, config.drop_oldest)

    def for_path(self, path: str) -> SlidingWindowLimiter:
        return self.history if path.lower() == HISTORY_PATH else self.general

    def stats(self) -> dict[str, LimiterStats]:
        return {"general": self.general.stats, "history": self.history.stats}
