"""Hub events (gateway-protocol.md §7) as domain events, with their wire encoding and decoding.

User hub: `GatewayUserAccount|Order|Position|Trade`, one argument, wrapped as
`[{"action": 1, "data": {...}}]` by default; the unwrapped form `[{...entity}]` is accepted too.
Market hub: `GatewayQuote|GatewayTrade|GatewayDepth` with two arguments `(contractId, data)`.
`GatewayLogout` may arrive on either hub.

The same event classes are what the engine consumes, whether an event came live from a hub or
was synthesised by a REST reconciliation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from risk_manager.domain.enums import UserEventAction
from risk_manager.domain.errors import WireDecodeError
from risk_manager.domain.models import Account, DepthEntry, MarketTrade, Order, Position, Quote, Trade
from risk_manager.domain.wire import is_missing, lookup

USER_ACCOUNT = "GatewayUserAccount"
USER_ORDER = "GatewayUserOrder"
USER_POSITION = "GatewayUserPosition"
USER_TRADE = "GatewayUserTrade"
MARKET_QUOTE = "GatewayQuote"
MARKET_TRADE = "GatewayTrade"
MARKET_DEPTH = "GatewayDepth"
LOGOUT = "GatewayLogout"

USER_TARGETS = (USER_ACCOUNT, USER_ORDER, USER_POSITION, USER_TRADE)
MARKET_TARGETS = (MARKET_QUOTE, MARKET_TRADE, MARKET_DEPTH)


@dataclass(frozen=True, slots=True)
class AccountEvent:
    account: Account
    action: UserEventAction = UserEventAction.UPSERT

    @property
    def account_id(self) -> int:
        return self.account.id


@dataclass(frozen=True, slots=True)
class OrderEvent:
    order: Order
    action: UserEventAction = UserEventAction.UPSERT

    @property
    def account_id(self) -> int:
        return self.order.account_id


@dataclass(frozen=True, slots=True)
class PositionEvent:
    position: Position
    action: UserEventAction = UserEventAction.UPSERT

    @property
    def account_id(self) -> int:
        return self.position.account_id


@dataclass(frozen=True, slots=True)
class TradeEvent:
    trade: Trade
    action: UserEventAction = UserEventAction.UPSERT

    @property
    def account_id(self) -> int:
        return self.trade.account_id


@dataclass(frozen=True, slots=True)
class QuoteEvent:
    contract_id: str
    quote: Quote


@dataclass(frozen=True, slots=True)
class MarketTradeEvent:
    contract_id: str
    trades: tuple[MarketTrade, ...]


@dataclass(frozen=True, slots=True)
class DepthEvent:
    contract_id: str
    entries: tuple[DepthEntry, ...]


@dataclass(frozen=True, slots=True)
class LogoutEvent:
    """The server ended the session (`GatewayLogout`); the client must log in again."""

    reason: str | None = None


UserEvent = AccountEvent | OrderEvent | PositionEvent | TradeEvent
MarketEvent = QuoteEvent | MarketTradeEvent | DepthEvent
GatewayEvent = UserEvent | MarketEvent | LogoutEvent

_USER_DECODERS: dict[str, Any] = {
    USER_ACCOUNT: (Account, AccountEvent),
    USER_ORDER: (Order, OrderEvent),
    USER_POSITION: (Position, PositionEvent),
    USER_TRADE: (Trade, TradeEvent),
}


def decode_user_event(target: str, arguments: Sequence[Any]) -> UserEvent:
    """Decode one user-hub invocation, wrapped (`{action, data}`) or unwrapped (the entity itself)."""
    try:
        entity_cls, event_cls = _USER_DECODERS[target]
    except KeyError:
        raise WireDecodeError(target, "target", "not a user-hub event") from None
    if not arguments:
        raise WireDecodeError(target, "arguments", "expected one argument, got none")
    payload = arguments[0]
    if not isinstance(payload, Mapping):
        raise WireDecodeError(target, "arguments[0]", f"expected an object, got {type(payload).__name__}")
    data = lookup(payload, "data")
    if not is_missing(data) and isinstance(data, Mapping):
        action_raw = lookup(payload, "action")
        action = UserEventAction(action_raw) if isinstance(action_raw, int) and not isinstance(
            action_raw, bool) else UserEventAction.UPSERT
        return event_cls(entity_cls.from_wire(data), action)  # type: ignore[no-any-return]
    return event_cls(entity_cls.from_wire(payload))  # type: ignore[no-any-return]


def decode_user_events(target: str, arguments: Sequence[Any]) -> list[UserEvent]:
    """Like `decode_user_event`, but also accepts a first argument that is a list of items."""
    if arguments and isinstance(arguments[0], list):
        return [decode_user_event(target, [item]) for item in arguments[0]]
    return [decode_user_event(target, arguments)]


def decode_market_event(target: str, arguments: Sequence[Any]) -> MarketEvent:
    """Decode one market-hub invocation `(contractId, data)`."""
    if len(arguments) < 2:
        raise WireDecodeError(target, "arguments", f"expected (contractId, data), got {len(arguments)} argument(s)")
    contract_id, data = arguments[0], arguments[1]
    if not isinstance(contract_id, str):
        raise WireDecodeError(target, "arguments[0]", f"expected a contract id string, got {contract_id!r}")
    if target == MARKET_QUOTE:
        return QuoteEvent(contract_id, Quote.from_wire(data))
    if target == MARKET_TRADE:
        items = data if isinstance(data, list) else [data]
        return MarketTradeEvent(contract_id, tuple(MarketTrade.from_wire(i) for i in items))
    if target == MARKET_DEPTH:
        items = data if isinstance(data, list) else [data]
        return DepthEvent(contract_id, tuple(DepthEntry.from_wire(i) for i in items))
    raise WireDecodeError(target, "target", "not a market-hub event")


def encode_user_event(event: UserEvent, wrapped: bool = True) -> tuple[str, list[Any]]:
    """The (target, arguments) of a user-hub invocation for `event`."""
    if isinstance(event, AccountEvent):
        target, data = USER_ACCOUNT, event.account.to_wire()
    elif isinstance(event, OrderEvent):
        target, data = USER_ORDER, event.order.to_wire()
    elif isinstance(event, PositionEvent):
        target, data = USER_POSITION, event.position.to_wire()
    else:
        target, data = USER_TRADE, event.trade.to_wire()
    if wrapped:
        return target, [{"action": int(event.action), "data": data}]
    return target, [data]


def encode_market_event(event: MarketEvent) -> tuple[str, list[Any]]:
    """The (target, arguments) of a market-hub invocation for `event`."""
    if isinstance(event, QuoteEvent):
        return MARKET_QUOTE, [event.contract_id, event.quote.to_wire()]
    if isinstance(event, MarketTradeEvent):
        return MARKET_TRADE, [event.contract_id, [t.to_wire() for t in event.trades]]
    return MARKET_DEPTH, [event.contract_id, [d.to_wire() for d in event.entries]]
