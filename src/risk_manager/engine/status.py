"""What the dashboard shows per account (`Engine.status`): plain frozen data, JSON-ready via `to_json`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from risk_manager.engine.actions import Lock


@dataclass(frozen=True, slots=True)
class PositionStatus:
    contract_id: str
    symbol: str | None
    side: str            # "long" | "short" | "undefined"
    size: int
    average_price: float
    price: float | None
    open_pnl: float | None
    stop_covered: int    # contracts covered by working stops on the closing side


@dataclass(frozen=True, slots=True)
class RuleStatus:
    rule_id: str
    name: str
    label: str
    value: float
    limit: float
    fraction: float      # 0 … 1 (≥ 1: at or past the limit)
    contract_id: str | None = None


@dataclass(frozen=True, slots=True)
class AccountStatus:
    account_id: int
    name: str | None
    balance: float | None
    can_trade: bool | None
    trading_day: str
    positions: tuple[PositionStatus, ...]
    open_pnl: float
    realized_pnl: float
    fees: float
    net_pnl: float       # realized − fees + open
    trades_today: int
    rules: tuple[RuleStatus, ...]
    enabled_rules: tuple[str, ...]
    locks: tuple[Lock, ...]
    locked: bool
    next_reset: datetime
    session_open: bool | None        # None when RULE-009 is off
    session_boundary: datetime | None  # the end of the current session, or the start of the next
    unknown_contracts: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["locks"] = [lock.to_json() for lock in self.locks]
        data["next_reset"] = self.next_reset.isoformat()
        data["session_boundary"] = None if self.session_boundary is None else self.session_boundary.isoformat()
        return data
