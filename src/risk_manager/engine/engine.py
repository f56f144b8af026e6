"""The risk engine: state update → lock check → rules → merged, de-duplicated actions.

Pure: no I/O, no asyncio, no logging; time comes only from the injected `Clock`. The same events
under the same clock readings give the same actions (and the same idempotency keys).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any
from zoneinfo import ZoneInfo

from risk_manager.domain import (
    STOP_ORDER_TYPES,
    AccountEvent,
    Catalogue,
    Clock,
    Contract,
    DepthEvent,
    LogoutEvent,
    MarketEvent,
    MarketTradeEvent,
    OrderEvent,
    Position,
    PositionEvent,
    PositionType,
    Quote,
    QuoteEvent,
    TradeEvent,
    UserEvent,
    UserEventAction,
)
from risk_manager.domain.wire import format_time
from risk_manager.engine.actions import Action, ActionKind, AlertLevel, Lock, LockKind, make_key, merge_actions
from risk_manager.engine.calendar import SessionBook, TradingCalendar
from risk_manager.engine.commands import (
    ClearLock,
    EngineCommand,
    ManualLock,
    Reconciled,
    ResetAccount,
    StopsChecked,
)
from risk_manager.engine.config import RiskConfig
from risk_manager.engine.contracts import ContractBook, ContractInfo
from risk_manager.engine.errors import SnapshotError, UnlockNotAllowedError
from risk_manager.engine.rules import build_rules
from risk_manager.engine.rules.base import Rule, RuleContext, alert
from risk_manager.engine.rules.no_stop_loss_grace import ANSWERED, NoStopLossGrace
from risk_manager.engine.rules.session_block_outside import SessionBlockOutside
from risk_manager.engine.state import AccountState, Change, ChangeKind, PositionState, stop_coverage
from risk_manager.engine.status import AccountStatus, PositionStatus, RuleStatus

EngineEvent = UserEvent | MarketEvent | LogoutEvent | EngineCommand  # what `Engine.handle` accepts

SNAPSHOT_VERSION = 1
RETRY_AFTER = 5.0  # seconds before the same enforcement for an unchanged situation is asked again
ENGINE_RULE = "ENGINE"
ADMIN_RULE = "ADMIN"
_ONE_SHOT = frozenset({ActionKind.CHECK_STOPS, ActionKind.PLACE_STOP, ActionKind.MODIFY_STOP})
_NEVER = float("inf")


class Engine:
    """See `risk_manager.engine` for the public API."""

    def __init__(self, config: RiskConfig, clock: Clock,
                 contracts: ContractBook | Catalogue | Mapping[str, Contract] | Iterable[Contract] | None = None
                 ) -> None:
        self.clock = clock
        self.contracts = contracts if isinstance(contracts, ContractBook) else ContractBook(contracts)
        self.accounts: dict[int, AccountState] = {}
        self.quotes: dict[str, Quote] = {}
        self.prices: dict[str, float] = {}
        self._holders: dict[str, set[int]] = {}
        self._session_pending: dict[str, float | None] = {}
        self._next_reset: float | None = None
        self._acct_due: dict[int, float] = {}
        self._due_at: float | None = None
        self._configure(config)

    # --- configuration ---------------------------------------------------------------------------

    def _configure(self, config: RiskConfig) -> None:
        self.config = config
        reset = config.daily_reset
        self.calendar = TradingCalendar(reset.time, ZoneInfo(reset.timezone))
        self._trade_calendar = TradingCalendar(reset.time, ZoneInfo(reset.timezone))
        session_cfg = config.rules.session_block_outside
        self.sessions = SessionBook(session_cfg, config.zone) if session_cfg.enabled else None
        self.ctx = RuleContext(config, self.contracts, self.calendar, self.sessions, self.prices)
        self.rules: list[Rule[Any]] = build_rules(config.rules)
        self._by_kind: dict[ChangeKind, list[Rule[Any]]] = {
            kind: [r for r in self.rules if kind in r.triggers] for kind in ChangeKind}
        self._timed = [r for r in self.rules if r.timed]
        self._grace = next((r for r in self.rules if isinstance(r, NoStopLossGrace)), None)
        self._session_rule = next((r for r in self.rules if isinstance(r, SessionBlockOutside)), None)
        self._warn: dict[ChangeKind, list[tuple[Rule[Any], float, float]]] = {
            kind: [(r, r.config.warn_at, max(r.config.warn_at - 0.1, r.config.warn_at / 2))
                   for r in self._by_kind[kind] if r.config.warn_at is not None]
            for kind in ChangeKind}
        self._session_pending = {}
        self._next_reset = None
        self._acct_due = {}
        self._due_at = None

    def update_config(self, config: RiskConfig) -> list[Action]:
        """Live reload: state, locks and timers are kept. Every open position is judged again under the
        new config (a symbol just blocked, a limit just lowered), and symbol locks whose symbol is no
        longer blocked end (`unlock` actions for the store and audit log)."""
        old = self.config
        pending = dict(self._session_pending)
        next_reset = self._next_reset
        self._configure(config)
        if config.daily_reset == old.daily_reset:
            self._next_reset = next_reset
        if (config.rules.session_block_outside == old.rules.session_block_outside
                and config.timezone == old.timezone):
            self._session_pending = pending  # same windows: the session-end timers continue exactly
        now = self.clock.timestamp()
        self.ctx.set_now(now)
        out: list[Action] = []
        blocks = config.rules.symbol_blocks
        for acct in self.accounts.values():
            for key, lock in list(acct.locks.items()):
                if lock.kind is LockKind.SYMBOL and lock.symbol is not None and not (
                        blocks.enabled and any(fnmatchcase(lock.symbol, p) for p in blocks.blocked)):
                    del acct.locks[key]
                    out.append(self._unlock_action(acct, lock, "symbol no longer blocked by the config",
                                                   f"config:{lock.symbol}"))
            self._refresh_due(acct)
        cause = "config:" + hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:12]
        for acct in self.accounts.values():
            for cid in sorted(acct.positions):
                growth, fill = acct.occurrence(acct.positions[cid])
                out.extend(self._evaluate(acct, Change(ChangeKind.POSITION, f"{cause}:{growth}:{fill}", cid)))
        return self._finish(out)

    def register_contract(self, contract: Contract) -> ContractInfo:
        """Metadata learned at runtime (Contract/searchById). Positions already open get their symbol and P&L."""
        info = self.contracts.register(contract)
        price = self.prices.get(contract.id)
        for aid in self._holders.get(contract.id, ()):
            acct = self.accounts[aid]
            pos = acct.positions.get(contract.id)
            if pos is not None:
                pos.symbol = info.symbol
                acct.reprice(contract.id, info, price)
            acct.flagged.discard(contract.id)
        return info

    # --- the event path --------------------------------------------------------------------------

    def handle(self, event: EngineEvent) -> list[Action]:
        """Apply one event or command and return the merged actions (due timers included)."""
        now = self.clock.timestamp()
        self.ctx.set_now(now)
        out: list[Action] = []
        if self._due_at is None or now >= self._due_at:
            out.extend(self._due(now))
        if isinstance(event, QuoteEvent):
            self._on_quote(event, now, out)
        elif isinstance(event, PositionEvent):
            p = event.position
            acct = self._account(p.account_id)
            change = Change(ChangeKind.POSITION, "", p.contract_id)
            info = self.contracts.find(p.contract_id)
            acct.apply_position(p, event.action, now, info, self.prices.get(p.contract_id), change)
            # growth number and last fill: a new occurrence (grown again to the same size) vs this event re-seen
            growth, fill = change.occurrence
            change.key = f"position:{p.id}:{p.size}:{int(p.type)}:{growth}:{fill}"
            holders = self._holders.setdefault(p.contract_id, set())
            if p.contract_id in acct.positions:
                holders.add(acct.account_id)
            else:
                holders.discard(acct.account_id)
            out.extend(self._evaluate(acct, change))
            self._refresh_due(acct)
        elif isinstance(event, OrderEvent):
            o = event.order
            acct = self._account(o.account_id)
            change = Change(ChangeKind.ORDER, f"order:{o.id}:{int(o.status)}", o.contract_id)
            acct.apply_order(o, event.action, now, change)
            out.extend(self._evaluate(acct, change))
            if o.type in STOP_ORDER_TYPES:  # only stops move the grace / auto-stop timers
                self._refresh_due(acct)
        elif isinstance(event, TradeEvent):
            t = event.trade
            acct = self._account(t.account_id)
            change = Change(ChangeKind.TRADE, f"trade:{t.id}", t.contract_id)
            acct.apply_trade(t, self._trade_calendar.trading_day(t.creation_timestamp.timestamp()), now, change)
            if change.unreflected:   # its P&L is realized now: out of the position's open P&L
                acct.reprice(t.contract_id, self.contracts.find(t.contract_id), self.prices.get(t.contract_id))
            if change.trade is not None:
                out.extend(self._evaluate(acct, change))
        elif isinstance(event, AccountEvent):
            a = event.account
            acct = self._account(a.id)
            change = Change(ChangeKind.ACCOUNT, "")
            acct.apply_account(a, change)
            change.key = f"account:{a.id}:{a.can_trade}:{a.balance:.2f}:{acct.can_trade_losses}"
            if change.can_trade_back:
                out.extend(self._end_locks(acct, LockKind.UNTIL_CAN_TRADE, "the account can trade again",
                                           change.cause))
            out.extend(self._evaluate(acct, change))
        elif isinstance(event, StopsChecked):
            out.extend(self._stops_checked(event, now))
        elif isinstance(event, ManualLock):
            out.extend(self._manual_lock(event))
        elif isinstance(event, ClearLock):
            out.extend(self._clear_lock(event))
        elif isinstance(event, ResetAccount):
            out.extend(self._reset_account(event))
        elif isinstance(event, Reconciled):
            out.extend(self._reconciled(event, now))
        elif isinstance(event, MarketTradeEvent | DepthEvent | LogoutEvent):
            pass  # market prints and depth do not move P&L (quotes do); logout is the gateway's business
        else:
            raise TypeError(f"Engine.handle: unsupported event {type(event).__name__}")
        return self._finish(out)

    def on_time(self) -> list[Action]:
        """Run what is due now: daily reset, lock expiry, grace/auto-stop timers, session ends."""
        now = self.clock.timestamp()
        self.ctx.set_now(now)
        return self._finish(self._due(now))

    def next_deadline(self) -> datetime | None:
        """When `on_time()` must be called next (None: nothing scheduled)."""
        if self._due_at is None:
            self._recompute_due(self.clock.timestamp())
        due = self._due_at
        return None if due is None or due == _NEVER else datetime.fromtimestamp(due, UTC)

    # --- state helpers ---------------------------------------------------------------------------

    def _account(self, account_id: int) -> AccountState:
        acct = self.accounts.get(account_id)
        if acct is None:
            acct = self.accounts[account_id] = AccountState(account_id)
        return acct

    def _on_quote(self, event: QuoteEvent, now: float, out: list[Action]) -> None:
        cid = event.contract_id
        update = event.quote
        for value in (update.last_price, update.best_bid, update.best_ask):
            if value is not None and not math.isfinite(value):
                return  # a damaged quote (NaN/inf) must never reach P&L: keep the last good one
        previous = self.quotes.get(cid)
        if previous is None or (update.last_price is not None and update.best_bid is not None
                                and update.best_ask is not None):
            quote = update  # a full quote: nothing of the previous one is needed for pricing
        else:
            quote = previous.merged(update)
        self.quotes[cid] = quote
        price = quote.price
        if price is None:
            return
        self.prices[cid] = price
        holders = self._holders.get(cid)
        if not holders:
            return
        info = self.contracts.find(cid)
        stamp = update.timestamp or update.last_updated
        # One (read-only) change serves every account holding the contract: rules only read it.
        change = Change(ChangeKind.QUOTE, "", cid, quote_key=(cid, None if stamp is None else stamp.timestamp(), price))
        accounts = self.accounts
        for aid in sorted(holders) if len(holders) > 1 else holders:
            acct = accounts[aid]
            if acct.reprice(cid, info, price):
                occurrence = acct.occurrence(acct.positions[cid])
                if occurrence != change.occurrence:
                    change.occurrence, change.key = occurrence, ""  # the cause names this account's position
                found = self._evaluate(acct, change)
                if found:
                    out.extend(found)

    def _symbol(self, acct: AccountState, contract_id: str | None) -> str | None:
        if contract_id is None:
            return None
        info = self.contracts.find(contract_id)
        return info.symbol if info is not None else None

    # --- evaluation ------------------------------------------------------------------------------

    def _evaluate(self, acct: AccountState, change: Change) -> list[Action]:
        """Lock check, then the rules interested in this kind of change, then the alerts ladder."""
        ctx = self.ctx
        ctx.serial += 1
        kind = change.kind
        out: list[Action] = []
        if change.damaged:
            out.append(alert(acct.account_id, ENGINE_RULE, change.cause,
                             f"the broker sent a {change.damaged} that is not a number; it was ignored — "
                             "P&L may be incomplete until a reconciliation", AlertLevel.CRITICAL))
        if (kind is ChangeKind.POSITION or kind is ChangeKind.ORDER) and self.rules:
            failed = self._fail_closed(acct, change)
            if failed is not None:
                return out + failed
        if acct.locks:
            enforcement = self._lock_check(acct, change)
            if enforcement is not None:
                return out + enforcement
            out.extend(self._reenforce(acct, change.cause))
        for rule in self._by_kind[kind]:
            found = rule.evaluate(ctx, acct, change)
            if found:
                out.extend(found)
        warn = self._warn[kind]
        if warn:
            found = self._ladder(acct, change, warn)
            if found:
                out.extend(found)
        return out

    def _fail_closed(self, acct: AccountState, change: Change) -> list[Action] | None:
        """A contract without metadata (or a position without a direction): its risk cannot be measured,
        so close/cancel and say why."""
        cid = change.contract_id
        if cid is None:
            return None
        pos = acct.positions.get(cid)
        if cid in self.contracts:
            if pos is None or not change.grew or pos.type in (PositionType.LONG, PositionType.SHORT):
                return None
            aid = acct.account_id
            message = (f"position in {cid} has no direction (type {int(pos.type)}): its risk cannot be measured; "
                       "the engine closes it (fail closed)")
            return [Action(ActionKind.CLOSE_POSITION, aid, (ENGINE_RULE,),
                           make_key(ActionKind.CLOSE_POSITION, aid, (ENGINE_RULE,), cid, change.cause),
                           contract_id=cid),
                    alert(aid, ENGINE_RULE, change.cause, message, AlertLevel.CRITICAL, contract_id=cid)]
        order = change.order_appeared
        if (pos is None or not change.grew) and order is None:
            return None
        aid = acct.account_id
        out: list[Action] = []
        if pos is not None:
            out.append(Action(ActionKind.CLOSE_POSITION, aid, (ENGINE_RULE,),
                              make_key(ActionKind.CLOSE_POSITION, aid, (ENGINE_RULE,), cid, change.cause),
                              contract_id=cid))
        if order is not None:
            out.append(Action(ActionKind.CANCEL_ORDERS, aid, (ENGINE_RULE,),
                              make_key(ActionKind.CANCEL_ORDERS, aid, (ENGINE_RULE,), cid, change.cause),
                              contract_id=cid, order_id=order.id))
        if cid not in acct.flagged:
            acct.flagged.add(cid)
            message = (f"no contract metadata for {cid}: tick size and value are unknown, so its risk cannot be "
                       "measured; the engine closes it (fail closed). Add the contract to the catalogue.")
            out.append(alert(aid, ENGINE_RULE, change.cause, message, AlertLevel.CRITICAL, contract_id=cid))
        return out

    def _applies(self, lock: Lock, symbol: str | None) -> bool:
        if not lock.applies_to(symbol):
            return False
        if lock.kind is LockKind.UNTIL_SESSION and lock.symbol is None and symbol is not None:
            # An account-wide session lock leaves symbols with their own windows alone.
            return symbol.upper() not in self.config.rules.session_block_outside.symbol_sessions
        return True

    def _holding_locks(self, acct: AccountState, symbol: str | None) -> list[Lock]:
        return [lock for lock in acct.locks.values() if self._applies(lock, symbol)]

    def _lock_check(self, acct: AccountState, change: Change) -> list[Action] | None:
        """Enforcement of active locks: a new/grown position is closed, a new working order cancelled."""
        cid = change.contract_id
        aid = acct.account_id
        if change.kind is ChangeKind.POSITION and cid is not None:
            locks = self._holding_locks(acct, self._symbol(acct, cid))
            if not locks:
                return None
            rules = tuple(sorted({r for lock in locks for r in lock.rules}))
            pos = acct.positions.get(cid)
            if change.grew and pos is not None:
                return [Action(ActionKind.CLOSE_POSITION, aid, rules,
                               make_key(ActionKind.CLOSE_POSITION, aid, rules, cid, change.cause),
                               contract_id=cid, symbol=pos.symbol, message="locked: no new positions")]
            if change.closed and any(o.contract_id == cid for o in acct.orders.values()):
                return [Action(ActionKind.CANCEL_ORDERS, aid, rules,
                               make_key(ActionKind.CANCEL_ORDERS, aid, rules, cid, change.cause),
                               contract_id=cid, message="locked: position closed, its orders are cancelled")]
            return None
        order = change.order_appeared
        if change.kind is ChangeKind.ORDER and order is not None:
            locks = self._holding_locks(acct, self._symbol(acct, order.contract_id))
            if not locks or acct.only_reduces(order):
                return None
            rules = tuple(sorted({r for lock in locks for r in lock.rules}))
            return [Action(ActionKind.CANCEL_ORDERS, aid, rules,
                           make_key(ActionKind.CANCEL_ORDERS, aid, rules, order.contract_id, change.cause,
                                    str(order.id)),
                           contract_id=order.contract_id, order_id=order.id, message="locked: no new orders")]
        return None

    def _reenforce(self, acct: AccountState, cause: str) -> list[Action]:
        """Locks imposed with a flatten keep closing what is still open (enforcement may have failed)."""
        if not acct.positions:
            return []
        out: list[Action] = []
        flattening = [lock for lock in acct.locks.values() if lock.flatten]
        if not flattening:
            return out
        targets: dict[str, set[str]] = {}
        for pos in acct.positions.values():
            for lock in flattening:
                if self._applies(lock, pos.symbol):
                    targets.setdefault(pos.contract_id, set()).update(lock.rules)
        aid = acct.account_id
        if targets and len(targets) == len(acct.positions):
            rules = tuple(sorted({r for rs in targets.values() for r in rs}))
            return [Action(ActionKind.FLATTEN_ACCOUNT, aid, rules,
                           make_key(ActionKind.FLATTEN_ACCOUNT, aid, rules, None, cause), message="locked")]
        for cid, rule_set in sorted(targets.items()):
            rules = tuple(sorted(rule_set))
            out.append(Action(ActionKind.CLOSE_POSITION, aid, rules,
                              make_key(ActionKind.CLOSE_POSITION, aid, rules, cid, cause), contract_id=cid,
                              message="locked"))
        return out

    def _ladder(self, acct: AccountState, change: Change,
                warn: list[tuple[Rule[Any], float, float]]) -> list[Action]:
        """Alerts ladder: one alert when a value crosses warn_at of its limit; re-armed below warn_at − 0.1."""
        out: list[Action] = []
        disarmed = acct.alerts_disarmed
        for rule, warn_at, rearm in warn:
            usage = rule.usage(self.ctx, acct)
            if usage is not None and usage < warn_at and (not disarmed or usage >= rearm):
                continue  # nothing near the limit and nothing to re-arm: the common case, kept cheap
            for m in rule.measures(self.ctx, acct):
                fraction = m.fraction
                if fraction < warn_at:
                    if disarmed and fraction < rearm:
                        disarmed.discard(f"{rule.rule_id}|{m.label}")
                    continue
                key = f"{rule.rule_id}|{m.label}"
                if key in disarmed:
                    continue
                disarmed.add(key)
                if fraction < 1.0:
                    message = (f"{rule.name}: {m.label} at {fraction:.0%} of the limit "
                               f"({m.value:,.2f} of {m.limit:,.2f})")
                    out.append(alert(acct.account_id, rule.rule_id, change.cause, message, AlertLevel.WARNING,
                                     m.contract_id, f"warn:{m.label}"))
        return out

    # --- output: merge, de-duplicate, book-keep --------------------------------------------------

    def _finish(self, actions: list[Action]) -> list[Action]:
        """De-duplicate each rule's requests against what was already asked, then merge, then book locks.

        Filtering happens before merging, on the keys the rules built, so a rule finds its own
        request in the memo whatever it was merged with."""
        if not actions:
            return actions
        now = self.ctx.now
        kept: list[Action] = []
        touched: set[int] = set()
        for action in actions:
            kind = action.kind
            if kind is ActionKind.LOCK or kind is ActionKind.UNLOCK:
                kept.append(action)
                continue
            acct = self._account(action.account_id)
            if kind in _ONE_SHOT or "|timer:" in action.idempotency_key:
                # broker checks, stops we place or move, and everything a timer caused: once per key
                if action.idempotency_key in acct.memo:
                    continue
                acct.memo[action.idempotency_key] = now
                touched.add(acct.account_id)
            elif not (kind is ActionKind.ALERT and action.level is not AlertLevel.CRITICAL):
                sig = self._signature(acct, action)
                seen = acct.memo.get(sig)
                if seen is not None and now - seen < RETRY_AFTER:
                    continue
                acct.memo[sig] = now
            kept.append(action)
        out = merge_actions(kept)
        for i, action in enumerate(out):
            if action.kind is ActionKind.LOCK and action.lock is not None:
                out[i] = self._record_lock(self._account(action.account_id), action)
                touched.add(action.account_id)
        if touched:
            for aid in touched:
                self._refresh_due(self.accounts[aid])
            self._recompute_due(now)
        return out

    def _signature(self, acct: AccountState, action: Action) -> str:
        """What an enforcement is about: the same request for an unchanged situation is not repeated
        within RETRY_AFTER (it is still being executed), whatever event re-saw the breach. The growth
        number is part of the situation (a position grown again is a new one); the last fill id is not:
        the fills of our own flatten or reduction would otherwise make each of them ask again."""
        cid = action.contract_id
        if cid is not None:
            pos = acct.positions.get(cid)
            situation = "flat" if pos is None else f"{pos.position_id}:{pos.size}:{int(pos.type)}:{pos.growth_seq}"
            if action.kind is ActionKind.CANCEL_ORDERS:
                situation += ":" + ",".join(str(o) for o in sorted(o.id for o in acct.orders.values()
                                                                   if o.contract_id == cid))
        else:
            situation = ";".join(f"{p.contract_id}:{p.position_id}:{p.size}:{int(p.type)}:{p.growth_seq}"
                                 for p in acct.positions.values())
            if action.kind is ActionKind.CANCEL_ORDERS:
                situation += ":" + ",".join(str(o) for o in sorted(acct.orders))
        if action.kind is ActionKind.ALERT and ENGINE_RULE in action.rules:
            situation += f"|{action.message}"  # the engine's own alerts differ by what they report
        return (f"sig|{action.kind.value}|{'+'.join(action.rules)}|{cid or '-'}|{action.size}|{action.order_id}|"
                f"{action.level.value if action.level else ''}|{situation}")

    def _record_lock(self, acct: AccountState, action: Action) -> Action:
        lock = action.lock
        assert lock is not None
        key = (lock.kind, lock.symbol)
        existing = acct.locks.get(key)
        if existing is not None:
            rules = tuple(sorted(set(existing.rules) | set(lock.rules)))
            longer = existing if (existing.until is None or (lock.until is not None and existing.until >= lock.until)
                                  ) else lock
            lock = replace(longer, rules=rules, flatten=existing.flatten or lock.flatten)
            action = replace(action, lock=lock)
        acct.locks[key] = lock
        return action

    def _unlock_action(self, acct: AccountState, lock: Lock, why: str, cause: str) -> Action:
        detail = f"{lock.kind.value}:{lock.symbol or '*'}:{format_time(lock.start)}"
        return Action(ActionKind.UNLOCK, acct.account_id, lock.rules,
                      make_key(ActionKind.UNLOCK, acct.account_id, lock.rules, None, cause, detail),
                      lock=lock, message=f"lock {lock.kind.value} ended: {why}", symbol=lock.symbol,
                      level=AlertLevel.INFO)

    def _end_locks(self, acct: AccountState, kind: LockKind, why: str, cause: str) -> list[Action]:
        out = []
        for key, lock in list(acct.locks.items()):
            if lock.kind is kind:
                del acct.locks[key]
                out.append(self._unlock_action(acct, lock, why, cause))
        return out

    # --- time ------------------------------------------------------------------------------------

    def _due(self, now: float) -> list[Action]:
        out: list[Action] = []
        if self._next_reset is None:
            self._next_reset = self.calendar.next_reset(now)
        elif now >= self._next_reset:
            day = self.calendar.trading_day(now)
            for acct in self.accounts.values():
                acct.roll_day(day)
                self._refresh_due(acct)
            self._next_reset = self.calendar.next_reset(now)
        for acct in self.accounts.values():
            due = self._acct_due.get(acct.account_id)
            if due is not None and now < due:
                continue
            for key, lock in list(acct.locks.items()):
                if lock.until is not None and lock.until.timestamp() <= now:
                    del acct.locks[key]
                    out.append(self._unlock_action(acct, lock, "its time is up",
                                                   f"timer:lock:{format_time(lock.until)}"))
            for rule in self._timed:
                out.extend(rule.on_time(self.ctx, acct))
            self._refresh_due(acct)
        out.extend(self._session_ends(now))
        self._recompute_due(now)
        return out

    def _session_ends(self, now: float) -> list[Action]:
        rule, book = self._session_rule, self.sessions
        if rule is None or book is None or not rule.config.flatten_at_end:
            return []
        grace = rule.config.grace.total_seconds()
        out: list[Action] = []
        for scope, schedule in book.scopes():
            key = scope or "*"
            if key not in self._session_pending:
                self._session_pending[key] = schedule.next_end(now - grace)
            pending = self._session_pending[key]
            if pending is None or now < pending + grace:
                continue
            latest = pending
            nxt = schedule.next_end(pending)
            while nxt is not None and now >= nxt + grace:
                latest, nxt = nxt, schedule.next_end(nxt)
            self._session_pending[key] = nxt
            if schedule.is_open(now):
                continue  # the clock jumped into the next session: nothing to flatten any more
            for acct in self.accounts.values():
                out.extend(rule.session_end(self.ctx, acct, scope, latest))
        return out

    def _refresh_due(self, acct: AccountState) -> None:
        best = _NEVER
        for lock in acct.locks.values():
            if lock.until is not None:
                best = min(best, lock.until.timestamp())
        for rule in self._timed:
            d = rule.deadline(self.ctx, acct)
            if d is not None:
                best = min(best, d)
        self._acct_due[acct.account_id] = best
        if self._due_at is not None and best < self._due_at:
            self._due_at = best

    def _recompute_due(self, now: float) -> None:
        best = _NEVER
        if self._next_reset is None:
            self._next_reset = self.calendar.next_reset(now)
        best = min(best, self._next_reset)
        for due in self._acct_due.values():
            best = min(best, due)
        rule, book = self._session_rule, self.sessions
        if rule is not None and book is not None and rule.config.flatten_at_end:
            grace = rule.config.grace.total_seconds()
            for scope, schedule in book.scopes():
                key = scope or "*"
                if key not in self._session_pending:
                    self._session_pending[key] = schedule.next_end(now - grace)
                pending = self._session_pending[key]
                if pending is not None:
                    best = min(best, pending + grace)
        self._due_at = best

    # --- commands --------------------------------------------------------------------------------

    def _stops_checked(self, cmd: StopsChecked, now: float) -> list[Action]:
        acct = self._account(cmd.account_id)
        if cmd.open_order_ids is not None:
            acct.drop_orders_not_in(cmd.contract_id, set(cmd.open_order_ids), now)
        if self._grace is None:
            return []
        pos = acct.positions.get(cmd.contract_id)
        if pos is not None:
            acct.memo[ANSWERED + (cmd.check_key or self._grace.check_key(acct, pos))] = now
        sig = "none" if pos is None else f"{pos.position_id}:{pos.size}"
        cause = f"stops_checked:{cmd.contract_id}:{cmd.check_key or sig}:{'ok' if cmd.ok_broker else 'unreachable'}"
        out = self._grace.stops_checked(self.ctx, acct, cmd.contract_id, cmd.ok_broker, cause)
        self._refresh_due(acct)
        return out

    def _reconciled(self, cmd: Reconciled, now: float) -> list[Action]:
        """Drop positions and orders the broker no longer lists; closes are judged like any other."""
        acct = self._account(cmd.account_id)
        acct.drop_orders_not_in(None, set(cmd.open_order_ids), now)
        out: list[Action] = []
        listed = set(cmd.open_contract_ids)
        for cid in sorted(set(acct.positions) - listed):
            gone = acct.positions[cid]
            growth, fill = acct.occurrence(gone)
            change = Change(ChangeKind.POSITION, f"reconciled:{gone.position_id}:0:{growth}:{fill}", cid)
            acct.apply_position(Position(gone.position_id, acct.account_id, cid, self.ctx.now_dt, gone.type, 0,
                                         gone.average_price), UserEventAction.DELETE, now, None, None, change)
            self._holders.get(cid, set()).discard(acct.account_id)
            out.extend(self._evaluate(acct, change))
        self._refresh_due(acct)
        return out

    def _manual_lock(self, cmd: ManualLock) -> list[Action]:
        acct = self._account(cmd.account_id)
        now = self.ctx.now_dt
        until = now + cmd.duration
        symbol = cmd.symbol.upper() if cmd.symbol else None
        lock = Lock(account_id=cmd.account_id, kind=LockKind.MANUAL, reason=f"{cmd.reason} (by {cmd.by})",
                    start=now, until=until, symbol=symbol, rules=(ADMIN_RULE,), flatten=cmd.flatten, by=cmd.by)
        cause = f"manual:{cmd.by}:{format_time(now)}"
        aid = cmd.account_id
        out = [Action(ActionKind.LOCK, aid, (ADMIN_RULE,), make_key(ActionKind.LOCK, aid, (ADMIN_RULE,), None, cause,
                                                                    f"manual:{symbol or '*'}"),
                      lock=lock, message=lock.reason, symbol=symbol)]
        if cmd.flatten:
            out += self._reenforce_after(acct, lock, cause)
        return out

    def _reenforce_after(self, acct: AccountState, lock: Lock, cause: str) -> list[Action]:
        acct.locks[(lock.kind, lock.symbol)] = lock
        try:
            return self._reenforce(acct, cause)
        finally:
            del acct.locks[(lock.kind, lock.symbol)]

    def _clear_lock(self, cmd: ClearLock) -> list[Action]:
        if not self.config.admin.allow_manual_unlock:
            raise UnlockNotAllowedError(cmd.account_id)
        acct = self._account(cmd.account_id)
        symbol = cmd.symbol.upper() if cmd.symbol else None
        out = []
        for key, lock in list(acct.locks.items()):
            if (cmd.kind is None or lock.kind is cmd.kind) and (symbol is None or lock.symbol == symbol):
                del acct.locks[key]
                why = f"cleared by {cmd.by}" + (f": {cmd.reason}" if cmd.reason else "")
                out.append(self._unlock_action(acct, lock, why, f"clear:{cmd.by}:{format_time(self.ctx.now_dt)}"))
        self._refresh_due(acct)
        return out

    def _reset_account(self, cmd: ResetAccount) -> list[Action]:
        acct = self._account(cmd.account_id)
        acct.first_balance = cmd.starting_balance if cmd.starting_balance is not None else acct.balance
        acct.eod_high = None
        acct.loss_streak = 0
        message = (f"trailing drawdown tracking reset by {cmd.by}; starting balance {acct.first_balance}"
                   + (f": {cmd.reason}" if cmd.reason else ""))
        return [alert(cmd.account_id, ADMIN_RULE, f"reset:{cmd.by}:{format_time(self.ctx.now_dt)}", message,
                      AlertLevel.INFO)]

    # --- read side -------------------------------------------------------------------------------

    def account_ids(self) -> list[int]:
        return sorted(self.accounts)

    def watched_contracts(self) -> list[str]:
        """Contracts with an open position or a working order: the market-hub subscriptions P&L needs."""
        found = {cid for cid, holders in self._holders.items() if holders}
        for acct in self.accounts.values():
            found.update(o.contract_id for o in acct.orders.values())
        return sorted(found)

    def locks(self, account_id: int) -> list[Lock]:
        acct = self.accounts.get(account_id)
        if acct is None:
            return []
        return sorted(acct.locks.values(), key=lambda lock: (lock.kind.value, lock.symbol or ""))

    def status(self, account_id: int) -> AccountStatus:
        now = self.clock.timestamp()
        self.ctx.set_now(now)
        acct = self.accounts.get(account_id) or AccountState(account_id)
        day = self.calendar.trading_day(now)
        totals = acct.totals(day.isoformat())
        positions = tuple(
            PositionStatus(p.contract_id, p.symbol, _side(p), p.size, p.average_price, self.prices.get(p.contract_id),
                           p.open_pnl, stop_coverage(acct.orders, p))
            for p in sorted(acct.positions.values(), key=lambda p: p.contract_id))
        rules = tuple(RuleStatus(m.rule_id, rule.name, m.label, m.value, m.limit, m.fraction, m.contract_id)
                      for rule in self.rules for m in rule.measures(self.ctx, acct))
        session_open: bool | None = None
        boundary: datetime | None = None
        if self.sessions is not None:
            schedule = self.sessions.default
            session_open = schedule.is_open(now)
            b = schedule.current_end(now) if session_open else schedule.next_start(now)
            boundary = None if b is None else datetime.fromtimestamp(b, UTC)
        locks = tuple(self.locks(account_id))
        return AccountStatus(
            account_id=account_id, name=acct.name, balance=acct.balance, can_trade=acct.can_trade,
            trading_day=day.isoformat(), positions=positions, open_pnl=acct.open_pnl, realized_pnl=totals.realized,
            fees=totals.fees, net_pnl=totals.realized - totals.fees + acct.open_pnl, trades_today=totals.trades,
            rules=rules, enabled_rules=tuple(r.rule_id for r in self.rules), locks=locks, locked=bool(locks),
            next_reset=datetime.fromtimestamp(self.calendar.next_reset(now), UTC), session_open=session_open,
            session_boundary=boundary,
            unknown_contracts=tuple(sorted(p.contract_id for p in acct.positions.values()
                                           if p.contract_id not in self.contracts)),
        )

    # --- snapshot / restore ----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this engine is: JSON-serialisable."""
        return {
            "version": SNAPSHOT_VERSION,
            "accounts": [self.accounts[aid].to_json() for aid in sorted(self.accounts)],
            "quotes": {cid: q.to_wire() for cid, q in sorted(self.quotes.items())},
            "prices": dict(sorted(self.prices.items())),
            "session_pending": dict(sorted(self._session_pending.items())),
            "next_reset": self._next_reset,
            "calendar": self._calendar_fingerprint(),
            "contracts": [info.contract.to_wire() for info in self._runtime_contracts()],
        }

    def _calendar_fingerprint(self) -> str:
        rules = self.config.rules
        return (self.config.daily_reset.model_dump_json() + self.config.timezone
                + rules.session_block_outside.model_dump_json())

    def _runtime_contracts(self) -> list[ContractInfo]:
        return [i for cid in sorted({c for c in self._holders} | set(self.quotes))
                if (i := self.contracts.find(cid)) is not None]

    @classmethod
    def restore(cls, snapshot: Mapping[str, Any], config: RiskConfig, clock: Clock,
                contracts: ContractBook | Catalogue | Mapping[str, Contract] | Iterable[Contract] | None = None
                ) -> Engine:
        """An engine continuing from `snapshot` under `config` (which may differ: locks and state are kept)."""
        if snapshot.get("version") != SNAPSHOT_VERSION:
            raise SnapshotError(f"engine snapshot version {snapshot.get('version')!r} is not supported "
                                f"(expected {SNAPSHOT_VERSION}); start without it and let reconciliation rebuild")
        engine = cls(config, clock, contracts)
        try:
            for raw in snapshot.get("contracts", []):
                if Contract.from_wire(raw).id not in engine.contracts:
                    engine.contracts.register(Contract.from_wire(raw))
            for raw in snapshot["accounts"]:
                acct = AccountState.from_json(raw)
                engine.accounts[acct.account_id] = acct
                for cid in acct.positions:
                    engine._holders.setdefault(cid, set()).add(acct.account_id)
            engine.quotes = {cid: Quote.from_wire(q) for cid, q in snapshot["quotes"].items()}
            engine.prices.update({cid: float(p) for cid, p in snapshot["prices"].items()})
            if snapshot.get("calendar") == engine._calendar_fingerprint():
                # same reset time and sessions: continue the timers exactly; otherwise recompute them
                engine._session_pending = dict(snapshot["session_pending"])
                engine._next_reset = snapshot["next_reset"]
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"engine snapshot is damaged ({type(exc).__name__}: {exc}); start without it and "
                                "let reconciliation rebuild") from None
        engine.ctx.set_now(clock.timestamp())
        for acct in engine.accounts.values():
            engine._refresh_due(acct)
        return engine


def _side(pos: PositionState) -> str:
    if pos.type == PositionType.LONG:
        return "long"
    if pos.type == PositionType.SHORT:
        return "short"
    return "undefined"

