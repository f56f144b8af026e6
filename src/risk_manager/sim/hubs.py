"""SignalR hubs `/hubs/user` and `/hubs/market` (JSON hub protocol over WebSockets, §7–§8).

- negotiate (v0, and v1 with `connectionToken`), token from `access_token` or a bearer header;
- upgrade with any or no `id`; handshake versions 0–2; records end in \\x1e, several per frame;
- completions (type 3) for every invocation that carries an `invocationId` (never de-duplicated);
- keep-alive `{"type":6}` every `keepalive_interval` wall seconds; no WebSocket-level pings;
- per-connection subscriptions and a per-connection send queue drained by its own writer task, so a
  slow client never blocks the simulator (a client more than `MAX_QUEUED` records behind is dropped).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import WSMsgType, web

from risk_manager.domain import (
    AccountEvent,
    DepthEvent,
    MarketTradeEvent,
    OrderEvent,
    PositionEvent,
    QuoteEvent,
    TradeEvent,
    UserEvent,
    encode_market_event,
    encode_user_event,
)
from risk_manager.logs import log_event
from risk_manager.sim.faults import Faults
from risk_manager.sim.market import MarketUpdate
from risk_manager.sim.recorder import Recorder
from risk_manager.sim.tokens import Session, TokenIssuer

log = logging.getLogger("risk_manager.sim")
_dumps = functools.partial(json.dumps, separators=(",", ":"))


def _invocation(target: str, arguments: list[Any]) -> str:
    """One SignalR invocation record (a server-to-client event: no invocationId)."""
    return _dumps({"type": 1, "target": target, "arguments": arguments}) + RS

HubName = Literal["user", "market"]
RS = "\x1e"
MAX_FRAME = 1024 * 1024
MAX_QUEUED = 100_000
HANDSHAKE_TIMEOUT = 15.0  # seconds, as ASP.NET Core SignalR
_PING = '{"type":6}' + RS

USER_METHODS = {
    "subscribeaccounts": ("accounts", False, True), "unsubscribeaccounts": ("accounts", False, False),
    "subscribeorders": ("orders", True, True), "unsubscribeorders": ("orders", True, False),
    "subscribepositions": ("positions", True, True), "unsubscribepositions": ("positions", True, False),
    "subscribetrades": ("trades", True, True), "unsubscribetrades": ("trades", True, False),
}
MARKET_METHODS = {
    "subscribecontractquotes": ("quotes", True), "unsubscribecontractquotes": ("quotes", False),
    "subscribecontracttrades": ("trades", True), "unsubscribecontracttrades": ("trades", False),
    "subscribecontractmarketdepth": ("depth", True), "unsubscribecontractmarketdepth": ("depth", False),
}


class HandshakeError(Exception):
    pass


@dataclass(eq=False)
class HubConnection:
    hub: HubName
    connection_id: str
    session: Session
    ws: web.WebSocketResponse
    transport: asyncio.Transport | None
    subs: dict[str, set[Any]] = field(default_factory=dict)
    latency: Callable[[], float] = lambda: 0.0   # the hub latency fault, seconds
    # (record, target, key, due): `due` is the monotonic time before which the record must not be sent
    queue: deque[tuple[str, str | None, Any, float]] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    writing: bool = False
    closed: bool = False
    writer: asyncio.Task[None] | None = None

    def subscribed(self, kind: str, key: Any) -> bool:
        keys = self.subs.get(kind)
        return keys is not None and key in keys

    @property
    def busy(self) -> bool:
        return bool(self.queue) or self.writing

    def enqueue(self, record: str, target: str | None, key: Any) -> None:
        if self.closed:
            return
        if len(self.queue) >= MAX_QUEUED:
            log_event(log, "sim_hub_client_too_slow", logging.WARNING, hub=self.hub, connection=self.connection_id,
                      queued=len(self.queue))
            self.abort()
            return
        delay = self.latency()
        self.queue.append((record, target, key, time.monotonic() + delay if delay else 0.0))
        self.wake.set()

    def abort(self) -> None:
        """Drop the connection as a network cut would: no close frame, no SignalR close message."""
        if self.closed:
            return
        self.closed = True
        self.queue.clear()
        self.wake.set()
        if self.transport is not None:
            self.transport.abort()


class Hubs:
    def __init__(self, tokens: TokenIssuer, faults: Faults, recorder: Recorder, keepalive_interval: float,
                 wrap_user_events: bool, visible_accounts: Callable[[str], list[int]],
                 contract_id_of: Callable[[str], str | None], snapshot_quote: Callable[[str], MarketUpdate]) -> None:
        self._tokens = tokens
        self._faults = faults
        self._recorder = recorder
        self._keepalive = keepalive_interval
        self._wrap = wrap_user_events
        self._visible_accounts = visible_accounts
        self._contract_id_of = contract_id_of
        self._snapshot_quote = snapshot_quote
        self.connections: set[HubConnection] = set()

    # -- state ---------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return any(c.busy for c in self.connections)

    def has_subscribers(self, hub: HubName, kind: str, key: int | str) -> bool:
        return any(c.hub == hub and c.subscribed(kind, key) for c in self.connections)

    def subscribed_contracts(self) -> set[str]:
        out: set[str] = set()
        for conn in self.connections:
            if conn.hub == "market":
                for kind in ("quotes", "trades", "depth"):
                    out |= conn.subs.get(kind, set())
        return out

    def cut(self, hub: HubName) -> None:
        for conn in [c for c in self.connections if c.hub == hub]:
            conn.abort()

    async def close_all(self) -> None:
        for conn in list(self.connections):
            conn.closed = True
            conn.wake.set()
            if conn.writer is not None:
                conn.writer.cancel()
            await conn.ws.close()

    # -- publishing ----------------------------------------------------------------------------
    def publish_user(self, event: UserEvent) -> None:
        kind = {AccountEvent: "accounts", OrderEvent: "orders", PositionEvent: "positions",
                TradeEvent: "trades"}[type(event)]
        self._publish("user", kind, event.account_id, lambda: encode_user_event(event, wrapped=self._wrap))

    def publish_market(self, update: MarketUpdate) -> None:
        cid = update.contract_id
        events: list[tuple[str, QuoteEvent | MarketTradeEvent | DepthEvent]] = [
            ("quotes", QuoteEvent(cid, update.quote))]
        if update.trade is not None:
            events.append(("trades", MarketTradeEvent(cid, (update.trade,))))
        if update.depth:
            events.append(("depth", DepthEvent(cid, update.depth)))
        for kind, event in events:
            self._publish("market", kind, cid, lambda event=event: encode_market_event(event))  # type: ignore[misc]

    def _publish(self, hub: HubName, kind: str, key: int | str,
                 encode: Callable[[], tuple[str, list[Any]]]) -> None:
        """Encode once and queue for every connection of `hub` subscribed to (`kind`, `key`)."""
        targets = [c for c in self.connections if c.hub == hub and c.subscribed(kind, key)]
        if not targets:
            return
        if self._faults.take_dropped_event(hub):
            log_event(log, "sim_hub_event_dropped", hub=hub, kind=kind, key=key)
            return
        target, arguments = encode()
        record = _invocation(target, arguments)
        for conn in targets:
            conn.enqueue(record, target, key)

    # -- HTTP side -----------------------------------------------------------------------------
    def _session(self, request: web.Request) -> Session | None:
        token = request.query.get("access_token")
        if not token:
            auth = request.headers.get("Authorization", "")
            if auth[:7].lower() == "bearer ":
                token = auth[7:].strip()
        return self._tokens.verify(token) if token else None

    async def negotiate(self, request: web.Request, hub: HubName) -> web.StreamResponse:
        if self._session(request) is None:
            log_event(log, "sim_hub_rejected", hub=hub, stage="negotiate", status=401, reason="bad or missing token")
            return web.Response(status=401)
        connection_id = secrets.token_urlsafe(16)
        body: dict[str, Any] = {"negotiateVersion": 0, "connectionId": connection_id}
        if request.query.get("negotiateVersion") == "1":
            body = {"negotiateVersion": 1, "connectionId": connection_id,
                    "connectionToken": secrets.token_urlsafe(16)}
        body["availableTransports"] = [{"transport": "WebSockets", "transferFormats": ["Text", "Binary"]}]
        return web.json_response(body)

    async def connect(self, request: web.Request, hub: HubName) -> web.StreamResponse:
        session = self._session(request)
        if session is None:
            log_event(log, "sim_hub_rejected", hub=hub, stage="upgrade", status=401, reason="bad or missing token")
            return web.Response(status=401)
        # No WebSocket pings (heartbeat=None) but answer the client's (autoping); no permessage-deflate,
        # as ASP.NET Core SignalR; a 2 s close handshake so a dead client cannot hold up a shutdown.
        ws = web.WebSocketResponse(heartbeat=None, autoping=True, max_msg_size=MAX_FRAME, autoclose=True,
                                   compress=False, timeout=2.0)
        if not ws.can_prepare(request).ok:
            log_event(log, "sim_hub_rejected", hub=hub, stage="upgrade", status=400, reason="not a WebSocket request")
            return web.Response(status=400, text="Only the WebSockets transport is supported.")
        transport = request.transport if isinstance(request.transport, asyncio.Transport) else None
        await ws.prepare(request)
        conn = HubConnection(hub, request.query.get("id") or secrets.token_urlsafe(16), session, ws, transport,
                             latency=lambda: self._faults.hub_delay)
        self.connections.add(conn)
        log_event(log, "sim_hub_connected", hub=hub, connection=conn.connection_id, user=session.user)
        try:
            await self._serve(conn)
        finally:
            conn.closed = True
            conn.wake.set()
            self.connections.discard(conn)
            if conn.writer is not None:
                conn.writer.cancel()
            log_event(log, "sim_hub_disconnected", hub=hub, connection=conn.connection_id)
        return ws

    async def _serve(self, conn: HubConnection) -> None:
        buffer = ""
        handshaken = False
        while True:
            try:
                msg = await conn.ws.receive(timeout=None if handshaken else HANDSHAKE_TIMEOUT)
            except TimeoutError:
                log_event(log, "sim_hub_rejected", hub=conn.hub, stage="handshake", reason="no handshake in time")
                await conn.ws.close()
                return
            if msg.type == WSMsgType.TEXT:
                buffer += msg.data
            elif msg.type == WSMsgType.BINARY:
                buffer += msg.data.decode("utf-8", errors="replace")
            else:
                return
            while RS in buffer:
                record, buffer = buffer.split(RS, 1)
                if not handshaken:
                    try:
                        self._handshake(record)
                    except HandshakeError as exc:
                        log_event(log, "sim_hub_rejected", hub=conn.hub, stage="handshake", reason=str(exc))
                        await conn.ws.send_str(_dumps({"error": str(exc)}) + RS)
                        await conn.ws.close()
                        return
                    handshaken = True
                    await conn.ws.send_str("{}" + RS)
                    conn.writer = asyncio.create_task(self._writer(conn), name=f"sim-hub-writer-{conn.connection_id}")
                    continue
                if not await self._on_record(conn, record):
                    return

    @staticmethod
    def _handshake(record: str) -> None:
        try:
            data = json.loads(record)
        except ValueError:
            raise HandshakeError("Handshake request is not valid JSON.") from None
        if not isinstance(data, dict):
            raise HandshakeError("Handshake request must be a JSON object.")
        protocol, version = data.get("protocol"), data.get("version")
        if protocol != "json":
            raise HandshakeError(f"The protocol '{protocol}' is not supported.")
        if not isinstance(version, int) or isinstance(version, bool) or not 0 <= version <= 2:
            raise HandshakeError(f"The server does not support version {version} of the 'json' protocol.")

    async def _on_record(self, conn: HubConnection, record: str) -> bool:
        """Handle one hub message; False when the connection must end."""
        if not record.strip():
            return True
        try:
            msg = json.loads(record)
            if not isinstance(msg, dict) or not isinstance(msg.get("type"), int):
                raise ValueError("a message is an object with an integer 'type'")
        except ValueError as exc:
            log_event(log, "sim_hub_rejected", hub=conn.hub, stage="message", reason=f"invalid message: {exc}")
            await conn.ws.send_str(_dumps({"type": 7, "error": f"Connection closed with an error. "
                                                                   f"InvalidDataException: {exc}"}) + RS)
            await conn.ws.close()
            return False
        mtype = msg["type"]
        if mtype == 1:
            invocation_id = msg.get("invocationId")
            error = self._invoke(conn, msg.get("target"), msg.get("arguments"))
            if invocation_id is not None:
                completion: dict[str, Any] = {"type": 3, "invocationId": invocation_id}
                if error is None:
                    completion["result"] = None
                else:
                    completion["error"] = error
                conn.enqueue(_dumps(completion) + RS, None, None)
            elif error is not None:
                log_event(log, "sim_hub_invocation_failed", hub=conn.hub, target=msg.get("target"), error=error)
        elif mtype == 4:  # stream invocation: not offered by the Gateway
            invocation_id = msg.get("invocationId")
            if invocation_id is not None:
                conn.enqueue(_dumps({"type": 3, "invocationId": invocation_id,
                                         "error": f"Unknown hub method '{msg.get('target')}'"}) + RS, None, None)
        elif mtype == 7:
            return False
        # 2 StreamItem, 3 Completion, 5 CancelInvocation, 6 Ping: nothing to do
        return True

    def _invoke(self, conn: HubConnection, target: Any, arguments: Any) -> str | None:
        """Run a hub method; the error text of a failed invocation, None on success."""
        if not isinstance(target, str):
            return "Invocation has no target."
        args = arguments if isinstance(arguments, list) else []
        name = target.lower()
        if conn.hub == "user" and name in USER_METHODS:
            kind, needs_arg, subscribe = USER_METHODS[name]
            visible = self._visible_accounts(conn.session.user)
            if needs_arg:
                if len(args) != 1:
                    return (f"Failed to invoke '{target}' due to an error on the server. InvalidDataException: "
                            f"Invocation provides {len(args)} argument(s) but target expects 1.")
                account = args[0]
                if isinstance(account, str) and account.isdigit():
                    account = int(account)
                if isinstance(account, bool) or not isinstance(account, int):
                    return (f"Failed to invoke '{target}' due to an error on the server. InvalidDataException: "
                            f"Error binding arguments. Make sure that the types of the provided values match the "
                            f"types of the hub method being invoked.")
                if account not in visible:
                    return f"Failed to invoke '{target}': account {account} not found."
                keys: set[Any] = {account}
            else:
                keys = set(visible)
        elif conn.hub == "market" and name in MARKET_METHODS:
            kind, subscribe = MARKET_METHODS[name]
            if len(args) != 1 or not isinstance(args[0], str):
                return (f"Failed to invoke '{target}' due to an error on the server. InvalidDataException: "
                        f"Invocation provides {len(args)} argument(s) but target expects 1 contract id string.")
            found = self._contract_id_of(args[0])
            if found is None:
                return f"Failed to invoke '{target}': contract '{args[0]}' not found."
            keys = {found}
        else:
            return f"Unknown hub method '{target}'"
        current = conn.subs.setdefault(kind, set())
        if subscribe:
            fresh = keys - current
            current |= keys
            if conn.hub == "market" and kind == "quotes" and fresh:
                for fresh_id in fresh:  # the latest quote right away, as the Gateway does
                    update = self._snapshot_quote(fresh_id)
                    target_name, arguments_out = encode_market_event(QuoteEvent(fresh_id, update.quote))
                    conn.enqueue(_invocation(target_name, arguments_out), target_name, fresh_id)
        else:
            current -= keys
        return None

    async def _writer(self, conn: HubConnection) -> None:
        """Drain the connection's queue: several records per frame (≤ 1 MiB), pings when idle."""
        ws = conn.ws
        try:
            while not conn.closed:
                if not conn.queue:
                    conn.wake.clear()
                    try:
                        await asyncio.wait_for(conn.wake.wait(), timeout=self._keepalive)
                    except TimeoutError:
                        await ws.send_str(_PING)
                        continue
                    if conn.closed:
                        break
                conn.writing = True
                wait = conn.queue[0][3] - time.monotonic()
                if wait > 0:  # the latency fault: every record leaves `hub_ms` after it was queued
                    await asyncio.sleep(wait)
                    if conn.closed:
                        break
                parts: list[str] = []
                sent: list[tuple[str, Any]] = []
                size = 0
                now_mono = time.monotonic()
                while conn.queue and conn.queue[0][3] <= now_mono and (
                        not parts or size + len(conn.queue[0][0]) <= MAX_FRAME):
                    record, target, key, _ = conn.queue.popleft()
                    parts.append(record)
                    size += len(record)
                    if target is not None:
                        sent.append((target, key))
                if parts:
                    await ws.send_str("".join(parts))
                now = time.perf_counter_ns()
                for target, key in sent:
                    self._recorder.add_hub_sent(conn.hub, target, key, now)
                conn.writing = False
        except (ConnectionError, RuntimeError) as exc:
            log_event(log, "sim_hub_write_failed", hub=conn.hub, connection=conn.connection_id, error=str(exc))
            conn.abort()
        finally:
            conn.writing = False
