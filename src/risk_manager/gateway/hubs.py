"""SignalR hub connections (user and market) with explicit states, backoff, resubscription and health.

Why a hand-written transport instead of pysignalr / signalrcore: the daemon needs to own the
connection's state machine (observable disconnected/connecting/connected/reconnecting, where
"connected" means handshake done AND every subscription re-confirmed, so the reconciler's
snapshot cannot miss an event), the exact backoff schedule of `signalr.reconnection`, a fresh
token from the `TokenManager` before every attempt, stale detection that knows a quiet user hub
is normal, and the latency of the hot path (decode straight into domain events). The JSON hub
protocol itself is small (`signalr.py`). pysignalr is used in the tests as the independent client.

Events are decoded into domain events and delivered, in arrival order, to async handlers by one
dispatcher task (a slow handler delays later events, it never reorders them). A malformed record
or event is logged and counted, never fatal.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from risk_manager.domain import (
    DomainError,
    GatewayEvent,
    LogoutEvent,
    QuoteEvent,
    decode_market_event,
    decode_user_events,
)
from risk_manager.domain.events import LOGOUT, MARKET_TARGETS, USER_TARGETS
from risk_manager.gateway.config import SignalRConfig
from risk_manager.gateway.errors import HubError
from risk_manager.gateway.signalr import (
    HANDSHAKE_REQUEST,
    PING_RECORD,
    Close,
    Completion,
    Invocation,
    ProtocolError,
    encode_invocation,
    parse_handshake,
    parse_message,
    split_records,
)
from risk_manager.gateway.tls import shared_tls_context
from risk_manager.logs import log_event

if TYPE_CHECKING:
    from risk_manager.gateway.tokens import TokenManager

log = logging.getLogger("risk_manager.gateway.hubs")

EventHandler = Callable[[GatewayEvent], Awaitable[None]]
StateListener = Callable[["HubState"], None]
Decoder = Callable[[str, list[Any]], Sequence[GatewayEvent]]


class UnknownTargetError(ValueError):
    pass


def _logout(arguments: list[Any]) -> list[GatewayEvent]:
    reason = arguments[0] if arguments and isinstance(arguments[0], str) else None
    return [LogoutEvent(reason)]


def user_hub_decoder(target: str, arguments: list[Any]) -> Sequence[GatewayEvent]:
    if target in USER_TARGETS:
        return decode_user_events(target, arguments)
    if target == LOGOUT:
        return _logout(arguments)
    raise UnknownTargetError(target)


def market_hub_decoder(target: str, arguments: list[Any]) -> Sequence[GatewayEvent]:
    if target in MARKET_TARGETS:
        return [decode_market_event(target, arguments)]
    if target == LOGOUT:
        return _logout(arguments)
    raise UnknownTargetError(target)


class HubState(StrEnum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"


@dataclass(slots=True)
class HubStats:
    connects: int = 0
    reconnects: int = 0
    events: int = 0
    malformed: int = 0
    unknown_targets: int = 0
    handler_errors: int = 0
    stale_reconnects: int = 0


def websocket_url(url: str, token: str) -> str:
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    query = (parts.query + "&" if parts.query else "") + urlencode({"access_token": token})
    return urlunsplit((scheme, parts.netloc, parts.path, query, ""))


class HubConnection:
    """One SignalR hub. `start()` connects in the background and keeps the connection alive until
    `stop()`. Subscriptions made through it are remembered and re-sent after every reconnect."""

    def __init__(self, name: str, url: str, tokens: TokenManager, config: SignalRConfig, decoder: Decoder,
                 rng: random.Random | None = None) -> None:
        self.name = name
        self.url = url
        self.stats = HubStats()
        self._tokens = tokens
        self._config = config
        self._decode = decoder
        self._rng = rng or random.Random()
        self._state = HubState.DISCONNECTED
        self._state_listeners: list[StateListener] = []
        self._handlers: list[EventHandler] = []
        self._subscriptions: dict[tuple[str, tuple[Any, ...]], None] = {}  # ordered set
        self._ws: ClientConnection | None = None
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._queue: asyncio.Queue[GatewayEvent] = asyncio.Queue()
        self._runner: asyncio.Task[None] | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._stopping = False
        self._relogin = False
        self._connected = asyncio.Event()
        self._last_received = 0.0
        self._last_market_event = 0.0
        self._warned_targets: set[str] = set()
        self._closing: asyncio.Task[None] | None = None

    # ----------------------------------------------------------------------------- observation
    @property
    def state(self) -> HubState:
        return self._state

    @property
    def subscriptions(self) -> list[tuple[str, tuple[Any, ...]]]:
        return list(self._subscriptions)

    def on_state(self, listener: StateListener) -> None:
        self._state_listeners.append(listener)

    def on_event(self, handler: EventHandler) -> None:
        self._handlers.append(handler)

    async def wait_connected(self, timeout_s: float | None = None) -> None:
        async with asyncio.timeout(timeout_s):
            await self._connected.wait()

    def _set_state(self, state: HubState, **fields: Any) -> None:
        if state is self._state:
            return
        old, self._state = self._state, state
        if state is HubState.CONNECTED:
            self._connected.set()
        else:
            self._connected.clear()
        log_event(log, "hub_state", hub=self.name, old=old.value, new=state.value, **fields)
        for listener in list(self._state_listeners):
            try:
                listener(state)
            except Exception as exc:  # an observer's bug must not break the connection
                log_event(log, "hub_state_listener_failed", logging.ERROR, hub=self.name, error=repr(exc))

    # ----------------------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        if self._runner is not None:
            return
        self._stopping = False
        self._dispatcher = asyncio.create_task(self._dispatch(), name=f"hub-{self.name}-dispatch")
        self._runner = asyncio.create_task(self._run(), name=f"hub-{self.name}")

    async def stop(self) -> None:
        self._stopping = True
        ws = self._ws
        if ws is not None:
            try:
                await ws.close()
            except Exception as exc:  # a broken socket: nothing left to close
                log_event(log, "hub_close_failed", logging.DEBUG, hub=self.name, error=repr(exc))
        tasks = [t for t in (self._runner, self._dispatcher) if t is not None]
        while tasks:
            for task in tasks:
                task.cancel()
            _done, pending = await asyncio.wait(tasks, timeout=1.0)
            tasks = list(pending)
        self._runner = self._dispatcher = None
        self._ws = None
        self._set_state(HubState.DISCONNECTED)

    def drop_connection(self) -> None:
        """Close the current connection (it reconnects with backoff); for health checks and tests."""
        ws = self._ws
        if ws is not None:
            self._closing = asyncio.get_running_loop().create_task(ws.close())

    # ----------------------------------------------------------------------------- subscriptions
    async def subscribe(self, method: str, *args: Any) -> None:
        """Invoke a `Subscribe*` method now (if connected) and remember it for every reconnect."""
        key = (method, tuple(args))
        self._subscriptions[key] = None
        if self._state is HubState.CONNECTED:
            await self.invoke(method, *args)

    async def unsubscribe(self, subscribe_method: str, *args: Any) -> None:
        self._subscriptions.pop((subscribe_method, tuple(args)), None)
        if self._state is HubState.CONNECTED:
            await self.invoke("Un" + subscribe_method[0].lower() + subscribe_method[1:], *args)

    async def subscribe_accounts(self) -> None:
        await self.subscribe("SubscribeAccounts")

    async def subscribe_orders(self, account_id: int) -> None:
        await self.subscribe("SubscribeOrders", account_id)

    async def subscribe_positions(self, account_id: int) -> None:
        await self.subscribe("SubscribePositions", account_id)

    async def subscribe_trades(self, account_id: int) -> None:
        await self.subscribe("SubscribeTrades", account_id)

    async def subscribe_account(self, account_id: int) -> None:
        """User hub: accounts, orders, positions and trades of one account."""
        await self.subscribe_accounts()
        await self.subscribe_orders(account_id)
        await self.subscribe_positions(account_id)
        await self.subscribe_trades(account_id)

    async def subscribe_quotes(self, contract_id: str) -> None:
        await self.subscribe("SubscribeContractQuotes", contract_id)

    async def subscribe_market_trades(self, contract_id: str) -> None:
        await self.subscribe("SubscribeContractTrades", contract_id)

    async def subscribe_depth(self, contract_id: str) -> None:
        await self.subscribe("SubscribeContractMarketDepth", contract_id)

    async def invoke(self, method: str, *args: Any, timeout_s: float | None = None) -> Any:
        """Invoke a hub method and wait for its completion (raises `HubError` on error or timeout)."""
        ws = self._ws
        if ws is None:
            raise HubError(f"{self.name} hub: not connected, cannot invoke {method}")
        inv_id = str(next(self._ids))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[inv_id] = future
        wait = timeout_s if timeout_s is not None else self._config.health.ping_timeout / 1000.0 * 2
        try:
            await ws.send(encode_invocation(method, list(args), inv_id))
            async with asyncio.timeout(wait):
                return await future
        except TimeoutError:
            raise HubError(f"{self.name} hub: no completion for {method} within {wait:g} s") from None
        except ConnectionClosed as exc:
            raise HubError(f"{self.name} hub: connection closed during {method}") from exc
        finally:
            self._pending.pop(inv_id, None)

    # ----------------------------------------------------------------------------- connection loop
    async def _run(self) -> None:
        reconnect = self._config.reconnection
        attempt = 0
        ever_connected = False
        while not self._stopping:
            self._set_state(HubState.RECONNECTING if ever_connected else HubState.CONNECTING, attempt=attempt)
            connected = False
            try:
                if self._relogin:
                    self._relogin = False
                    await self._tokens.force_login()
                token = await self._tokens.get_valid_token()
                connected = await self._session(token, resubscribe_delay=ever_connected)
            except asyncio.CancelledError:
                raise
            except InvalidStatus as exc:
                log_event(log, "hub_connect_refused", logging.WARNING, hub=self.name,
                          status=exc.response.status_code)
                if exc.response.status_code == 401:
                    await self._tokens.invalidate(token)
            except (OSError, WebSocketException, HubError, ProtocolError, TimeoutError) as exc:
                log_event(log, "hub_connect_failed", logging.WARNING, hub=self.name,
                          error=f"{type(exc).__name__}: {exc}")
            except Exception as exc:  # token errors and the unexpected: log, back off, keep trying
                log_event(log, "hub_error", logging.ERROR, hub=self.name, error=f"{type(exc).__name__}: {exc}")
            finally:
                self._fail_pending()
                self._ws = None
            if connected:
                ever_connected = True
                attempt = 0
            if self._stopping:
                break
            self._set_state(HubState.RECONNECTING if ever_connected else HubState.CONNECTING, attempt=attempt)
            delay = reconnect.delay_s(attempt) * (1.0 + self._rng.random() * reconnect.jitter)
            attempt += 1
            if attempt == reconnect.max_attempts:
                log_event(log, "hub_reconnect_attempts_exhausted", logging.ERROR, hub=self.name, attempts=attempt,
                          action=f"retrying every {reconnect.delay_s(attempt):g} s")
            await asyncio.sleep(delay)

    async def _session(self, token: str, resubscribe_delay: bool) -> bool:
        """One connection: handshake, resubscribe, then read until it ends. True if it got connected."""
        open_timeout = self._config.health.ping_timeout / 1000.0 * 2
        url = websocket_url(self.url, token)
        ws = await connect(url, ping_interval=None, open_timeout=open_timeout, close_timeout=1.0,
                           max_size=4 * 1024 * 1024, compression=None,
                           ssl=shared_tls_context() if url.startswith("wss:") else None)
        self._ws = ws
        connected = False
        try:
            await ws.send(HANDSHAKE_REQUEST)
            async with asyncio.timeout(open_timeout):
                first = await ws.recv()
            if not isinstance(first, str):
                raise ProtocolError("binary handshake answer (the JSON protocol needs text frames)")
            records = split_records(first)
            parse_handshake(records[0])
            self._last_received = self._last_market_event = time.monotonic()
            reader = asyncio.create_task(self._read(ws, records[1:]), name=f"hub-{self.name}-read")
            health = asyncio.create_task(self._health(ws), name=f"hub-{self.name}-health")
            try:
                if resubscribe_delay and self._config.subscriptions.resubscribe_delay:
                    await asyncio.sleep(self._config.subscriptions.resubscribe_delay / 1000.0)
                if self._config.subscriptions.auto_resubscribe or not resubscribe_delay:
                    # Until none is left: a subscribe() made while we resubscribe is not lost.
                    sent: set[tuple[str, tuple[Any, ...]]] = set()
                    while pending := [key for key in self._subscriptions if key not in sent]:
                        for method, args in pending:
                            await self.invoke(method, *args)
                            sent.add((method, args))
                self.stats.connects += 1
                if resubscribe_delay:
                    self.stats.reconnects += 1
                connected = True
                self._set_state(HubState.CONNECTED, subscriptions=len(self._subscriptions))
                await reader
            finally:
                for task in (reader, health):
                    task.cancel()
                await asyncio.gather(reader, health, return_exceptions=True)
        finally:
            await ws.close()
        return connected

    def _fail_pending(self) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(HubError(f"{self.name} hub: connection lost"))
        self._pending.clear()

    async def _read(self, ws: ClientConnection, leftover: list[str]) -> None:
        for record in leftover:
            self._handle_record(record)
        try:
            async for frame in ws:
                self._last_received = time.monotonic()
                if not isinstance(frame, str):
                    self.stats.malformed += 1
                    log_event(log, "hub_binary_frame", logging.WARNING, hub=self.name, size=len(frame))
                    continue
                try:
                    records = split_records(frame)
                except ProtocolError as exc:
                    self.stats.malformed += 1
                    log_event(log, "hub_malformed_frame", logging.WARNING, hub=self.name, error=str(exc))
                    continue
                for record in records:
                    if self._handle_record(record):
                        await ws.close()
                        return
        except ConnectionClosed as exc:
            log_event(log, "hub_connection_closed", logging.WARNING, hub=self.name, code=exc.rcvd.code if exc.rcvd
                      else None)

    def _handle_record(self, record: str) -> bool:
        """Process one record; True when the connection must be closed (Close message, logout)."""
        try:
            message = parse_message(record)
        except ProtocolError as exc:
            self.stats.malformed += 1
            log_event(log, "hub_malformed_record", logging.WARNING, hub=self.name, error=str(exc))
            return False
        if isinstance(message, Invocation):
            return self._handle_invocation(message)
        if isinstance(message, Completion):
            future = self._pending.get(message.invocation_id)
            if future is not None and not future.done():
                if message.error:
                    future.set_exception(HubError(f"{self.name} hub: server error: {message.error}"))
                else:
                    future.set_result(message.result)
            return False
        if isinstance(message, Close):
            log_event(log, "hub_server_close", logging.WARNING, hub=self.name, error=message.error,
                      allow_reconnect=message.allow_reconnect)
            return True
        return False  # ping or a type we do not use

    def _handle_invocation(self, message: Invocation) -> bool:
        try:
            events = self._decode(message.target, message.arguments)
        except UnknownTargetError:
            self.stats.unknown_targets += 1
            if message.target not in self._warned_targets:
                self._warned_targets.add(message.target)
                log_event(log, "hub_unknown_target", logging.WARNING, hub=self.name, target=message.target)
            return False
        except (DomainError, ValueError, TypeError) as exc:
            self.stats.malformed += 1
            log_event(log, "hub_malformed_event", logging.WARNING, hub=self.name, target=message.target,
                      error=str(exc))
            return False
        logout = False
        for event in events:
            self.stats.events += 1
            if isinstance(event, QuoteEvent) or message.target in MARKET_TARGETS:
                self._last_market_event = time.monotonic()
            if isinstance(event, LogoutEvent):
                log_event(log, "hub_logout", logging.WARNING, hub=self.name, reason=event.reason,
                          action="logging in again and reconnecting")
                self._relogin = True
                logout = True
            self._queue.put_nowait(event)
        return logout

    async def _health(self, ws: ClientConnection) -> None:
        """Our pings every `pingInterval`; close the link when the server has been silent for
        `pingInterval + pingTimeout` (it pings every 15 s), or when a market hub with subscriptions
        has delivered no market event for `staleThreshold` (a quiet user hub is normal)."""
        health = self._config.health
        interval = health.ping_interval / 1000.0
        silent_after = interval + health.ping_timeout / 1000.0
        stale_after = health.stale_threshold / 1000.0
        step = min(interval, silent_after, stale_after) / 2
        next_ping = time.monotonic() + interval
        while True:
            await asyncio.sleep(step)
            now = time.monotonic()
            if now >= next_ping:
                next_ping = now + interval
                try:
                    await ws.send(PING_RECORD)
                except ConnectionClosed:
                    return
            if now - self._last_received > silent_after:
                log_event(log, "hub_silent", logging.WARNING, hub=self.name,
                          silent_s=round(now - self._last_received, 1), action="reconnecting")
                await ws.close()
                return
            market_subscribed = any(m.startswith("SubscribeContract") for m, _ in self._subscriptions)
            if market_subscribed and now - self._last_market_event > stale_after:
                self.stats.stale_reconnects += 1
                log_event(log, "hub_stale", logging.WARNING, hub=self.name,
                          quiet_s=round(now - self._last_market_event, 1), action="reconnecting")
                await ws.close()
                return

    async def drain(self, timeout_s: float = 1.0) -> bool:
        """Wait until every event received so far has been handled (False if `timeout_s` ran out).
        Do not await this from inside an event handler: the dispatcher is busy with that handler."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._queue.join()
        except TimeoutError:
            log_event(log, "hub_drain_timeout", logging.WARNING, hub=self.name, queued=self._queue.qsize())
            return False
        return True

    async def _dispatch(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                for handler in list(self._handlers):
                    try:
                        await handler(event)
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:  # one handler's bug must not stop the event stream
                        self.stats.handler_errors += 1
                        log_event(log, "hub_handler_failed", logging.ERROR, hub=self.name,
                                  event_type=type(event).__name__, error=repr(exc))
            finally:
                self._queue.task_done()
