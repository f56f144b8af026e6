"""Entities of the ProjectX Gateway (gateway-protocol.md §4), one definition for client and simulator.

Each entity is an immutable dataclass with `from_wire(dict)` (strict about required fields,
tolerant of extra ones and of unknown enum values) and `to_wire()` giving exactly the camelCase
JSON the Gateway sends. REST payloads and hub `data` objects share these shapes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self

from risk_manager.domain.enums import (
    STOP_ORDER_TYPES,
    WORKING_ORDER_STATUSES,
    DomType,
    MarketTradeType,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionType,
)
from risk_manager.domain.wire import Reader, format_time

_MONTH_SUFFIX = re.compile(r"[FGHJKMNQUVXZ]\d{1,2}$")


def _opt_time(value: datetime | None) -> str | None:
    return None if value is None else format_time(value)


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    name: str
    balance: float
    can_trade: bool
    is_visible: bool = True
    simulated: bool = False

    @classmethod
    def from_wire(cls, data: Any) -> Self:
        r = Reader("Account", data)
        return cls(
            id=r.integer("id"),
            name=r.string("name"),
            balance=r.number("balance"),
            can_trade=r.boolean("canTrade"),
            is_visible=r.opt_boolean("isVisible", True),
            simulated=r.opt_boolean("simulated", False),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "balance": self.balance,
            "canTrade": self.can_trade,
            "isVisible": self.is_visible,
            "simulated": self.simulated,
        }


@dataclass(frozen=True, slots=True)
class Contract:
    id: str
    name: str
    description: str
    tick_size: float
    tick_value: float
    active_contract: bool
    symbol_id: str | None

    @property
    def symbol(self) -> str:
        """The instrument root traders use in configs (`ES`, `MNQ`, `CL`).

        Taken from the contract name without its month code and year (`ESZ6` → `ES`), never from
        the contract id, whose root differs from the ticker (ES trades as `CON.F.US.EP.*`).
        """
        return _MONTH_SUFFIX.sub("", self.name).upper() or self.name.upper()

    @classmethod
    def from_wire(cls, data: Any) -> Self:
        r = Reader("Contract", data)
        return cls(
            id=r.string("id"),
            name=r.string("name"),
            description=r.opt_string("description") or "",
            tick_size=r.number("tickSize"),
            tick_value=r.number("tickValue"),
            active_contract=r.opt_boolean("activeContract", True),
            symbol_id=r.opt_string("symbolId"),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "tickSize": self.tick_size,
            "tickValue": self.tick_value,
            "activeContract": self.active_contract,
            "symbolId": self.symbol_id,
        }


@dataclass(frozen=True, slots=True)
class Order:
    id: int
    account_id: int
    contract_id: str
    creation_timestamp: datetime
    status: OrderStatus
    type: OrderType
    side: OrderSide
    size: int
    symbol_id: str | None = None
    update_timestamp: datetime | None = None
    limit_price: float | None = None
    stop_price: float | None = None
    fill_volume: int = 0
    filled_price: float | None = None
    custom_tag: str | None = None
    trail_price: float | None = None
    parent_order_id: int | None = None
    linked_order_id: int | None = None

    @property
    def is_working(self) -> bool:
        return self.status in WORKING_ORDER_STATUSES

    @property
    def is_stop(self) -> bool:
        return self.type in STOP_ORDER_TYPES

    @classmethod
    def from_wire(cls, data: Any) -> Self:
        r = Reader("Order", data)
        return cls(
            id=r.integer("id"),
            account_id=r.integer("accountId"),
            contract_id=r.string("contractId"),
            creation_timestamp=r.timestamp("creationTimestamp"),
            status=r.enum("status", OrderStatus),
            type=r.enum("type", OrderType),
            side=r.enum("side", OrderSide),
            size=r.integer("size"),
            symbol_id=r.opt_string("symbolId"),
            update_timestamp=r.opt_timestamp("updateTimestamp"),
            limit_price=r.opt_number("limitPrice"),
            stop_price=r.opt_number("stopPrice"),
            fill_volume=r.opt_integer("fillVolume") or 0,
            filled_price=r.opt_number("filledPrice"),
            custom_tag=r.opt_string("customTag"),
            trail_price=r.opt_number("trailPrice"),
            parent_order_id=r.opt_integer("parentOrderId"),
            linked_order_id=r.opt_integer("linkedOrderId"),
        )

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "id": self.id,
            "accountId": self.account_id,
            "contractId": self.contract_id,
            "symbolId": self.symbol_id,
            "creationTimestamp": format_time(self.creation_timestamp),
            "updateTimestamp": _opt_time(self.update_timestamp),
            "status": int(self.status),
            "type": int(self.type),
            "side": int(self.side),
            "size": self.size,
            "limitPrice": self.limit_price,
            "stopPrice": self.stop_price,
            "fillVolume": self.fill_volume,
            "filledPrice": self.filled_price,
            "customTag": self.custom_tag,
        }
        # Optional (?) fields of the protocol doc: sent only when they carry something.
        if self.trail_price is not None:
            wire["trailPrice"] = self.trail_price
        if self.parent_order_id is not None:
            wire["parentOrderId"] = self.parent_order_id
        if self.linked_order_id is not None:
            wire["linkedOrderId"] = self.linked_order_id
        return wire


@dataclass(frozen=True, slots=True)
class Position:
    id: int
    account_id: int
    contract_id: str
    creation_timestamp: datetime
    type: PositionType
    size: int
    average_price: float

    @property
    def is_open(self) -> bool:
        return self.size > 0

    @property
    def signed_size(self) -> int:
        """+size for long, -size for short; 0 for a closed position or an undefined type."""
        if self.type == PositionType.LONG:
            return self.size
        if self.type == PositionType.SHORT:
            return -self.size
        return 0

    @classmethod
    def from_wire(cls, data: Any) -> Self:
        r = Reader("Position", data)
        return cls(
            id=r.integer("id"),
            account_id=r.integer("accountId"),
            contract_id=r.string("contractId"),
            creation_timestamp=r.timestamp("creationTimestamp"),
            type=r.enum("type", PositionType),
            size=r.integer("size"),
            average_price=r.number("averagePrice"),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "accountId": self.account_id,
            "contractId": self.contract_id,
            "creationTimestamp": format_time(self.creation_timestamp),
            "type": int(self.type),
            "size": self.size,
            "averagePrice": self.average_price,
        }


@dataclass(frozen=True, slots=True)
class Trade:
    """A half-turn fill. `profit_and_loss` is None on an opening fill."""

    id: int
    account_id: int
    contract_id: str
    creation_timestamp: datetime
    price: float
    profit_and_loss: float | None
    fees: float
    side: OrderSide
    size: int
    voided: bool
    order_id: int

    @classmethod
    def from_wire(cls, data: Any) -> Self:
        r = Reader("Trade", data)
        return cls(
            id=r.integer("id"),
            account_id=r.integer("accountId"),
            contract_id=r.string("contractId"),
            creation_timestamp=r.timestamp("creationTimestamp"),
            price=r.number("price"),
            profit_and_loss=r.opt_number("profitAndLoss"),
            fees=r.opt_number("fees") or 0.0,
            side=r.enum("side", OrderSide),
            size=r.integer("size"),
            voided=r.opt_boolean("voided", False),
            order_id=r.integer("orderId"),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "accountId": self.account_id,
            "contractId": self.contract_id,
            "creationTimestamp": format_time(self.creation_timestamp),
            "price": self.price,
            "profitAndLoss": self.profit_and_loss,
            "fees": self.fees,
            "side": int(self.side),
            "size": self.size,
            "voided": self.voided,
            "orderId": self.order_id,
        }


@dataclass(frozen=True, slots=True)
class Quote:
    """A market-hub quote. Every field may be absent: quotes can be partial updates (§7)."""

    symbol: str | None = None
    symbol_name: str | None = None
    last_price: float | None = None
    best_bid: float | None = None
    best_ask: float | None = None
    change: float | None = None
    change_percent: float | None = None
    open: float | None = None
    high: float | None = None
    low: float | None = None
    volume: float | None = None
    last_updated: datetime | None = None
    timestamp: datetime | None = None

    @property
    def price(self) -> float | None:
        """The price P&L is marked at: last trade, or the bid/ask mid when last is 0 or missing."""
        if self.last_price:
            return self.last_price
        if self.best_bid and self.best_ask:
            return (self.best_bid + self.best_ask) / 2.0
        return None

    def merged(self, update: Quote) -> Quote:
        """This quote with every field that `update` carries replaced (partial-update semantics)."""
        return Quote(*(
            new if new is not None else old
            for old, new in zip(_quote_values(self), _quote_values(update), strict=True)
        ))

    @classmethod
    def from_wire(cls, data: Any) -> Self:
        r = Reader("Quote", data)
        return cls(
            symbol=r.opt_string("symbol"),
            symbol_name=r.opt_string("symbolName"),
            last_price=r.opt_number("lastPrice"),
            best_bid=r.opt_number("bestBid"),
            best_ask=r.opt_number("bestAsk"),
            change=r.opt_number("change"),
            change_percent=r.opt_number("changePercent"),
            open=r.opt_number("open"),
            high=r.opt_number("high"),
            low=r.opt_number("low"),
            volume=r.opt_number("volume"),
            last_updated=r.opt_timestamp("lastUpdated"),
            timestamp=r.opt_timestamp("timestamp"),
        )

    def to_wire(self) -> dict[str, Any]:
        wire = {
            "symbol": self.symbol,
            "symbolName": self.symbol_name,
            "lastPrice": self.last_price,
            "bestBid": self.best_bid,
            "bestAsk": self.best_ask,
            "change": self.change,
            "changePercent": self.change_percent,
            "open": self.open,
            "high": self.high,
            "low": self.low,
            "volume": self.volume,
            "lastUpdated": _opt_time(self.last_updated),
            "timestamp": _opt_time(self.timestamp),
        }
        return {k: v for k, v in wire.items() if v is not None}


def _quote_values(q: Quote) -> tuple[Any, ...]:
    return (q.symbol, q.symbol_name, q.last_price, q.best_bid, q.best_ask, q.change, q.change_percent,
            q.open, q.high, q.low, q.volume, q.last_updated, q.timestamp)


@dataclass(frozen=True, slots=True)
class MarketTrade:
    symbol_id: str
    price: float
    timestamp: datetime
    type: MarketTradeType
    volume: int

    @classmethod
    def from_wire(cls, data: Any) -> Self:
        r = Reader("MarketTrade", data)
        return cls(
            symbol_id=r.string("symbolId"),
            price=r.number("price"),
            timestamp=r.timestamp("timestamp"),
            type=r.enum("type", MarketTradeType),
            volume=r.integer("volume"),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "symbolId": self.symbol_id,
            "price": self.price,
            "timestamp": format_time(self.timestamp),
            "type": int(self.type),
            "volume": self.volume,
        }


@dataclass(frozen=True, slots=True)
class DepthEntry:
    timestamp: datetime
    type: DomType
    price: float
    volume: int
    current_volume: int

    @classmethod
    def from_wire(cls, data: Any) -> Self:
        r = Reader("DepthEntry", data)
        return cls(
            timestamp=r.timestamp("timestamp"),
            type=r.enum("type", DomType),
            price=r.number("price"),
            volume=r.integer("volume"),
            current_volume=r.opt_integer("currentVolume") or 0,
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "timestamp": format_time(self.timestamp),
            "type": int(self.type),
            "price": self.price,
            "volume": self.volume,
            "currentVolume": self.current_volume,
        }


@dataclass(frozen=True, slots=True)
class Bar:
    t: datetime
    o: float
    h: float
    l: float  # noqa: E741 - the wire name
    c: float
    v: int

    @classmethod
    def from_wire(cls, data: Any) -> Self:
        r = Reader("Bar", data)
        return cls(t=r.timestamp("t"), o=r.number("o"), h=r.number("h"), l=r.number("l"), c=r.number("c"),
                   v=r.integer("v"))

    def to_wire(self) -> dict[str, Any]:
        return {"t": format_time(self.t), "o": self.o, "h": self.h, "l": self.l, "c": self.c, "v": self.v}
