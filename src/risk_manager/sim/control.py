"""The loopback-only control API `/_sim/*`: drive the simulator from another process.

- `POST /_sim/faults` — a scenario fault (`{"cut": "user_hub", "for": "5s"}`, `{"latency": {...}}`, ...)
- `POST /_sim/quote` — `{"symbol": "MNQ", "price": 20000, "bid"?, "ask"?}` (sim.market.set_quote)
- `POST /_sim/trader/order` — `{"account", "symbol", "side", "size", "type", "limit_price", "stop_price",
  "trail_ticks", "tag", "fill"}` (sim.trader.place_order)
- `POST /_sim/trader/cancel` — `{"account", "order_id"?, "tag"?}`; `POST /_sim/trader/close` — `{"account", "symbol"}`
- `POST /_sim/account` — `{"id", "can_trade"?, "balance"?}`; with `"name"` and an unknown id it adds the account
- `POST /_sim/poll` — sim.poll(); `GET /_sim/state` — accounts, positions, orders, quotes, faults;
  `GET /_sim/record` — the recorder (requests, intents, duplicates, 429 count)

Peers other than 127.0.0.1 / ::1 get 403. Bad bodies get 400 `{"error": "..."}` naming the key.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from risk_manager.domain import UnknownContractError
from risk_manager.logs import log_event
from risk_manager.sim.broker import BrokerReject
from risk_manager.sim.config import SimAccount, SimConfigError

if TYPE_CHECKING:
    from risk_manager.sim.server import Simulator

log = logging.getLogger("risk_manager.sim")


class ControlError(ValueError):
    pass


def _is_loopback(peer: str | None) -> bool:
    if not peer:
        return False
    try:
        return ipaddress.ip_address(peer).is_loopback
    except ValueError:
        return False


def _get(body: dict[str, Any], key: str, kind: type | tuple[type, ...], required: bool = True) -> Any:
    value = body.get(key)
    if value is None:
        if required:
            raise ControlError(f"'{key}' is required")
        return None
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ControlError(f"'{key}' has the wrong type: got a boolean")
    if not isinstance(value, kind):
        raise ControlError(f"'{key}' has the wrong type: got {value!r}")
    return value


class ControlApi:
    def __init__(self, sim: Simulator) -> None:
        self._sim = sim
        self._routes: dict[tuple[str, str], Callable[[dict[str, Any]], Awaitable[Any]]] = {
            ("POST", "/_sim/faults"): self._faults,
            ("POST", "/_sim/quote"): self._quote,
            ("POST", "/_sim/trader/order"): self._order,
            ("POST", "/_sim/trader/cancel"): self._cancel,
            ("POST", "/_sim/trader/close"): self._close,
            ("POST", "/_sim/account"): self._account,
            ("POST", "/_sim/poll"): self._poll,
            ("GET", "/_sim/state"): self._state,
            ("GET", "/_sim/record"): self._record,
        }

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if not _is_loopback(request.remote):
            log_event(log, "sim_control_rejected", peer=request.remote, path=request.path, status=403)
            return web.json_response({"error": "the control API answers loopback peers only"}, status=403)
        handler = self._routes.get((request.method.upper(), request.path.lower()))
        if handler is None:
            log_event(log, "sim_control_rejected", path=request.path, status=404)
            return web.json_response({"error": f"unknown control route {request.method} {request.path}"}, status=404)
        body: dict[str, Any] = {}
        if request.method.upper() == "POST":
            raw = await request.text()
            if raw.strip():
                try:
                    parsed = json.loads(raw)
                except ValueError as exc:
                    return self._bad(request, f"body is not valid JSON: {exc}")
                if not isinstance(parsed, dict):
                    return self._bad(request, "body must be a JSON object")
                body = parsed
        try:
            result = await handler(body)
        except (ControlError, SimConfigError, ValueError, BrokerReject, UnknownContractError) as exc:
            return self._bad(request, str(exc))
        except Exception:  # a simulator bug must not take the server down: 500, logged with its traceback
            log.exception("sim_control_failed path=%s", request.path)
            return web.json_response({"error": "internal simulator error (see the simulator log)"}, status=500)
        return web.json_response({"ok": True, "result": result})

    @staticmethod
    def _bad(request: web.Request, message: str) -> web.StreamResponse:
        log_event(log, "sim_control_rejected", path=request.path, status=400, reason=message)
        return web.json_response({"error": message}, status=400)

    async def _faults(self, body: dict[str, Any]) -> Any:
        self._sim.faults.apply(body)
        return self._sim.faults.state()

    async def _quote(self, body: dict[str, Any]) -> Any:
        symbol = body.get("symbol") or body.get("contract")
        if not isinstance(symbol, str):
            raise ControlError("'symbol' (or 'contract') is required")
        quote = self._sim.market.set_quote(symbol, float(_get(body, "price", (int, float))),
                                           _opt_float(body, "bid"), _opt_float(body, "ask"))
        return quote.to_wire()

    async def _order(self, body: dict[str, Any]) -> Any:
        symbol = body.get("symbol") or body.get("contract")
        if not isinstance(symbol, str):
            raise ControlError("'symbol' (or 'contract') is required")
        fill = _get(body, "fill", list, required=False)
        if fill is not None and not all(isinstance(n, int) and not isinstance(n, bool) for n in fill):
            raise ControlError(f"'fill' must be a list of integers, got {fill!r}")
        order = self._sim.trader.place_order(
            _get(body, "account", int), symbol, side=_get(body, "side", str), size=_get(body, "size", int),
            type=_get(body, "type", str, required=False) or "market", limit_price=_opt_float(body, "limit_price"),
            stop_price=_opt_float(body, "stop_price"), trail_ticks=_get(body, "trail_ticks", int, required=False),
            tag=_get(body, "tag", str, required=False), fill=fill)
        return order.to_wire()

    async def _cancel(self, body: dict[str, Any]) -> Any:
        order = self._sim.trader.cancel_order(_get(body, "account", int),
                                              order_id=_get(body, "order_id", int, required=False),
                                              tag=_get(body, "tag", str, required=False))
        return order.to_wire()

    async def _close(self, body: dict[str, Any]) -> Any:
        symbol = body.get("symbol") or body.get("contract")
        if not isinstance(symbol, str):
            raise ControlError("'symbol' (or 'contract') is required")
        self._sim.trader.close_position(_get(body, "account", int), symbol)
        return None

    async def _account(self, body: dict[str, Any]) -> Any:
        account_id = _get(body, "id", int)
        if not self._sim.broker.has_account(account_id) and "name" in body:
            return self._sim.add_account(SimAccount(
                id=account_id, name=_get(body, "name", str), balance=_opt_float(body, "balance") or 50_000.0,
                can_trade=_get(body, "can_trade", bool, required=False) is not False)).to_wire()
        return self._sim.set_account(account_id, can_trade=_get(body, "can_trade", bool, required=False),
                                     balance=_opt_float(body, "balance")).to_wire()

    async def _poll(self, body: dict[str, Any]) -> Any:
        await self._sim.poll()
        return None

    async def _state(self, body: dict[str, Any]) -> Any:
        return self._sim.state()

    async def _record(self, body: dict[str, Any]) -> Any:
        return self._sim.recorder.to_json()


def _opt_float(body: dict[str, Any], key: str) -> float | None:
    value = _get(body, key, (int, float), required=False)
    return None if value is None else float(value)
