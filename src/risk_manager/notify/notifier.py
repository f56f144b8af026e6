"""`Notifier`: hands notifications to channels without ever blocking the caller.

`notify()` is synchronous and O(number of channels): it puts the notification on each subscribed
channel's bounded queue, or drops it with a log line when that queue is full. Each channel has its
own sender task, so a channel that is down (retrying with backoff) never delays the others.

Retries use tenacity (exponential backoff with jitter; a server's `Retry-After` wins), the per-channel
rate limit uses aiolimiter's leaky bucket: both well-kept libraries made for exactly this.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
from aiolimiter import AsyncLimiter
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from risk_manager.logs import log_event, redact
from risk_manager.notify.channels import AnyChannelConfig, check_response, pause_hint, prepare, rate_of
from risk_manager.notify.config import NotificationsConfig
from risk_manager.notify.errors import DeliveryError
from risk_manager.notify.notifications import Notification, NotificationKind

logger = logging.getLogger("risk_manager.notify")

RETRY_AFTER_CAP = 600.0  # seconds: a server asking for longer gets the message after 10 minutes anyway

Sleep = Callable[[float], Awaitable[None]]


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, DeliveryError) and exc.transient


@dataclass
class ChannelStats:
    sent: int = 0
    failed: int = 0
    dropped: int = 0
    retries: int = 0


@dataclass
class _Lane:
    """One channel: its queue, its rate limit and what its server asked us to wait."""

    config: AnyChannelConfig
    queue: asyncio.Queue[Notification]
    limiter: AsyncLimiter
    stats: ChannelStats = field(default_factory=ChannelStats)
    paused_until: float = 0.0  # time.monotonic()

    @classmethod
    def of(cls, config: AnyChannelConfig, queue_size: int) -> _Lane:
        rate = rate_of(config)
        return cls(config, asyncio.Queue(queue_size), AsyncLimiter(rate.messages, rate.per.total_seconds()))


class _Delivery:
    """Sends one notification on one lane, with retries, backoff and the rate limit."""

    def __init__(self, config: NotificationsConfig, client: httpx.AsyncClient, sleep: Sleep) -> None:
        self._client = client
        self._sleep = sleep
        self._retries = config.retries
        self._base = config.backoff_base.total_seconds()
        self._max = config.backoff_max.total_seconds()

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, DeliveryError) and exc.retry_after is not None:
            return min(exc.retry_after, RETRY_AFTER_CAP)
        # exponential backoff (base, 2×base, 4×base... capped) plus up to one base of jitter
        exponential = min(self._max, self._base * 2 ** (state.attempt_number - 1))
        return float(exponential + random.uniform(0, self._base))

    async def _attempt(self, lane: _Lane, note: Notification) -> None:
        delay = lane.paused_until - time.monotonic()
        if delay > 0:
            await self._sleep(delay)
        await lane.limiter.acquire()
        request = prepare(lane.config, note)
        try:
            response = await self._client.post(
                request.url, json=request.body, headers=request.headers, timeout=lane.config.timeout.total_seconds()
            )
        except httpx.TimeoutException:
            raise DeliveryError(lane.config.label, "timed out", transient=True) from None
        except httpx.TransportError as exc:
            # str(exc) may quote the URL (and its token): only the type and a redacted text leave here.
            raise DeliveryError(lane.config.label, f"network error {type(exc).__name__}: {redact(str(exc))}",
                                transient=True) from None
        hold = pause_hint(response)
        if hold:
            lane.paused_until = time.monotonic() + hold
        check_response(lane.config, response)

    def _before_sleep(self, lane: _Lane, note: Notification) -> Callable[[RetryCallState], None]:
        def log_retry(state: RetryCallState) -> None:
            lane.stats.retries += 1
            exc = state.outcome.exception() if state.outcome else None
            wait = state.upcoming_sleep
            if isinstance(exc, DeliveryError) and exc.retry_after is not None:
                lane.paused_until = time.monotonic() + wait
            log_event(logger, "notification_retry", logging.WARNING, channel=lane.config.label,
                      kind=note.kind.value, attempt=state.attempt_number, wait_s=round(wait, 3),
                      problem=exc.problem if isinstance(exc, DeliveryError) else repr(exc))
        return log_retry

    async def deliver(self, lane: _Lane, note: Notification, retries: int | None = None) -> None:
        """Deliver or raise the last `DeliveryError` (permanent, or transient after the last retry)."""
        attempts = (self._retries if retries is None else retries) + 1
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(attempts), wait=self._wait, retry=retry_if_exception(_is_transient),
            sleep=self._sleep, before_sleep=self._before_sleep(lane, note), reraise=True,
        ):
            with attempt:
                await self._attempt(lane, note)
        lane.stats.sent += 1


class Notifier:
    """Queues notifications per channel and sends them in the background.

    Use as `async with Notifier(config) as notifier: notifier.notify(...)`, or `await start()` /
    `await aclose()`. `notify()` may be called before `start()`; messages wait in the queues.
    """

    def __init__(self, config: NotificationsConfig, *, client: httpx.AsyncClient | None = None,
                 sleep: Sleep = asyncio.sleep) -> None:
        self.config = config
        self._client = client
        self._own_client = client is None
        self._sleep = sleep
        channels = config.channels if config.enabled else ()
        self._lanes = [_Lane.of(channel, config.queue_size) for channel in channels]
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def stats(self) -> dict[str, ChannelStats]:
        return {lane.config.label: lane.stats for lane in self._lanes}

    def notify(self, note: Notification) -> None:
        """Queue `note` for every channel that wants its kind; never blocks, never raises on a full queue."""
        for lane in self._lanes:
            if not lane.config.wants(note.kind):
                continue
            try:
                lane.queue.put_nowait(note)
            except asyncio.QueueFull:
                lane.stats.dropped += 1
                log_event(logger, "notification_dropped", logging.WARNING, channel=lane.config.label,
                          kind=note.kind.value, account=note.account, reason="queue_full",
                          queue_size=self.config.queue_size, dropped_total=lane.stats.dropped)

    async def start(self) -> None:
        if self._tasks:
            return
        if self._client is None:
            self._client = httpx.AsyncClient()
        delivery = _Delivery(self.config, self._client, self._sleep)
        for lane in self._lanes:
            self._tasks.append(asyncio.create_task(self._run(lane, delivery), name=f"notify:{lane.config.label}"))
        log_event(logger, "notifier_started", channels=",".join(lane.config.label for lane in self._lanes) or "-")

    async def _run(self, lane: _Lane, delivery: _Delivery) -> None:
        while True:
            note = await lane.queue.get()
            try:
                await delivery.deliver(lane, note)
            except DeliveryError as exc:
                lane.stats.failed += 1
                log_event(logger, "notification_failed", logging.ERROR, channel=lane.config.label,
                          kind=note.kind.value, account=note.account, transient=exc.transient, problem=exc.problem)
            except Exception as exc:  # a bug in a channel must not end its sender task
                lane.stats.failed += 1
                log_event(logger, "notification_failed", logging.ERROR, channel=lane.config.label,
                          kind=note.kind.value, problem=f"{type(exc).__name__}: {redact(str(exc))}")
            finally:
                lane.queue.task_done()

    async def aclose(self, drain_timeout: float = 5.0) -> None:
        """Give queued messages up to `drain_timeout` seconds (the daemon's stop message), then stop."""
        if self._tasks and drain_timeout > 0:
            try:
                await asyncio.wait_for(asyncio.gather(*(lane.queue.join() for lane in self._lanes)), drain_timeout)
            except TimeoutError:
                left = {lane.config.label: lane.queue.qsize() for lane in self._lanes if lane.queue.qsize()}
                log_event(logger, "notifications_abandoned", logging.WARNING, left=left)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __aenter__(self) -> Notifier:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


@dataclass(frozen=True, slots=True)
class ChannelCheck:
    channel: str
    ok: bool
    detail: str


async def send_test(config: NotificationsConfig, *, client: httpx.AsyncClient | None = None,
                    message: str = "Test notification from risk-manager: this channel works.",
                    retries: int = 1, sleep: Sleep = asyncio.sleep) -> list[ChannelCheck]:
    """Send one TEST notification to every configured channel now; one result per channel, in order."""
    owned = client is None
    http = client or httpx.AsyncClient()
    delivery = _Delivery(config, http, sleep)
    results = []
    try:
        for channel in config.channels:
            lane = _Lane.of(channel, 1)
            try:
                await delivery.deliver(lane, Notification(NotificationKind.TEST, message), retries=retries)
            except DeliveryError as exc:
                results.append(ChannelCheck(channel.label, False, exc.problem))
            else:
                results.append(ChannelCheck(channel.label, True, "delivered"))
            log_event(logger, "notification_test", channel=channel.label, ok=results[-1].ok,
                      detail=results[-1].detail)
    finally:
        if owned:
            await http.aclose()
    return results
