"""RULE-011 symbol_blocks: positions and orders in blocked symbols are closed/cancelled; the symbol is locked."""

from __future__ import annotations

from fnmatch import fnmatchcase

from risk_manager.engine.actions import Action, LockKind
from risk_manager.engine.config import SymbolBlocksConfig
from risk_manager.engine.rules.base import Rule, RuleContext, alert, cancel, close, latched, lock
from risk_manager.engine.state import AccountState, Change, ChangeKind


class SymbolBlocks(Rule[SymbolBlocksConfig]):
    rule_id = "RULE-011"
    name = "symbol_blocks"
    triggers = frozenset({ChangeKind.POSITION, ChangeKind.ORDER})

    def __init__(self, config: SymbolBlocksConfig) -> None:
        super().__init__(config)
        self._cache: dict[str, bool] = {}

    def blocked(self, symbol: str) -> bool:
        hit = self._cache.get(symbol)
        if hit is None:
            hit = self._cache[symbol] = any(fnmatchcase(symbol.upper(), p) for p in self.config.blocked)
        return hit

    def evaluate(self, ctx: RuleContext, account: AccountState, change: Change) -> list[Action]:
        cid = change.contract_id
        if cid is None:
            return []
        pos = account.positions.get(cid)
        order = change.order_appeared
        if change.kind is ChangeKind.POSITION and (pos is None or change.shrank):
            return []
        if change.kind is ChangeKind.ORDER and (order is None or account.only_reduces(order)):
            return []  # closing what is open is always allowed
        info = ctx.contracts.find(cid)
        if info is None or not self.blocked(info.symbol) or latched(account, self.rule_id, info.symbol):
            return []
        symbol, aid, cause = info.symbol, account.account_id, change.cause
        reason = f"{symbol} is on the block list; it may not be traded"
        out = [lock(ctx, aid, self.rule_id, cause, LockKind.SYMBOL, None, reason, flatten_positions=True,
                    symbol=symbol),
               cancel(aid, self.rule_id, cause, contract_id=cid)]
        if pos is not None:
            out.append(close(aid, self.rule_id, cause, pos))
        out.append(alert(aid, self.rule_id, cause, reason, contract_id=cid))
        return out
