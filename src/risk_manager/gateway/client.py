"""`GatewayClient`: typed, resilient access to the ProjectX Gateway REST API, plus its two hubs.

Every request goes through the same path: circuit breaker → sliding-window rate limiter (queues,
never 429) → token from the `TokenManager` → one httpx request (one `AsyncClient`, keep-alive)
→ classification. A 401 triggers one token refresh (validate, else login) and one repeat — the
server authenticates before it acts, so even a mutating call is safe to repeat after a 401.

Reads are retried on transient failures (network, timeout, 408, 429, 5xx) with exponential
backoff and jitter (`errorHandling.retries`: 1, 2, 4, 8, 16 s by default). Mutating calls (place,
cancel, modify, close, partial close) are never blindly repeated: after an uncertain outcome
(timeout or connection lost after sending, 5xx) the client asks the broker what happened and
returns that real outcome (`orderManagement.verification`). Orders carry a `customTag` derived
from the caller's idempotency key; the Gateway refuses a repeated tag, so even the one repeat the
client allows itself (when verification proves the order absent) cannot create a second order.

Domain failures (`success: false`) of reads raise `GatewayRequestError`; of mutations they are
returned in the result (`ok=False`, `error_code`, `error_name`) because a refused cancel or close
is an outcome the enforcement layer handles, not an exception.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from risk_manager.domain import (
    Account,
    Bar,
    BarUnit,
    Clock,
    Contract,
    Order,
    OrderSide,
    OrderStatus,
    OrderType,
    Position,
    SystemClock,
    Trade,
    WireDecodeError,
    format_time,
)
from risk_manager.gateway.circuit_breaker import CircuitBreaker
from risk_manager.gateway.config import GatewayConfig
from risk_manager.gateway.errors import (
    AuthenticationError,
    GatewayError,
    GatewayRequestError,
    HttpStatusError,
    OrderOutcomeUnknownError,
    PermanentHttpError,
    TransientError,
    TransportError,
    error_code_name,
)
from risk_manager.gateway.hubs import HubConnection, market_hub_decoder, user_hub_decoder
from risk_manager.gateway.rate_limit import RateLimiter
from risk_manager.gateway.tls import shared_tls_context
from risk_manager.gateway.tokens import TokenManager, TokenStore, build_token_store
from risk_manager.logs import log_event

log = logging.getLogger("risk_manager.gateway.client")

E = TypeVar("E")

# How far back verification searches for an order / trade the lost request may have created.
_VERIFY_LOOKBACK = timedelta(minutes=5)
# How far back a refused repeated customTag is looked for: the key may come from a restart or an
# expired cache entry long after the first placement.
_TAG_LOOKBACK = timedelta(days=1)
_PLACE_REJECTED = 2  # Order/place errorCode OrderRejected (also the answer to a repeated customTag)


def custom_tag_for(idempotency_key: str) -> str:
    """The deterministic `customTag` of an idempotency key: `rm-` + 32 base32 chars of its SHA-256."""
    if not idempotency_key:
        raise ValueError("idempotency_key must be a non-empty string")
    digest = hashlib.sha256(idempotency_key.encode()).digest()
    return "rm-" + base64.b32encode(digest).decode().rstrip("=").lower()[:32]


@dataclass(frozen=True, slots=True)
class PlaceResult:
    """Outcome of `place_order`. `verified` is True when the outcome was established by asking the
    broker after a lost/uncertain response (or found in the idempotency cache: `cached`)."""

    ok: bool
    custom_tag: str
    order_id: int | None = None
    order: Order | None = None
    verified: bool = False
    cached: bool = False
    error_code: int | None = None
    error_name: str | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class MutationResult:
    """Outcome of cancel / modify / close / partial close (see `PlaceResult` for `verified`)."""

    ok: bool
    verified: bool = False
    error_code: int | None = None
    error_name: str | None = None
    message: str | None = None
    order: Order | None = None


@dataclass(slots=True)
class ClientStats:
    requests: int = 0
    retries: int = 0
    http_429: int = 0
    unauthorized: int = 0
    verifications: int = 0
    malformed_items: int = 0
    by_status: dict[int, int] = field(default_factory=dict)


class _Unauthorized(Exception):
    pass


class GatewayClient:
    def __init__(self, config: GatewayConfig, user_name: str, api_key: str, clock: Clock | None = None,
                 token_store: TokenStore | None = None, rng: random.Random | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self._user = user_name
        self._api_key = api_key
        self._rng = rng or random.Random()
        self.stats = ClientStats()
        self.limiter = RateLimiter(config.error_handling.rate_limit, self.clock)
        self.breaker = CircuitBreaker(config.error_handling.circuit_breaker, self.clock)
        store = token_store if token_store is not None else build_token_store(config.authentication.storage)
        self.tokens = TokenManager(self, user_name, config.authentication, self.clock, store)
        self._http = httpx.AsyncClient(
            base_url=config.api.base_url + "/", timeout=config.api.timeout_s, verify=shared_tls_context(),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
            headers={"Accept": "application/json"})
        self.user_hub = HubConnection("user", config.signalr.user_hub_url, self.tokens, config.signalr,
                                      user_hub_decoder, rng=self._rng)
        self.market_hub = HubConnection("market", config.signalr.market_hub_url, self.tokens, config.signalr,
                                        market_hub_decoder, rng=self._rng)
        self._place_locks: dict[str, asyncio.Lock] = {}
        self._place_cache: dict[str, tuple[float, PlaceResult]] = {}

    # ----------------------------------------------------------------------------- lifecycle
    async def start(self, connect_hubs: bool = True) -> None:
        """Log in (or load a stored token) and, unless told not to, start both hub connections
        (they connect in the background; watch `hub.state` or `await hub.wait_connected()`)."""
        await self.tokens.start()
        if connect_hubs:
            await self.start_hubs()

    async def start_hubs(self) -> None:
        """Start both hub connections (subscriptions made before are sent on the first connect)."""
        await self.user_hub.start()
        await self.market_hub.start()

    async def aclose(self) -> None:
        await self.user_hub.stop()
        await self.market_hub.stop()
        await self.tokens.aclose()
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    # ----------------------------------------------------------------------------- transport
    async def _attempt(self, path: str, body: dict[str, Any] | None, token: str | None,
                       verified_if_lost: bool = False) -> dict[str, Any]:
        """One HTTP request through breaker and limiter; returns the 200 envelope or raises typed.

        `verified_if_lost`: a mutation whose answer, if lost after sending, is verified by a broker
        query. Such a lost answer is neutral for the breaker: the request may well have executed (a
        one-off lost answer from a healthy Gateway), and counting it would re-open the breaker and
        refuse the very verification query that tells (chaos seed 622: the half-open probe after a
        REST outage lost its answer, the verification and the next close were refused for 1 s). A
        Gateway that is really down fails that query too, and the query counts."""
        probe = self.breaker.before_call()
        outcome: bool | None = None  # True success, False failure (for the breaker), None neutral
        lost = None if verified_if_lost else False  # the outcome of a request sent whose answer never came
        answered = False             # the failure is an error status the Gateway answered (it is reachable)
        try:
            permit = await self.limiter.for_path(path).acquire()
            try:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                self.stats.requests += 1
                try:
                    response = await self._http.post(path, json=body if body is not None else {}, headers=headers)
                except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                    outcome = False
                    raise TransportError(path, f"cannot reach the Gateway ({type(exc).__name__}: {exc})",
                                         sent=False) from exc
                except httpx.TimeoutException as exc:
                    outcome = lost
                    raise TransportError(path, f"no answer within {self.config.api.timeout_s:g} s",
                                         sent=True) from exc
                except httpx.HTTPError as exc:
                    outcome = lost
                    raise TransportError(path, f"connection lost ({type(exc).__name__}: {exc})", sent=True) from exc
            finally:
                permit.release()
            status = response.status_code
            self.stats.by_status[status] = self.stats.by_status.get(status, 0) + 1
            if status == 200:
                try:
                    data = response.json()
                except ValueError:
                    outcome = False
                    raise TransportError(path, "the Gateway answered 200 with a body that is not JSON",
                                         sent=True) from None
                if not isinstance(data, dict):  # every Gateway answer is an envelope object
                    outcome = False
                    raise TransportError(path, "the Gateway answered 200 with JSON that is not an envelope object",
                                         sent=True)
                outcome = True
                return data
            if status == 401:
                outcome = True
                self.stats.unauthorized += 1
                raise _Unauthorized()
            if status == 429:
                self.stats.http_429 += 1
                log_event(log, "http_429", logging.WARNING, path=path,
                          in_window=self.limiter.for_path(path).in_window)
            if status in self.config.error_handling.retries.retryable_errors or status >= 500:
                outcome = False
                answered = True
                raise HttpStatusError(path, status)
            outcome = True
            errors: dict[str, Any] | None = None
            detail = ""
            if status == 400:
                try:
                    problem = response.json()
                    errors = problem.get("errors") if isinstance(problem, dict) else None
                    detail = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in (errors or {}).items())
                except ValueError:
                    detail = response.text[:200]
            raise PermanentHttpError(path, status, detail, errors)
        finally:
            if outcome is True:
                self.breaker.record_success(probe)
            elif outcome is False:
                self.breaker.record_failure(probe, answered)
            else:
                self.breaker.record_neutral(probe)

    async def _request(self, path: str, body: dict[str, Any] | None = None, auth: bool = True,
                       verified_if_lost: bool = False) -> dict[str, Any]:
        """One logical request: refresh the token and repeat once on 401."""
        for attempt in range(2):
            token = await self.tokens.get_valid_token() if auth else None
            try:
                return await self._attempt(path, body, token, verified_if_lost)
            except _Unauthorized:
                if not auth or attempt == 1:
                    raise PermanentHttpError(path, 401) from None
                assert token is not None
                await self.tokens.invalidate(token)
        raise AssertionError("unreachable")

    def _backoff_s(self, retry: int) -> float:
        retries = self.config.error_handling.retries
        base = retries.delay_s(retry)
        return base * (1.0 + self._rng.random() * retries.jitter)

    async def _read(self, path: str, body: dict[str, Any] | None = None, max_retries: int | None = None,
                    list_key: str | None = None) -> dict[str, Any]:
        """A read with retries on transient failures; `success:false` raises `GatewayRequestError`.
        With `list_key`, a success envelope without that list is malformed (transient, retried)."""
        limit = self.config.error_handling.retries.max_attempts if max_retries is None else max_retries
        retry = 0
        while True:
            try:
                data = await self._request(path, body)
                if list_key is not None and data.get("success") is not False:
                    _check_list(path, data, list_key)
                break
            except TransientError as exc:
                if retry >= limit:
                    log_event(log, "request_failed", logging.ERROR, path=path, retries=retry, error=str(exc))
                    raise
                delay = self._backoff_s(retry)
                log_event(log, "request_retry", logging.WARNING, path=path, retry=retry + 1, of=limit,
                          delay_s=round(delay, 3), error=str(exc))
                self.stats.retries += 1
                retry += 1
                await asyncio.sleep(delay)
        _raise_for_envelope(path, data)
        return data

    async def _read_items(self, path: str, body: dict[str, Any], key: str, decode: Callable[[Any], E],
                          max_retries: int | None = None) -> list[E]:
        """A read whose payload is the list `key`; malformed items are logged, counted and skipped."""
        data = await self._read(path, body, max_retries, list_key=key)
        items: list[E] = []
        for item in data[key]:
            try:
                items.append(decode(item))
            except WireDecodeError as exc:
                self.stats.malformed_items += 1
                log_event(log, "malformed_item", logging.ERROR, path=path, error=str(exc))
        return items

    # ----------------------------------------------------------------------------- auth (Authenticator)
    async def login_key(self) -> str:
        data = await self._request("Auth/loginKey", {"userName": self._user, "apiKey": self._api_key}, auth=False)
        token = data.get("token")
        if not data.get("success") or not isinstance(token, str) or not token:
            code = data.get("errorCode")
            raise AuthenticationError(code if isinstance(code, int) else None,
                                      str(data.get("errorMessage") or "the Gateway refused the credentials"))
        log_event(log, "login_ok", user=self._user)
        return token

    async def validate_token(self, token: str) -> str | None:
        try:
            data = await self._attempt("Auth/validate", None, token)
        except _Unauthorized:
            return None
        new = data.get("newToken")
        if not data.get("success") or not isinstance(new, str) or not new:
            log_event(log, "validate_refused", logging.WARNING, error_code=data.get("errorCode"))
            return None
        return new

    async def logout(self) -> None:
        """`Auth/logout`: end the session on the Gateway (the stored token becomes useless)."""
        await self._read("Auth/logout")

    async def ping(self) -> bool:
        """`GET Status/ping` (no token, not rate limited): True when the Gateway answers "pong"."""
        try:
            response = await self._http.get("Status/ping")
        except httpx.HTTPError as exc:
            log_event(log, "ping_failed", logging.WARNING, error=str(exc))
            return False
        return response.status_code == 200 and "pong" in response.text

    # ----------------------------------------------------------------------------- reads
    async def search_accounts(self, only_active: bool = True) -> list[Account]:
        return await self._read_items("Account/search", {"onlyActiveAccounts": only_active}, "accounts",
                                      Account.from_wire)

    async def search_contracts(self, text: str, live: bool = False) -> list[Contract]:
        return await self._read_items("Contract/search", {"searchText": text, "live": live}, "contracts",
                                      Contract.from_wire)

    async def contract_by_id(self, contract_id: str) -> Contract:
        data = await self._read("Contract/searchById", {"contractId": contract_id})
        try:
            return Contract.from_wire(data.get("contract"))
        except WireDecodeError as exc:  # a broken answer is the Gateway's failure, typed as such
            raise TransportError("Contract/searchById", f"payload field 'contract' is malformed ({exc})",
                                 sent=True) from None

    async def available_contracts(self, live: bool = False) -> list[Contract]:
        return await self._read_items("Contract/available", {"live": live}, "contracts", Contract.from_wire)

    async def retrieve_bars(self, contract_id: str, start: datetime, end: datetime, unit: BarUnit,
                            unit_number: int = 1, limit: int = 1000, live: bool = False,
                            include_partial_bar: bool = False) -> list[Bar]:
        """Bars newest first (as the Gateway sends them); History has its own 50 / 30 s limit."""
        body = {"contractId": contract_id, "live": live, "startTime": format_time(start),
                "endTime": format_time(end), "unit": int(unit), "unitNumber": unit_number, "limit": limit,
                "includePartialBar": include_partial_bar}
        return await self._read_items("History/retrieveBars", body, "bars", Bar.from_wire)

    # `retries` overrides errorHandling.retries.maxAttempts for one call (verification uses 0: it
    # has its own schedule).
    async def search_orders(self, account_id: int, start: datetime, end: datetime | None = None, *,
                            retries: int | None = None) -> list[Order]:
        body = {"accountId": account_id, "startTimestamp": format_time(start),
                "endTimestamp": None if end is None else format_time(end)}
        return await self._read_items("Order/search", body, "orders", Order.from_wire, retries)

    async def search_open_orders(self, account_id: int, *, retries: int | None = None) -> list[Order]:
        return await self._read_items("Order/searchOpen", {"accountId": account_id}, "orders", Order.from_wire,
                                      retries)

    async def search_open_positions(self, account_id: int, *, retries: int | None = None) -> list[Position]:
        return await self._read_items("Position/searchOpen", {"accountId": account_id}, "positions",
                                      Position.from_wire, retries)

    async def search_trades(self, account_id: int, start: datetime, end: datetime | None = None, *,
                            retries: int | None = None) -> list[Trade]:
        body = {"accountId": account_id, "startTimestamp": format_time(start),
                "endTimestamp": None if end is None else format_time(end)}
        return await self._read_items("Trade/search", body, "trades", Trade.from_wire, retries)

    # ----------------------------------------------------------------------------- mutations
    async def _send_mutation(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """Send once. Returns the envelope, or None when the outcome is uncertain. A failure that
        certainly happened before the request left (connection refused) is retried like a read."""
        retry = 0
        limit = self.config.error_handling.retries.max_attempts
        # Every mutation verifies a lost answer, except a place with verification disabled.
        verified = path != "Order/place" or self.config.order_management.verification.enabled
        while True:
            try:
                return await self._request(path, body, verified_if_lost=verified)
            except TransientError as exc:
                if exc.sent:
                    log_event(log, "mutation_outcome_uncertain", logging.WARNING, path=path, error=str(exc),
                              action="asking the broker")
                    return None
                if retry >= limit:
                    raise
                delay = self._backoff_s(retry)
                log_event(log, "mutation_not_sent_retry", logging.WARNING, path=path, retry=retry + 1,
                          delay_s=round(delay, 3), error=str(exc))
                retry += 1
                await asyncio.sleep(delay)

    def _verification_attempts(self) -> tuple[int, float]:
        v = self.config.order_management.verification
        return v.max_retries, v.timeout / 1000.0 / v.max_retries

    async def _verify(self, action: str, check: Callable[[], Any]) -> Any:
        """Run `check()` (a broker query returning a result, or None for 'not visible yet') up to
        `verification.maxRetries` times spread over `verification.timeout`."""
        self.stats.verifications += 1
        attempts, spacing = self._verification_attempts()
        last_error: Exception | None = None
        for attempt in range(attempts):
            try:
                found = await check()
                if found is not None:
                    log_event(log, "verification_done", action=action, attempt=attempt + 1)
                    return found
                last_error = None
            except GatewayError as exc:
                last_error = exc
                log_event(log, "verification_query_failed", logging.WARNING, action=action, error=str(exc))
            if attempt + 1 < attempts:
                await asyncio.sleep(spacing)
        if last_error is not None:
            raise OrderOutcomeUnknownError(action, str(last_error))
        return None

    async def place_order(self, account_id: int, contract_id: str, type: OrderType, side: OrderSide, size: int,
                          *, idempotency_key: str, limit_price: float | None = None, stop_price: float | None = None,
                          trail_price: float | None = None, stop_loss_bracket: tuple[int, OrderType] | None = None,
                          take_profit_bracket: tuple[int, OrderType] | None = None) -> PlaceResult:
        """Place an order exactly once per `idempotency_key` (its `customTag` is derived from it)."""
        tag = custom_tag_for(idempotency_key)
        lock = self._place_locks.setdefault(tag, asyncio.Lock())
        async with lock:
            cached = self._cached_place(tag)
            if cached is not None:
                return cached
            body: dict[str, Any] = {
                "accountId": account_id, "contractId": contract_id, "type": int(type), "side": int(side),
                "size": size, "limitPrice": limit_price, "stopPrice": stop_price, "trailPrice": trail_price,
                "customTag": tag,
                "stopLossBracket": None if stop_loss_bracket is None else
                {"ticks": stop_loss_bracket[0], "type": int(stop_loss_bracket[1])},
                "takeProfitBracket": None if take_profit_bracket is None else
                {"ticks": take_profit_bracket[0], "type": int(take_profit_bracket[1])},
            }
            result = await self._place(account_id, tag, body)
            if result.ok and self.config.order_management.idempotency.enabled:
                ttl = float(self.config.order_management.idempotency.cache_ttl)
                self._place_cache[tag] = (self.clock.timestamp() + ttl, result)
            return result

    def _cached_place(self, tag: str) -> PlaceResult | None:
        entry = self._place_cache.get(tag)
        if entry is None:
            return None
        expires, result = entry
        if self.clock.timestamp() >= expires:
            del self._place_cache[tag]
            return None
        log_event(log, "place_idempotent_hit", custom_tag=tag, order_id=result.order_id)
        return PlaceResult(True, tag, result.order_id, result.order, result.verified, cached=True)

    async def _place(self, account_id: int, tag: str, body: dict[str, Any]) -> PlaceResult:
        started = self.clock.now()
        data = await self._send_mutation("Order/place", body)
        if data is not None:
            if data.get("success"):
                order_id = data.get("orderId")
                log_event(log, "order_placed", account_id=account_id, order_id=order_id, custom_tag=tag)
                return PlaceResult(True, tag, order_id if isinstance(order_id, int) else None)
            code = int(data.get("errorCode") or 0)
            if code == _PLACE_REJECTED:
                # Also the answer to a repeated customTag: if an order with our tag exists, that is ours.
                existing = await self._find_order_by_tag(account_id, tag, started - _TAG_LOOKBACK)
                if existing is not None:
                    return PlaceResult(True, tag, existing.id, existing, verified=True)
            return _place_refused(tag, code, data.get("errorMessage"))
        if not self.config.order_management.verification.enabled:
            raise OrderOutcomeUnknownError("Order/place", "verification is disabled (orderManagement.verification)")

        async def check() -> Order | None:
            return await self._find_order_by_tag(account_id, tag, started - _VERIFY_LOOKBACK)

        found = await self._verify("Order/place", check)
        if found is not None:
            log_event(log, "order_place_verified", account_id=account_id, order_id=found.id, custom_tag=tag)
            return PlaceResult(True, tag, found.id, found, verified=True)
        # The broker has no order with our tag: the request never executed. Sending again is safe
        # because the Gateway refuses a repeated customTag (and we look for it again if refused).
        log_event(log, "order_place_absent_resending", logging.WARNING, account_id=account_id, custom_tag=tag)
        data = await self._send_mutation("Order/place", body)
        if data is not None and data.get("success"):
            order_id = data.get("orderId")
            return PlaceResult(True, tag, order_id if isinstance(order_id, int) else None, verified=True)
        found = await self._verify("Order/place", check)
        if found is not None:
            return PlaceResult(True, tag, found.id, found, verified=True)
        if data is None:
            raise OrderOutcomeUnknownError("Order/place", "the second attempt was lost too and no order is visible")
        return _place_refused(tag, int(data.get("errorCode") or 0), data.get("errorMessage"), verified=True)

    async def _find_order_by_tag(self, account_id: int, tag: str, since: datetime) -> Order | None:
        for order in await self.search_orders(account_id, since, retries=0):
            if order.custom_tag == tag:
                return order
        return None

    async def _find_order(self, account_id: int, order_id: int) -> Order | None:
        """The broker's current view of one order (open orders first, then today's history)."""
        for order in await self.search_open_orders(account_id, retries=0):
            if order.id == order_id:
                return order
        since = self.clock.now() - timedelta(days=1)
        for order in await self.search_orders(account_id, since, retries=0):
            if order.id == order_id:
                return order
        return None

    async def cancel_order(self, account_id: int, order_id: int) -> MutationResult:
        path = "Order/cancel"
        data = await self._send_mutation(path, {"accountId": account_id, "orderId": order_id})
        if data is not None:
            return _mutation_result(path, data)

        async def check() -> Order | None:
            return await self._find_order(account_id, order_id)

        order = await self._verify(path, check)
        if order is None:
            return MutationResult(False, True, message=f"order {order_id} is unknown to the broker")
        cancelled = order.status == OrderStatus.CANCELLED
        return MutationResult(cancelled, True, order=order,
                              message=None if cancelled else f"order {order_id} is {order.status.name}")

    async def modify_order(self, account_id: int, order_id: int, size: int | None = None,
                           limit_price: float | None = None, stop_price: float | None = None,
                           trail_price: float | None = None) -> MutationResult:
        path = "Order/modify"
        data = await self._send_mutation(path, {"accountId": account_id, "orderId": order_id, "size": size,
                                                "limitPrice": limit_price, "stopPrice": stop_price,
                                                "trailPrice": trail_price})
        if data is not None:
            return _mutation_result(path, data)

        async def check() -> Order | None:
            return await self._find_order(account_id, order_id)

        order = await self._verify(path, check)
        if order is None:
            return MutationResult(False, True, message=f"order {order_id} is unknown to the broker")
        applied = ((size is None or order.size == size) and (limit_price is None or order.limit_price == limit_price)
                   and (stop_price is None or order.stop_price == stop_price))
        return MutationResult(applied, True, order=order,
                              message=None if applied else "the broker's order does not show the modification")

    async def close_position(self, account_id: int, contract_id: str) -> MutationResult:
        path = "Position/closeContract"
        data = await self._send_mutation(path, {"accountId": account_id, "contractId": contract_id})
        if data is not None:
            return _mutation_result(path, data)

        async def check() -> MutationResult:
            positions = await self.search_open_positions(account_id, retries=0)
            still = [p for p in positions if p.contract_id == contract_id and p.size > 0]
            if still:
                return MutationResult(False, True, message=f"position still open ({still[0].size} contracts)")
            return MutationResult(True, True)

        result: MutationResult = await self._verify(path, check)
        return result

    async def partial_close_position(self, account_id: int, contract_id: str, size: int) -> MutationResult:
        """Close `size` contracts. Verification after a lost response looks for closing trades on
        the contract since the request (a concurrent fill on the same contract could mislead it)."""
        path = "Position/partialCloseContract"
        started = self.clock.now()
        data = await self._send_mutation(path, {"accountId": account_id, "contractId": contract_id, "size": size})
        if data is not None:
            return _mutation_result(path, data)

        async def check() -> MutationResult:
            trades = await self.search_trades(account_id, started - timedelta(seconds=1), retries=0)
            filled = sum(t.size for t in trades if t.contract_id == contract_id and t.profit_and_loss is not None)
            if filled >= size:
                return MutationResult(True, True)
            return MutationResult(False, True, message=f"only {filled} of {size} contracts closed")

        result: MutationResult = await self._verify(path, check)
        return result


def _check_list(path: str, data: dict[str, Any], key: str) -> None:
    # A success envelope always carries its list; a missing one is a broken answer, not "none"
    # (read as "no positions" it would look like a missed close to the reconciler).
    raw = data.get(key)
    if raw is None:
        raise TransportError(path, f"payload has no '{key}' list", sent=True)
    if not isinstance(raw, list):
        raise TransportError(path, f"payload field '{key}' is not a list", sent=True)


def _raise_for_envelope(path: str, data: dict[str, Any]) -> None:
    if data.get("success") is False:
        code = data.get("errorCode")
        raise GatewayRequestError(path, code if isinstance(code, int) else -1, data.get("errorMessage"))


def _place_refused(tag: str, code: int, message: Any, verified: bool = False) -> PlaceResult:
    name = error_code_name("Order/place", code)
    log_event(log, "order_refused", logging.WARNING, custom_tag=tag, error_code=code, error_name=name)
    return PlaceResult(False, tag, verified=verified, error_code=code, error_name=name,
                       message=None if message is None else str(message))


def _mutation_result(path: str, data: dict[str, Any]) -> MutationResult:
    if data.get("success"):
        return MutationResult(True)
    code = int(data.get("errorCode") or 0)
    name = error_code_name(path, code)
    log_event(log, "mutation_refused", logging.WARNING, path=path, error_code=code, error_name=name)
    message = data.get("errorMessage")
    return MutationResult(False, error_code=code, error_name=name, message=None if message is None else str(message))

