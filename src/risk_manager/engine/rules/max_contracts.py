"""RULE-001 max_contracts: account-wide size (gross or net, micros weighted)."""

from __future__ import annotations

import math

from risk_manager.engine.actions import Action
from risk_manager.engine.config import MaxContractsConfig
from risk_manager.engine.rules.base import Measure, Rule, RuleContext, alert, flatten, fraction, reduce
from risk_manager.engine.state import AccountState, Change, ChangeKind, PositionState

_EPS = 1e-9


class MaxContracts(Rule[MaxContractsConfig]):
    rule_id = "RULE-001"
    name = "max_contracts"
    triggers = frozenset({ChangeKind.POSITION})

    def _weight(self, ctx: RuleContext, pos: PositionState) -> float:
        weight = self.config.micro_weight
        if weight == 1.0:
            return 1.0
        explicit = self.config.micro_symbols
        if explicit is not None:
            return weight if (pos.symbol or "") in {s.upper() for s in explicit} else 1.0
        info = ctx.contracts.find(pos.contract_id)
        return weight if info is not None and info.full_size is not None else 1.0

    def count(self, ctx: RuleContext, account: AccountState) -> float:
        if self.config.count_type == "gross":
            return sum(p.size * self._weight(ctx, p) for p in account.positions.values())
        return abs(sum(p.signed_size * self._weight(ctx, p) for p in account.positions.values()))

    def evaluate(self, ctx: RuleContext, account: AccountState, change: Change) -> list[Action]:
        limit = self.config.limit
        if limit is None or change.shrank or change.closed:
            return []
        count = self.count(ctx, account)
        if count <= limit + _EPS:
            return []
        aid, cause = account.account_id, change.cause
        message = f"{count:g} contracts open, above the account limit of {limit}"
        if self.config.action == "close_all":
            return [flatten(aid, self.rule_id, cause), alert(aid, self.rule_id, cause, message)]
        out: list[Action] = []
        excess = count - limit
        net_sign = 0
        if self.config.count_type == "net":
            net = sum(p.signed_size * self._weight(ctx, p) for p in account.positions.values())
            net_sign = 1 if net > 0 else -1
        for pos in sorted(account.positions.values(), key=lambda p: -p.growth_seq):
            if excess <= _EPS:
                break
            if net_sign and (pos.signed_size > 0) != (net_sign > 0):
                continue  # reducing the other side would raise the net count
            weight = self._weight(ctx, pos)
            cut = min(pos.size, math.ceil(excess / weight - _EPS))
            out.append(reduce(aid, self.rule_id, cause, pos, pos.size - cut))
            excess -= cut * weight
        out.append(alert(aid, self.rule_id, cause, message))
        return out

    def measures(self, ctx: RuleContext, account: AccountState) -> list[Measure]:
        limit = self.config.limit
        if limit is None:
            return []
        count = self.count(ctx, account)
        return [Measure(self.rule_id, "contracts", count, limit, fraction(count, limit))]
