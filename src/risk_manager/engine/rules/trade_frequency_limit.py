"""RULE-006 trade_frequency_limit: too many fills per minute / hour / trading day → cooldown."""

from __future__ import annotations

from datetime import timedelta

from risk_manager.engine.actions import Action, LockKind
from risk_manager.engine.config import TradeFrequencyLimitConfig, format_duration
from risk_manager.engine.rules.base import (
    Measure,
    Rule,
    RuleContext,
    cooldown_until,
    fraction,
    latched,
    lock_and_flatten,
)
from risk_manager.engine.state import AccountState, Change, ChangeKind


class TradeFrequencyLimit(Rule[TradeFrequencyLimitConfig]):
    rule_id = "RULE-006"
    name = "trade_frequency_limit"
    triggers = frozenset({ChangeKind.TRADE})

    def counts(self, ctx: RuleContext, account: AccountState) -> list[tuple[str, int, int, timedelta]]:
        """(window, count, limit, cooldown) for each configured window."""
        c = self.config
        out = []
        if c.per_minute is not None:
            out.append(("per_minute", account.trades_since(ctx.now - 60.0), c.per_minute, c.cooldowns.per_minute))
        if c.per_hour is not None:
            out.append(("per_hour", account.trades_since(ctx.now - 3600.0), c.per_hour, c.cooldowns.per_hour))
        if c.per_session is not None:
            out.append(("per_session", account.totals(ctx.today_key()).trades, c.per_session, c.cooldowns.per_session))
        return out

    def evaluate(self, ctx: RuleContext, account: AccountState, change: Change) -> list[Action]:
        if change.trade is None or latched(account, self.rule_id):
            return []
        breached = [w for w in self.counts(ctx, account) if w[1] > w[2]]
        if not breached:
            return []
        window, count, limit, cooldown = max(breached, key=lambda w: w[3])
        until = cooldown_until(ctx, change.trade.creation_timestamp, cooldown)
        if until is None:
            return []
        reason = (f"overtrading: {count} fills {window.replace('_', ' ')} (limit {limit}); "
                  f"cooldown {format_duration(cooldown)}")
        return lock_and_flatten(ctx, account.account_id, self.rule_id, change.cause, LockKind.COOLDOWN, until,
                                reason, flatten_positions=self.config.close_positions)

    def measures(self, ctx: RuleContext, account: AccountState) -> list[Measure]:
        return [Measure(self.rule_id, f"fills {w.replace('_', ' ')}", n, lim, fraction(n, lim))
                for w, n, lim, _ in self.counts(ctx, account)]
