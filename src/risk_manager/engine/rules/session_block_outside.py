"""RULE-009 session_block_outside: trade only inside the allowed windows.

A position that opens or grows, or an order that appears, outside every allowed window of its
symbol is a breach; so is the end of a session (with `flatten_at_end`, after `grace`). The
response is scoped: symbols with their own `symbol_sessions` are closed and locked on their own;
the others are closed and the account is locked `until_session` (the next start of the default
windows). The engine drives the end-of-session timer (`session_end`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from risk_manager.engine.actions import Action, LockKind
from risk_manager.engine.config import SessionBlockOutsideConfig
from risk_manager.engine.rules.base import Rule, RuleContext, alert, cancel, close, flatten, latched, lock
from risk_manager.engine.state import AccountState, Change, ChangeKind


class SessionBlockOutside(Rule[SessionBlockOutsideConfig]):
    rule_id = "RULE-009"
    name = "session_block_outside"
    triggers = frozenset({ChangeKind.POSITION, ChangeKind.ORDER})

    def scope_of(self, symbol: str) -> str | None:
        """The symbol when it has its own windows, else None (the default windows)."""
        return symbol if symbol in self.config.symbol_sessions else None

    def evaluate(self, ctx: RuleContext, account: AccountState, change: Change) -> list[Action]:
        cid, book = change.contract_id, ctx.sessions
        if cid is None or book is None:
            return []
        if change.kind is ChangeKind.POSITION and not change.grew:
            return []
        if change.kind is ChangeKind.ORDER and (change.order_appeared is None
                                                or account.only_reduces(change.order_appeared)):
            return []  # closing what is open is always allowed
        info = ctx.contracts.find(cid)
        if info is None:
            return []
        scope = self.scope_of(info.symbol)
        schedule = book.for_symbol(info.symbol)
        if schedule.is_open(ctx.now) or latched(account, self.rule_id, scope):
            return []
        what = "position" if change.kind is ChangeKind.POSITION else "order"
        reason = f"{info.symbol}: {what} outside the allowed trading session"
        return self.enforce(ctx, account, scope, change.cause, reason)

    def enforce(self, ctx: RuleContext, account: AccountState, scope: str | None, cause: str,
                reason: str) -> list[Action]:
        """Close and cancel everything trading on `scope`'s windows, lock it until they open again."""
        book = ctx.sessions
        assert book is not None
        schedule = book.default if scope is None else book.by_symbol[scope]
        start = schedule.next_start(ctx.now)
        until = None if start is None else datetime.fromtimestamp(start, UTC)
        when = "the next session" if until is None else f"{until.isoformat()}"
        aid = account.account_id
        out = [lock(ctx, aid, self.rule_id, cause, LockKind.UNTIL_SESSION, until, f"{reason}; locked until {when}",
                    flatten_positions=True, symbol=scope)]
        if scope is None and not self.config.symbol_sessions:
            out += [cancel(aid, self.rule_id, cause), flatten(aid, self.rule_id, cause)]
        else:
            for pos in account.positions.values():
                if pos.symbol is not None and self.scope_of(pos.symbol) == scope:
                    out.append(close(aid, self.rule_id, cause, pos))
            contracts = sorted({o.contract_id for o in account.orders.values()})
            for contract_id in contracts:
                info = ctx.contracts.find(contract_id)
                if info is not None and self.scope_of(info.symbol) == scope:
                    out.append(cancel(aid, self.rule_id, cause, contract_id=contract_id))
        out.append(alert(aid, self.rule_id, cause, reason))
        return out

    def session_end(self, ctx: RuleContext, account: AccountState, scope: str | None, end: float) -> list[Action]:
        """The session of `scope` ended at `end` (and its grace has run out)."""
        if latched(account, self.rule_id, scope):
            return []
        cause = f"timer:session_end:{scope or '*'}:{end:.0f}"
        label = scope or "the trading"
        return self.enforce(ctx, account, scope, cause, f"{label} session ended")
