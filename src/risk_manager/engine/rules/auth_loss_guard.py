"""RULE-010 auth_loss_guard: the broker reports `canTrade: false` → flatten and lock until it is back."""

from __future__ import annotations

from risk_manager.engine.actions import Action, LockKind
from risk_manager.engine.config import AuthLossGuardConfig
from risk_manager.engine.rules.base import Rule, RuleContext, latched, lock_and_flatten
from risk_manager.engine.state import AccountState, Change, ChangeKind


class AuthLossGuard(Rule[AuthLossGuardConfig]):
    rule_id = "RULE-010"
    name = "auth_loss_guard"
    triggers = frozenset({ChangeKind.ACCOUNT})

    def evaluate(self, ctx: RuleContext, account: AccountState, change: Change) -> list[Action]:
        if account.can_trade is not False or latched(account, self.rule_id):
            return []
        reason = "the broker reports the account cannot trade (canTrade: false); locked until it can again"
        return lock_and_flatten(ctx, account.account_id, self.rule_id, change.cause, LockKind.UNTIL_CAN_TRADE,
                                None, reason)
