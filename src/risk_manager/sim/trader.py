"""The scripted trader: the broker's own trading screen. Acts on the books directly — never through
REST, never hit by faults — as a human trading on the platform would while the daemon watches.
"""

from __future__ import annotations

import logging
from typing import Literal

from risk_manager.domain import Order, OrderSide, OrderType
from risk_manager.logs import log_event
from risk_manager.sim.broker import Broker, BrokerReject

log = logging.getLogger("risk_manager.sim")

TraderSide = Literal["buy", "sell"]
TraderOrderType = Literal["market", "limit", "stop", "stop_limit", "trailing_stop"]

_TYPES = {"market": OrderType.MARKET, "limit": OrderType.LIMIT, "stop": OrderType.STOP,
          "stop_limit": OrderType.STOP_LIMIT, "trailing_stop": OrderType.TRAILING_STOP}


class TraderError(ValueError):
    """The trader's action cannot be done (unknown account, contract, tag, or invalid order)."""


class ScriptedTrader:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    def place_order(self, account_id: int, symbol_or_contract_id: str, side: TraderSide = "buy", size: int = 1,
                    type: TraderOrderType = "market", limit_price: float | None = None,
                    stop_price: float | None = None, trail_ticks: int | None = None, tag: str | None = None,
                    fill: list[int] | None = None) -> Order:
        """Place an order as the trader. A refusal by the account (canTrade false, no funds) gives a
        Rejected order, as the platform shows it; invalid input raises `TraderError`."""
        if side not in ("buy", "sell"):
            raise TraderError(f"side must be 'buy' or 'sell', got {side!r}")
        if type not in _TYPES:
            raise TraderError(f"type must be one of {', '.join(_TYPES)}, got {type!r}")
        order_side = OrderSide.BID if side == "buy" else OrderSide.ASK
        order_type = _TYPES[type]
        try:
            contract_id = self._broker.contract(symbol_or_contract_id).id
        except KeyError:
            raise TraderError(f"unknown symbol or contract {symbol_or_contract_id!r}") from None
        try:
            order = self._broker.place(account_id, contract_id, order_type, order_side, size,
                                       limit_price=limit_price, stop_price=stop_price, trail_ticks=trail_ticks,
                                       custom_tag=tag, fill_plan=fill)
        except BrokerReject as exc:
            if exc.reason in ("account_violation", "insufficient_funds"):
                log_event(log, "sim_trader_order_rejected", account=account_id, contract=contract_id,
                          reason=exc.message)
                return self._broker.reject_record(account_id, contract_id, order_type, order_side, size, tag)
            raise TraderError(exc.message) from None
        log_event(log, "sim_trader_order", account=account_id, contract=contract_id, side=side, size=size,
                  type=type, order=order.id, status=order.status.name)
        return order

    def cancel_order(self, account_id: int, order_id: int | None = None, tag: str | None = None) -> Order:
        """Cancel by order id or by the tag given at placement. Cancelling an order that is no longer
        working changes nothing and returns it with its final status."""
        if (order_id is None) == (tag is None):
            raise TraderError("cancel_order needs exactly one of order_id or tag")
        try:
            order = (self._broker.order(account_id, order_id) if order_id is not None
                     else self._broker.order_by_tag(account_id, tag or ""))
        except BrokerReject as exc:
            raise TraderError(exc.message) from None
        if order is None:
            raise TraderError(f"no order {order_id if order_id is not None else repr(tag)} on account {account_id}")
        if not order.is_working:
            log_event(log, "sim_trader_cancel_ignored", account=account_id, order=order.id,
                      status=order.status.name)
            return order
        return self._broker.cancel(account_id, order.id)

    def close_position(self, account_id: int, symbol_or_contract_id: str) -> None:
        """Flatten the position at the bid/ask; nothing happens when the account is already flat."""
        try:
            self._broker.close_position(account_id, self._broker.contract(symbol_or_contract_id).id)
        except KeyError:
            raise TraderError(f"unknown symbol or contract {symbol_or_contract_id!r}") from None
        except BrokerReject as exc:
            if exc.reason == "position_not_found":
                log_event(log, "sim_trader_close_ignored", account=account_id, contract=symbol_or_contract_id)
                return
            raise TraderError(exc.message) from None
