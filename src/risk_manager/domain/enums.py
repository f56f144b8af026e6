"""Enumerations of the ProjectX Gateway wire protocol (gateway-protocol.md §5).

Every enum tolerates values it does not know: decoding `OrderType(42)` yields a pseudo-member
named ``UNKNOWN_42`` that still compares equal to the integer 42, and the first sighting of each
unknown value is logged once. A new enum value from the broker must never crash the daemon.
"""

from __future__ import annotations

import logging
from enum import IntEnum
from typing import Any

log = logging.getLogger("risk_manager.domain")

_seen_unknown: set[tuple[str, int]] = set()


class TolerantIntEnum(IntEnum):
    """An IntEnum that turns unknown integer values into pseudo-members instead of raising."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            member = int.__new__(cls, value)
            member._name_ = f"UNKNOWN_{value}"
            member._value_ = value
            key = (cls.__name__, value)
            if key not in _seen_unknown:
                _seen_unknown.add(key)
                log.warning("unknown_enum_value enum=%s value=%d (tolerated)", cls.__name__, value)
            return member
        return None

    @property
    def known(self) -> bool:
        return not self._name_.startswith("UNKNOWN_")


class OrderSide(TolerantIntEnum):
    BID = 0  # buy
    ASK = 1  # sell

    @property
    def opposite(self) -> OrderSide:
        return OrderSide.ASK if self == OrderSide.BID else OrderSide.BID


class OrderType(TolerantIntEnum):
    UNKNOWN = 0
    LIMIT = 1
    MARKET = 2
    STOP_LIMIT = 3
    STOP = 4
    TRAILING_STOP = 5
    JOIN_BID = 6
    JOIN_ASK = 7


STOP_ORDER_TYPES = frozenset({OrderType.STOP_LIMIT, OrderType.STOP, OrderType.TRAILING_STOP})


class OrderStatus(TolerantIntEnum):
    NONE = 0
    OPEN = 1
    FILLED = 2
    CANCELLED = 3
    EXPIRED = 4
    REJECTED = 5
    PENDING = 6
    PENDING_CANCELLATION = 7
    SUSPENDED = 8


WORKING_ORDER_STATUSES = frozenset({OrderStatus.OPEN, OrderStatus.PENDING})


class PositionType(TolerantIntEnum):
    UNDEFINED = 0
    LONG = 1
    SHORT = 2

    @property
    def closing_side(self) -> OrderSide:
        """The order side that reduces a position of this type (long → sell, short → buy)."""
        return OrderSide.ASK if self == PositionType.LONG else OrderSide.BID


class MarketTradeType(TolerantIntEnum):
    BUY = 0
    SELL = 1


class DomType(TolerantIntEnum):
    UNKNOWN = 0
    ASK = 1
    BID = 2
    BEST_ASK = 3
    BEST_BID = 4
    TRADE = 5
    RESET = 6
    LOW = 7
    HIGH = 8
    NEW_BEST_BID = 9
    NEW_BEST_ASK = 10
    FILL = 11


class BarUnit(TolerantIntEnum):
    SECOND = 1
    MINUTE = 2
    HOUR = 3
    DAY = 4
    WEEK = 5
    MONTH = 6


class UserEventAction(TolerantIntEnum):
    """The `action` of a wrapped user-hub event. Observed values: 1 (add/update)."""

    UNKNOWN = 0
    UPSERT = 1
    DELETE = 2
