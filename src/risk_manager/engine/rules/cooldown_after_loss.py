"""RULE-007 cooldown_after_loss: a losing trade (by tier) or a losing streak → cooldown."""

from __future__ import annotations

from datetime import timedelta

from risk_manager.engine.actions import Action, LockKind
from risk_manager.engine.config import CooldownAfterLossConfig, format_duration
from risk_manager.engine.rules.base import (
    Measure,
    Rule,
    RuleContext,
    cooldown_until,
    fraction,
    latched,
    lock_and_flatten,
    money,
)
from risk_manager.engine.state import AccountState, Change, ChangeKind


class CooldownAfterLoss(Rule[CooldownAfterLossConfig]):
    rule_id = "RULE-007"
    name = "cooldown_after_loss"
    triggers = frozenset({ChangeKind.TRADE})

    def evaluate(self, ctx: RuleContext, account: AccountState, change: Change) -> list[Action]:
        trade = change.trade
        if trade is None or trade.profit_and_loss is None or trade.profit_and_loss >= 0:
            return []
        if latched(account, self.rule_id):
            return []
        loss = -trade.profit_and_loss
        cooldown: timedelta | None = None
        reasons = []
        for tier in self.config.tiers:
            if loss >= tier.loss:
                cooldown = tier.cooldown
                chosen = tier
        if cooldown is not None:
            reasons.append(f"losing trade {money(-loss)} (tier {money(chosen.loss)})")
        n = self.config.consecutive_losses
        if n is not None and account.loss_streak >= n and account.loss_streak % n == 0:
            reasons.append(f"{account.loss_streak} losing trades in a row")
            if cooldown is None or self.config.consecutive_cooldown > cooldown:
                cooldown = self.config.consecutive_cooldown
        if cooldown is None:
            return []
        until = cooldown_until(ctx, trade.creation_timestamp, cooldown)
        if until is None:
            return []
        reason = f"cooldown {format_duration(cooldown)} after {' and '.join(reasons)}"
        return lock_and_flatten(ctx, account.account_id, self.rule_id, change.cause, LockKind.COOLDOWN,
                                until, reason, flatten_positions=self.config.close_positions)

    def measures(self, ctx: RuleContext, account: AccountState) -> list[Measure]:
        n = self.config.consecutive_losses
        if n is None:
            return []
        streak = account.loss_streak % n if account.loss_streak else 0
        return [Measure(self.rule_id, "losing streak", streak, n, fraction(streak, n))]
