"""RULE-002 max_contracts_per_instrument: size per symbol root."""

from __future__ import annotations

from risk_manager.engine.actions import Action
from risk_manager.engine.config import MaxContractsPerInstrumentConfig
from risk_manager.engine.rules.base import Measure, Rule, RuleContext, alert, fraction, reduce
from risk_manager.engine.state import AccountState, Change, ChangeKind


class MaxContractsPerInstrument(Rule[MaxContractsPerInstrumentConfig]):
    rule_id = "RULE-002"
    name = "max_contracts_per_instrument"
    triggers = frozenset({ChangeKind.POSITION})

    def evaluate(self, ctx: RuleContext, account: AccountState, change: Change) -> list[Action]:
        if change.shrank or change.closed or change.contract_id is None:
            return []
        pos = account.positions.get(change.contract_id)
        if pos is None or pos.symbol is None:
            return []
        symbol = pos.symbol
        limit = self.config.limit_for(symbol)
        if limit is None:
            return []
        same = [p for p in account.positions.values() if p.symbol == symbol]
        total = sum(p.size for p in same)
        if total <= limit:
            return []
        aid, cause = account.account_id, change.cause
        out: list[Action] = []
        excess = total - limit
        for p in sorted(same, key=lambda p: -p.growth_seq):
            if excess <= 0:
                break
            cut = min(p.size, excess)
            out.append(reduce(aid, self.rule_id, cause, p, p.size - cut))
            excess -= cut
        why = "is not allowed" if limit == 0 else f"is limited to {limit}"
        out.append(alert(aid, self.rule_id, cause, f"{symbol}: {total} contracts open; {symbol} {why}",
                         contract_id=pos.contract_id))
        return out

    def measures(self, ctx: RuleContext, account: AccountState) -> list[Measure]:
        sizes: dict[str, int] = {}
        for p in account.positions.values():
            if p.symbol is not None:
                sizes[p.symbol] = sizes.get(p.symbol, 0) + p.size
        out = []
        for symbol, size in sorted(sizes.items()):
            limit = self.config.limit_for(symbol)
            if limit is not None:
                out.append(Measure(self.rule_id, f"{symbol} contracts", size, limit, fraction(size, limit)))
        return out
