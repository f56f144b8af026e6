"""RULE-003 daily_realized_loss: the hard stop for the trading day."""

from __future__ import annotations

from risk_manager.engine.actions import Action, LockKind
from risk_manager.engine.config import DailyRealizedLossConfig
from risk_manager.engine.rules.base import Measure, Rule, RuleContext, latched, lock_and_flatten, money
from risk_manager.engine.state import AccountState, Change, ChangeKind


class DailyRealizedLoss(Rule[DailyRealizedLossConfig]):
    rule_id = "RULE-003"
    name = "daily_realized_loss"

    def __init__(self, config: DailyRealizedLossConfig) -> None:
        super().__init__(config)
        self._seen: tuple[int, float] = (-1, 0.0)  # (ctx.serial, value) of the last evaluate
        kinds = {ChangeKind.TRADE, ChangeKind.POSITION}
        if config.include_unrealized:
            kinds.add(ChangeKind.QUOTE)
        self.triggers = frozenset(kinds)  # type: ignore[misc]

    def value(self, ctx: RuleContext, account: AccountState) -> float:
        totals = account.totals(ctx.today_key())
        value = totals.realized - (totals.fees if self.config.include_fees else 0.0)
        if self.config.include_unrealized:
            value += account.open_pnl
        return round(value, 2)   # money in cents: a sum of floats must not miss a limit reached exactly

    def evaluate(self, ctx: RuleContext, account: AccountState, change: Change) -> list[Action]:
        limit = self.config.loss_limit
        if limit is None or latched(account, self.rule_id):
            return []
        value = self.value(ctx, account)
        self._seen = (ctx.serial, value)
        if value > -limit:
            return []
        what = "net P&L" if self.config.include_unrealized else "realized P&L"
        reason = f"daily loss limit reached: {what} {money(value)} (limit -{money(limit)[1:]}); locked until the reset"
        return lock_and_flatten(ctx, account.account_id, self.rule_id, change.cause, LockKind.UNTIL_RESET,
                                ctx.next_reset_dt(), reason)

    def usage(self, ctx: RuleContext, account: AccountState) -> float | None:
        limit = self.config.loss_limit
        if limit is None:
            return None
        serial, value = self._seen
        if serial != ctx.serial:
            value = self.value(ctx, account)
        return max(0.0, -value) / limit

    def measures(self, ctx: RuleContext, account: AccountState) -> list[Measure]:
        limit = self.config.loss_limit
        if limit is None:
            return []
        value = self.value(ctx, account)
        return [Measure(self.rule_id, "daily loss", value, limit, max(0.0, -value) / limit)]
