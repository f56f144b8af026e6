"""RULE-004 daily_unrealized_loss: per-position stop on open P&L."""

from __future__ import annotations

from risk_manager.engine.actions import Action
from risk_manager.engine.config import DailyUnrealizedLossConfig
from risk_manager.engine.rules.base import Measure, Rule, RuleContext, alert, close, money
from risk_manager.engine.state import AccountState, Change, ChangeKind


class DailyUnrealizedLoss(Rule[DailyUnrealizedLossConfig]):
    rule_id = "RULE-004"
    name = "daily_unrealized_loss"
    triggers = frozenset({ChangeKind.QUOTE, ChangeKind.POSITION})

    def evaluate(self, ctx: RuleContext, account: AccountState, change: Change) -> list[Action]:
        limit = self.config.loss_limit
        if limit is None or change.contract_id is None:
            return []
        pos = account.positions.get(change.contract_id)
        if pos is None or pos.open_pnl is None or pos.open_pnl > -limit:
            return []
        message = f"{pos.symbol}: open loss {money(pos.open_pnl)} reached the per-position limit; closing it"
        return [close(account.account_id, self.rule_id, change.cause, pos),
                alert(account.account_id, self.rule_id, change.cause, message, contract_id=pos.contract_id)]

    def measures(self, ctx: RuleContext, account: AccountState) -> list[Measure]:
        limit = self.config.loss_limit
        if limit is None:
            return []
        return [Measure(self.rule_id, f"{p.symbol} open loss", p.open_pnl, limit, max(0.0, -p.open_pnl) / limit,
                        p.contract_id) for p in account.positions.values() if p.open_pnl is not None]
