"""RULE-013 daily_realized_profit: done for the day once the realized target is reached."""

from __future__ import annotations

from risk_manager.engine.actions import Action, LockKind
from risk_manager.engine.config import DailyRealizedProfitConfig
from risk_manager.engine.rules.base import Measure, Rule, RuleContext, latched, lock_and_flatten, money
from risk_manager.engine.state import AccountState, Change, ChangeKind


class DailyRealizedProfit(Rule[DailyRealizedProfitConfig]):
    rule_id = "RULE-013"
    name = "daily_realized_profit"
    triggers = frozenset({ChangeKind.TRADE})

    def value(self, ctx: RuleContext, account: AccountState) -> float:
        totals = account.totals(ctx.today_key())
        return round(totals.realized - (totals.fees if self.config.include_fees else 0.0), 2)   # cents, as RULE-003

    def evaluate(self, ctx: RuleContext, account: AccountState, change: Change) -> list[Action]:
        target = self.config.target
        if target is None or latched(account, self.rule_id):
            return []
        value = self.value(ctx, account)
        if value < target:
            return []
        reason = f"{self.config.message} (realized {money(value)}, target {money(target)}); locked until the reset"
        return lock_and_flatten(ctx, account.account_id, self.rule_id, change.cause, LockKind.UNTIL_RESET,
                                ctx.next_reset_dt(), reason)

    def usage(self, ctx: RuleContext, account: AccountState) -> float | None:
        target = self.config.target
        return None if target is None else max(0.0, self.value(ctx, account)) / target

    def measures(self, ctx: RuleContext, account: AccountState) -> list[Measure]:
        target = self.config.target
        if target is None:
            return []
        value = self.value(ctx, account)
        return [Measure(self.rule_id, "daily profit", value, target, max(0.0, value) / target)]
