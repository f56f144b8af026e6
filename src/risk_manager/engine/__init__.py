"""The risk engine — PURE: account state, the 14 rules, locks, timers and the trading calendar.

No I/O, no asyncio, no logging; time comes only from the injected `risk_manager.domain.Clock`.
The same events under the same clock readings always give the same actions.

Public API (the daemon, the scenario runner and the dashboard are written against it)::

    from risk_manager.engine import Engine, RiskConfig, load_risk_config, Action, ActionKind, Lock, LockKind

    config = load_risk_config(path)              # YAML + ${ENV}; raises ConfigError(file, key_path, message)
    config = RiskConfig.model_validate(data)      # pydantic v2; a scenario's `rules:` → parse_rules_block(data)
    engine = Engine(config, clock, contracts)     # contracts: Catalogue | {id: Contract} | [Contract] | ContractBook
    engine.register_contract(contract)            # metadata learned at runtime (Contract/searchById)
    actions = engine.handle(event)                # AccountEvent | OrderEvent | PositionEvent | TradeEvent |
                                                  # QuoteEvent (market trades/depth/logout are accepted, ignored)
                                                  # or a command: ManualLock | ClearLock | StopsChecked |
                                                  # ResetAccount | Reconciled (see engine/commands.py)
    actions = engine.on_time()                    # due work: lock expiry, grace/auto-stop timers, resets, session ends
    engine.next_deadline() -> datetime | None     # when on_time() must run next
    engine.snapshot() -> dict                     # JSON; Engine.restore(snapshot, config, clock, contracts)
    engine.update_config(config) -> list[Action]  # live reload: keeps state, locks, timers; re-judges positions
    engine.status(account_id) -> AccountStatus    # dashboard view
    engine.locks(account_id) -> list[Lock]
    engine.watched_contracts() -> list[str]       # contracts with positions/orders: quote subscriptions
    engine.account_ids() -> list[int]

Actions are frozen dataclasses (`Action.kind` ∈ close_position, reduce_position, flatten_account,
cancel_orders, lock, modify_stop, place_stop, alert, check_stops, unlock) with the rules that asked
and an idempotency key deterministic from the causing event's content. Locks are returned in the
output BEFORE any broker action: persist them first. `check_stops` asks the daemon to run
`Order/searchOpen`, feed the orders back as OrderEvents and answer with `StopsChecked`.
`unlock` records a lock that ended (expiry, condition, admin) for the store and audit log.
`engine.handle(ClearLock(...))` raises `UnlockNotAllowedError` when admin.allow_manual_unlock is off.
"""

from risk_manager.engine.actions import Action, ActionKind, AlertLevel, Lock, LockKind, merge_actions
from risk_manager.engine.calendar import SessionBook, SessionSchedule, TradingCalendar
from risk_manager.engine.commands import (
    ClearLock,
    EngineCommand,
    ManualLock,
    Reconciled,
    ResetAccount,
    StopsChecked,
)
from risk_manager.engine.config import RiskConfig, RulesConfig
from risk_manager.engine.config_loader import load_risk_config, parse_risk_config, parse_rules_block
from risk_manager.engine.contracts import ContractBook, ContractInfo
from risk_manager.engine.engine import Engine
from risk_manager.engine.errors import ConfigError, EngineError, SnapshotError, UnlockNotAllowedError
from risk_manager.engine.status import AccountStatus, PositionStatus, RuleStatus

__all__ = [
    "AccountStatus",
    "Action",
    "ActionKind",
    "AlertLevel",
    "ClearLock",
    "ConfigError",
    "ContractBook",
    "ContractInfo",
    "Engine",
    "EngineCommand",
    "EngineError",
    "Lock",
    "LockKind",
    "ManualLock",
    "PositionStatus",
    "Reconciled",
    "ResetAccount",
    "RiskConfig",
    "RuleStatus",
    "RulesConfig",
    "SessionBook",
    "SessionSchedule",
    "SnapshotError",
    "StopsChecked",
    "TradingCalendar",
    "UnlockNotAllowedError",
    "load_risk_config",
    "merge_actions",
    "parse_risk_config",
    "parse_rules_block",
]
