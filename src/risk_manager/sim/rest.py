"""The Gateway's REST API (gateway-protocol.md §1–§3, §6) on the simulator's books.

Request pipeline, in order: REST cut (connection dropped) → added latency → injected HTTP error →
route (404 unknown, 405 wrong method) → bearer token (401, empty body) → rate limit (429, empty
body) → model binding (400 problem+json) → the endpoint (200 envelope; domain failures are
`success:false` with the endpoint's errorCode and null payload fields) → lost-response fault.
Every request is recorded; every refused one is logged on one line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from risk_manager.domain import BarUnit, Clock, OrderSide, OrderType
from risk_manager.logs import log_event
from risk_manager.sim.binding import BindingError, Field, bind, parse_body, problem_document
from risk_manager.sim.broker import Bracket, Broker, BrokerReject, RejectReason
from risk_manager.sim.config import SimUser
from risk_manager.sim.faults import Faults
from risk_manager.sim.market import Market
from risk_manager.sim.ratelimit import SlidingWindowLimiter
from risk_manager.sim.recorder import IntentKind, RecordedIntent, RecordedRequest, Recorder
from risk_manager.sim.tokens import Session, TokenIssuer

log = logging.getLogger("risk_manager.sim")

Payload = dict[str, Any]

# errorCode per endpoint for each broker refusal (gateway-protocol.md §3).
_PLACE_CODES: dict[RejectReason, int] = {
    "account_not_found": 1, "order_rejected": 2, "insufficient_funds": 3, "account_violation": 4,
    "contract_not_found": 8, "contract_not_active": 9,
}
_CANCEL_CODES: dict[RejectReason, int] = {"account_not_found": 1, "order_not_found": 2, "not_working": 3,
                                          "order_rejected": 3, "account_violation": 3}
_MODIFY_CODES: dict[RejectReason, int] = {**_CANCEL_CODES, "contract_not_found": 7}
_CLOSE_CODES: dict[RejectReason, int] = {"account_not_found": 1, "position_not_found": 2, "contract_not_found": 3,
                                         "contract_not_active": 4, "order_rejected": 5, "invalid_close_size": 5}
_PARTIAL_CODES: dict[RejectReason, int] = {"account_not_found": 1, "position_not_found": 2,
                                           "contract_not_found": 3, "contract_not_active": 4,
                                           "invalid_close_size": 5, "order_rejected": 6}
# the payload fields that are null on a failure
_NULLS = {
    "/api/Auth/loginKey": ("token",), "/api/Auth/loginApp": ("token",), "/api/Auth/validate": ("newToken",),
    "/api/Account/search": ("accounts",), "/api/Contract/search": ("contracts",),
    "/api/Contract/searchById": ("contract",), "/api/Contract/available": ("contracts",),
    "/api/History/retrieveBars": ("bars",), "/api/Order/search": ("orders",), "/api/Order/searchOpen": ("orders",),
    "/api/Order/searchById": ("order",), "/api/Order/place": ("orderId",), "/api/Position/searchOpen": ("positions",),
    "/api/Trade/search": ("trades",),
}


MAX_UNIT_NUMBER = 1000  # bars longer than 1000 units (e.g. 1000 months) are refused as an invalid unitNumber


class DomainFailure(Exception):
    def __init__(self, code: int, message: str | None = None) -> None:
        self.code = code
        self.message = message
        super().__init__(message or f"errorCode {code}")


@dataclass(frozen=True, slots=True)
class Route:
    path: str
    method: str
    fields: tuple[Field, ...]
    handler: Callable[[Session | None, dict[str, Any]], Payload]
    auth: bool = True
    intent: IntentKind | None = None
    history: bool = False


def _ok(**payload: Any) -> Payload:
    return {"success": True, "errorCode": 0, "errorMessage": None, **payload}


class RestApi:
    def __init__(self, *, clock: Clock, tokens: TokenIssuer, broker: Broker, market: Market, faults: Faults,
                 recorder: Recorder, users: list[SimUser], general_limit: tuple[int, float],
                 history_limit: tuple[int, float]) -> None:
        self._clock = clock
        self._tokens = tokens
        self._broker = broker
        self._market = market
        self._faults = faults
        self._recorder = recorder
        self._users = {u.user_name: u for u in users}
        self._general = SlidingWindowLimiter(clock, *general_limit)
        self._history = SlidingWindowLimiter(clock, *history_limit)
        self.in_flight = 0
        self.routes = self._routes()

    # -- identity ------------------------------------------------------------------------------
    def visible_accounts(self, user: str) -> list[int]:
        pinned = self._users.get(user)
        if pinned is None or not pinned.account_ids:
            return self._broker.account_ids()
        return [a for a in pinned.account_ids if self._broker.has_account(a)]

    def _check_account(self, session: Session | None, account_id: int, code: int = 1) -> int:
        if session is None or account_id not in self.visible_accounts(session.user):
            raise DomainFailure(code, f"account {account_id} not found")
        return account_id

    # -- the pipeline --------------------------------------------------------------------------
    async def handle(self, request: web.Request,
                     drop: Callable[[web.Request], web.StreamResponse]) -> web.StreamResponse:
        received_ns = time.perf_counter_ns()
        seq = self._recorder.next_seq()
        at = self._clock.now()
        self.in_flight += 1
        raw = b""
        path = request.path
        user: str | None = None
        status = 0
        error_code: int | None = None
        body_for_record: Any = None
        try:
            if self._faults.is_cut("rest"):
                log_event(log, "sim_request_rejected", path=path, status=0, reason="rest cut fault")
                return drop(request)
            delay = self._faults.rest_delay
            if delay:
                await asyncio.sleep(delay)
                if self._faults.is_cut("rest"):  # cut while the request was delayed
                    log_event(log, "sim_request_rejected", path=path, status=0, reason="rest cut fault")
                    return drop(request)
            try:
                raw = await request.read()
            except web.HTTPException as exc:  # body above 1 MiB: 413
                status = exc.status
                log_event(log, "sim_request_rejected", path=path, status=status, reason=exc.reason)
                return web.Response(status=status)
            body_for_record = _record_body(raw)
            injected = self._faults.take_http_error()
            if injected is not None:
                status = injected
                log_event(log, "sim_request_rejected", path=path, status=status, reason="injected http error")
                return web.Response(status=status)
            route = self.routes.get(path.lower())
            if route is None:
                status = 404
                log_event(log, "sim_request_rejected", path=path, status=404, reason="unknown route")
                return web.Response(status=404)
            path = route.path
            if request.method.upper() != route.method:
                status = 405
                log_event(log, "sim_request_rejected", path=path, status=405, reason=f"method {request.method}")
                return web.Response(status=405, headers={"Allow": route.method})
            session: Session | None = None
            if route.auth:
                session = self._session(request)
                if session is None:
                    status = 401
                    log_event(log, "sim_request_rejected", path=path, status=401,
                              reason="bad, missing or expired token")
                    return web.Response(status=401)
                user = session.user
                limiter = self._history if route.history else self._general
                if not limiter.allow(session.jti):
                    status = 429
                    log_event(log, "sim_request_rejected", path=path, status=429, reason="rate limit", user=user,
                              limit=f"{limiter.limit}/{limiter.window:g}s")
                    return web.Response(status=429)
            try:
                args = bind(parse_body(raw, route.fields), route.fields)
            except BindingError as exc:
                status = 400
                log_event(log, "sim_request_rejected", path=path, status=400, reason="model binding", errors=str(exc))
                return web.json_response(problem_document(exc.errors, f"00-{secrets.token_hex(16)}-00"),
                                         status=400, content_type="application/problem+json")
            if route.path == "/api/Auth/loginKey" or route.path == "/api/Auth/loginApp":
                user = args.get("userName")
            try:
                payload = route.handler(session, args)
            except DomainFailure as exc:
                error_code = exc.code
                payload = {"success": False, "errorCode": exc.code, "errorMessage": exc.message,
                           **dict.fromkeys(_NULLS.get(route.path, ()))}
                log_event(log, "sim_request_rejected", path=path, status=200, error_code=exc.code,
                          reason=exc.message or "")
            except Exception:  # a simulator bug must not take the server down: 500, logged with its traceback
                log.exception("sim_request_failed path=%s", path)
                status = 500
                return web.Response(status=500)
            status = 200
            lost = route.intent is not None and self._faults.take_lost_response()
            if route.intent is not None:
                self._record_intent(seq, route.intent, args, payload, received_ns, lost)
            if lost:
                log_event(log, "sim_response_lost", path=path, fault="lose_responses")
                status = 0
                return drop(request)
            return web.json_response(payload)
        finally:
            self.in_flight -= 1
            self._recorder.add_request(RecordedRequest(seq, path, body_for_record, status, at, received_ns, user,
                                                       error_code))

    def _session(self, request: web.Request) -> Session | None:
        auth = request.headers.get("Authorization", "")
        if auth[:7].lower() != "bearer ":
            return None
        return self._tokens.verify(auth[7:].strip())

    def _record_intent(self, seq: int, kind: IntentKind, args: dict[str, Any], payload: Payload, received_ns: int,
                       lost: bool) -> None:
        order_id = payload.get("orderId") if kind == "place" else args.get("orderId")
        self._recorder.add_intent(RecordedIntent(
            seq=seq, kind=kind, account_id=args.get("accountId"), contract_id=args.get("contractId"),
            side=args.get("side"), size=args.get("size"), custom_tag=args.get("customTag"),
            outcome="ok" if payload.get("success") else f"error {payload.get('errorCode')}",
            received_ns=received_ns, order_id=order_id if isinstance(order_id, int) else None, response_lost=lost))

    # -- endpoints -----------------------------------------------------------------------------
    def _routes(self) -> dict[str, Route]:
        acc = Field("accountId", "int", True)
        routes = [
            Route("/api/Status/ping", "GET", (), lambda s, a: "pong", auth=False),  # type: ignore[arg-type,return-value]
            Route("/api/Auth/loginKey", "POST", (Field("userName", "str", True), Field("apiKey", "str", True)),
                  lambda s, a: self._login(a["userName"], a["apiKey"]), auth=False),
            Route("/api/Auth/loginApp", "POST",
                  (Field("userName", "str", True), Field("password", "str", True), Field("deviceId", "str"),
                   Field("appId", "str"), Field("verifyKey", "str")),
                  lambda s, a: self._login(a["userName"], a["password"]), auth=False),
            Route("/api/Auth/validate", "POST", (), self._validate),
            Route("/api/Auth/logout", "POST", (), self._logout),
            Route("/api/Account/search", "POST", (Field("onlyActiveAccounts", "bool", True),), self._account_search),
            Route("/api/Contract/search", "POST", (Field("searchText", "str"), Field("live", "bool", True)),
                  self._contract_search),
            Route("/api/Contract/searchById", "POST", (Field("contractId", "str", True), Field("live", "bool")),
                  self._contract_by_id),
            Route("/api/Contract/available", "POST", (Field("live", "bool", True),),
                  lambda s, a: _ok(contracts=[c.to_wire() for c in self._broker_contracts()])),
            Route("/api/History/retrieveBars", "POST",
                  (Field("contractId", "str", True), Field("live", "bool", True), Field("startTime", "datetime", True),
                   Field("endTime", "datetime", True), Field("unit", "int", True), Field("unitNumber", "int", True),
                   Field("limit", "int", True), Field("includePartialBar", "bool", True)),
                  self._bars, history=True),
            Route("/api/Order/search", "POST",
                  (acc, Field("startTimestamp", "datetime", True), Field("endTimestamp", "datetime")),
                  self._order_search),
            Route("/api/Order/searchOpen", "POST", (acc,), self._order_search_open),
            Route("/api/Order/searchById", "POST", (acc, Field("orderId", "int64", True)), self._order_by_id),
            Route("/api/Order/place", "POST",
                  (acc, Field("contractId", "str", True), Field("type", "int", True), Field("side", "int", True),
                   Field("size", "int", True), Field("limitPrice", "float"), Field("stopPrice", "float"),
                   Field("trailPrice", "float"), Field("customTag", "str"), Field("linkedOrderId", "int64"),
                   Field("stopLossBracket", "bracket"), Field("takeProfitBracket", "bracket")),
                  self._place, intent="place"),
            Route("/api/Order/cancel", "POST", (acc, Field("orderId", "int64", True)), self._cancel, intent="cancel"),
            Route("/api/Order/modify", "POST",
                  (acc, Field("orderId", "int64", True), Field("size", "int"), Field("limitPrice", "float"),
                   Field("stopPrice", "float"), Field("trailPrice", "float")),
                  self._modify, intent="modify"),
            Route("/api/Position/searchOpen", "POST", (acc,), self._positions),
            Route("/api/Position/closeContract", "POST", (acc, Field("contractId", "str", True)), self._close,
                  intent="close"),
            Route("/api/Position/partialCloseContract", "POST",
                  (acc, Field("contractId", "str", True), Field("size", "int", True)), self._partial_close,
                  intent="partialClose"),
            Route("/api/Trade/search", "POST",
                  (acc, Field("startTimestamp", "datetime", True), Field("endTimestamp", "datetime")),
                  self._trade_search),
        ]
        return {r.path.lower(): r for r in routes}

    def _login(self, user_name: str, api_key: str) -> Payload:
        if self._users:
            user = self._users.get(user_name)
            if user is None:
                raise DomainFailure(1)   # UserNotFound
            if not secrets.compare_digest(user.api_key.encode(), api_key.encode()):
                raise DomainFailure(3)   # InvalidCredentials
        elif len(api_key) < 8 or not user_name:
            raise DomainFailure(3)
        return _ok(token=self._tokens.issue(user_name))

    def _validate(self, session: Session | None, args: dict[str, Any]) -> Payload:
        assert session is not None
        return _ok(newToken=self._tokens.issue(session.user))

    def _logout(self, session: Session | None, args: dict[str, Any]) -> Payload:
        assert session is not None
        self._tokens.revoke(session.jti)
        return _ok()

    def _account_search(self, session: Session | None, args: dict[str, Any]) -> Payload:
        assert session is not None
        only_active = args["onlyActiveAccounts"]
        accounts = [self._broker.account(a) for a in self.visible_accounts(session.user)
                    if not only_active or self._broker.account_is_active(a)]
        return _ok(accounts=[a.to_wire() for a in accounts])

    def _broker_contracts(self) -> list[Any]:
        return [e.contract for e in self._market_entries()]

    def _market_entries(self) -> list[Any]:
        return [state.entry for state in self._market.quotes().values()]

    def _contract_search(self, session: Session | None, args: dict[str, Any]) -> Payload:
        text = (args["searchText"] or "").strip().lower()
        found = []
        for entry in self._market_entries():
            c = entry.contract
            haystack = (entry.symbol, c.name, c.id, c.description, c.symbol_id or "")
            if not text or any(text in h.lower() for h in haystack):
                found.append(c)
        # the closest names first: exact symbol, then symbols starting with the text, then the rest
        found.sort(key=lambda c: (c.symbol.lower() != text, not c.symbol.lower().startswith(text), c.name))
        return _ok(contracts=[c.to_wire() for c in found[:20]])

    def _contract_id(self, raw: str, code: int) -> str:
        """The contract id of a request (an exact id in any case, never a symbol), else the endpoint's code."""
        lowered = raw.lower()
        for cid in self._market.quotes():
            if cid.lower() == lowered:
                return cid
        raise DomainFailure(code, f"contract {raw!r} not found")

    def _contract_by_id(self, session: Session | None, args: dict[str, Any]) -> Payload:
        cid = self._contract_id(args["contractId"], 1)
        return _ok(contract=self._market.state(cid).entry.contract.to_wire())

    def _bars(self, session: Session | None, args: dict[str, Any]) -> Payload:
        entry = self._market.state(self._contract_id(args["contractId"], 1)).entry
        unit = args["unit"]
        if unit not in {u.value for u in BarUnit if u.known}:
            raise DomainFailure(2, f"unit {unit} is invalid; allowed: 1 second, 2 minute, 3 hour, 4 day, 5 week, "
                                   "6 month")
        if not 1 <= args["unitNumber"] <= MAX_UNIT_NUMBER:
            raise DomainFailure(3, f"unitNumber {args['unitNumber']} must be between 1 and {MAX_UNIT_NUMBER}")
        if not 1 <= args["limit"] <= 20_000:
            raise DomainFailure(4, f"limit {args['limit']} must be between 1 and 20000")
        start: datetime = args["startTime"]
        end: datetime = args["endTime"]
        bars = self._market.bars(entry, start, end, BarUnit(unit), args["unitNumber"], args["limit"],
                                 args["includePartialBar"])
        return _ok(bars=[b.to_wire() for b in bars])

    def _order_search(self, session: Session | None, args: dict[str, Any]) -> Payload:
        account_id = self._check_account(session, args["accountId"])
        start, end = args["startTimestamp"], args["endTimestamp"]
        orders = [o for o in self._broker.orders(account_id)
                  if o.creation_timestamp >= start and (end is None or o.creation_timestamp < end)]
        return _ok(orders=[o.to_wire() for o in orders])

    def _order_search_open(self, session: Session | None, args: dict[str, Any]) -> Payload:
        account_id = self._check_account(session, args["accountId"])
        return _ok(orders=[o.to_wire() for o in self._broker.open_orders(account_id)])

    def _order_by_id(self, session: Session | None, args: dict[str, Any]) -> Payload:
        account_id = self._check_account(session, args["accountId"])
        order = self._broker.order(account_id, args["orderId"])
        if order is None:
            raise DomainFailure(1, f"order {args['orderId']} not found")
        return _ok(order=order.to_wire())

    def _place(self, session: Session | None, args: dict[str, Any]) -> Payload:
        account_id = self._check_account(session, args["accountId"])
        with _refusals(_PLACE_CODES, 7):
            order = self._broker.place(
                account_id, self._contract_id(args["contractId"], 8), OrderType(args["type"]),
                OrderSide(args["side"]), args["size"],
                limit_price=args["limitPrice"], stop_price=args["stopPrice"], trail_price=args["trailPrice"],
                custom_tag=args["customTag"], stop_loss=_bracket(args["stopLossBracket"], OrderType.STOP),
                take_profit=_bracket(args["takeProfitBracket"], OrderType.LIMIT))
        return _ok(orderId=order.id)

    def _cancel(self, session: Session | None, args: dict[str, Any]) -> Payload:
        account_id = self._check_account(session, args["accountId"])
        with _refusals(_CANCEL_CODES, 5):
            self._broker.cancel(account_id, args["orderId"])
        return _ok()

    def _modify(self, session: Session | None, args: dict[str, Any]) -> Payload:
        account_id = self._check_account(session, args["accountId"])
        with _refusals(_MODIFY_CODES, 5):
            self._broker.modify(account_id, args["orderId"], size=args["size"], limit_price=args["limitPrice"],
                                stop_price=args["stopPrice"], trail_price=args["trailPrice"])
        return _ok()

    def _positions(self, session: Session | None, args: dict[str, Any]) -> Payload:
        account_id = self._check_account(session, args["accountId"])
        return _ok(positions=[p.to_wire() for p in self._broker.positions(account_id)])

    def _close(self, session: Session | None, args: dict[str, Any]) -> Payload:
        account_id = self._check_account(session, args["accountId"])
        with _refusals(_CLOSE_CODES, 7):
            self._broker.close_position(account_id, self._contract_id(args["contractId"], 3))
        return _ok()

    def _partial_close(self, session: Session | None, args: dict[str, Any]) -> Payload:
        account_id = self._check_account(session, args["accountId"])
        with _refusals(_PARTIAL_CODES, 8):
            self._broker.close_position(account_id, self._contract_id(args["contractId"], 3), size=args["size"])
        return _ok()

    def _trade_search(self, session: Session | None, args: dict[str, Any]) -> Payload:
        account_id = self._check_account(session, args["accountId"])
        start, end = args["startTimestamp"], args["endTimestamp"]
        trades = [t for t in self._broker.trades(account_id)
                  if t.creation_timestamp >= start and (end is None or t.creation_timestamp < end)]
        return _ok(trades=[t.to_wire() for t in trades])


@contextmanager
def _refusals(codes: dict[RejectReason, int], fallback: int) -> Iterator[None]:
    """A broker refusal inside becomes the endpoint's errorCode (`fallback` for a reason it has no code for)."""
    try:
        yield
    except BrokerReject as exc:
        raise DomainFailure(codes.get(exc.reason, fallback), exc.message) from None


def _bracket(value: dict[str, Any] | None, default_type: OrderType) -> Bracket | None:
    if value is None:
        return None
    raw_type = value.get("type")
    return Bracket(ticks=value["ticks"], type=OrderType(raw_type) if raw_type else default_type)


def _record_body(raw: bytes) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", errors="replace")
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        return text
    if isinstance(body, dict):
        return {k: ("***" if isinstance(k, str) and k.lower() in ("apikey", "password") else v)
                for k, v in body.items()}
    return body
