"""RULE-014 trailing_max_loss: a shadow of the firm's end-of-day trailing maximum loss.

floor = min(end-of-day balance high − max_loss, starting balance); breach when
balance + open P&L ≤ floor + buffer. The end-of-day high is taken at each daily reset.
"""

from __future__ import annotations

from risk_manager.engine.actions import Action, LockKind
from risk_manager.engine.config import TrailingMaxLossConfig
from risk_manager.engine.rules.base import Measure, Rule, RuleContext, latched, lock_and_flatten, money
from risk_manager.engine.state import AccountState, Change, ChangeKind


class TrailingMaxLoss(Rule[TrailingMaxLossConfig]):
    rule_id = "RULE-014"
    name = "trailing_max_loss"
    triggers = frozenset({ChangeKind.ACCOUNT, ChangeKind.QUOTE, ChangeKind.POSITION, ChangeKind.TRADE})

    def __init__(self, config: TrailingMaxLossConfig) -> None:
        super().__init__(config)
        self._seen: tuple[int, float] = (-1, 0.0)  # (ctx.serial, usage) of the last evaluate

    def starting_balance(self, account: AccountState) -> float | None:
        return self.config.starting_balance if self.config.starting_balance is not None else account.first_balance

    def floor(self, account: AccountState) -> float | None:
        start, max_loss = self.starting_balance(account), self.config.max_loss
        if start is None or max_loss is None:
            return None
        high = start if account.eod_high is None else max(start, account.eod_high)
        return min(high - max_loss, start)

    def evaluate(self, ctx: RuleContext, account: AccountState, change: Change) -> list[Action]:
        floor = self.floor(account)
        if floor is None or account.balance is None or latched(account, self.rule_id):
            return []
        equity = account.balance + account.open_pnl
        trigger = floor + self.config.buffer
        if self.config.max_loss is not None:
            self._seen = (ctx.serial, max(0.0, floor + self.config.max_loss - equity)
                          / (self.config.max_loss - self.config.buffer))
        if equity > trigger:
            return []
        reason = (f"trailing max loss: equity {money(equity)} reached {money(trigger)} (floor {money(floor)}"
                  f" + buffer {money(self.config.buffer)}); locked until the reset")
        return lock_and_flatten(ctx, account.account_id, self.rule_id, change.cause, LockKind.UNTIL_RESET,
                                ctx.next_reset_dt(), reason)

    def usage(self, ctx: RuleContext, account: AccountState) -> float | None:
        if self._seen[0] == ctx.serial:
            return self._seen[1]
        floor, max_loss = self.floor(account), self.config.max_loss
        if floor is None or max_loss is None or account.balance is None:
            return 0.0
        used = floor + max_loss - (account.balance + account.open_pnl)
        return max(0.0, used) / (max_loss - self.config.buffer)

    def measures(self, ctx: RuleContext, account: AccountState) -> list[Measure]:
        floor, max_loss = self.floor(account), self.config.max_loss
        if floor is None or max_loss is None or account.balance is None:
            return []
        equity = account.balance + account.open_pnl
        return [Measure(self.rule_id, "drawdown to floor", equity, floor + self.config.buffer,
                        self.usage(ctx, account) or 0.0)]
