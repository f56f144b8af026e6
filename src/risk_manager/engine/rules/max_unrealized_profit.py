"""RULE-005 max_unrealized_profit: per-position take-profit."""

from __future__ import annotations

from risk_manager.engine.actions import Action
from risk_manager.engine.config import MaxUnrealizedProfitConfig
from risk_manager.engine.rules.base import Measure, Rule, RuleContext, alert, close, money
from risk_manager.engine.state import AccountState, Change, ChangeKind


class MaxUnrealizedProfit(Rule[MaxUnrealizedProfitConfig]):
    rule_id = "RULE-005"
    name = "max_unrealized_profit"
    triggers = frozenset({ChangeKind.QUOTE, ChangeKind.POSITION})

    def evaluate(self, ctx: RuleContext, account: AccountState, change: Change) -> list[Action]:
        target = self.config.target
        if target is None or change.contract_id is None:
            return []
        pos = account.positions.get(change.contract_id)
        if pos is None or pos.open_pnl is None or pos.open_pnl < target:
            return []
        message = f"{pos.symbol}: open profit {money(pos.open_pnl)} reached the target; closing it"
        return [close(account.account_id, self.rule_id, change.cause, pos),
                alert(account.account_id, self.rule_id, change.cause, message, contract_id=pos.contract_id)]

    def measures(self, ctx: RuleContext, account: AccountState) -> list[Measure]:
        target = self.config.target
        if target is None:
            return []
        return [Measure(self.rule_id, f"{p.symbol} open profit", p.open_pnl, target, max(0.0, p.open_pnl) / target,
                        p.contract_id) for p in account.positions.values() if p.open_pnl is not None]
