"""The 14 rules of rules.md, one module each. `build_rules(config.rules)` gives the enabled ones in order."""

from __future__ import annotations

from typing import Any

from risk_manager.engine.config import RulesConfig
from risk_manager.engine.rules.auth_loss_guard import AuthLossGuard
from risk_manager.engine.rules.base import Measure, Rule, RuleContext
from risk_manager.engine.rules.cooldown_after_loss import CooldownAfterLoss
from risk_manager.engine.rules.daily_realized_loss import DailyRealizedLoss
from risk_manager.engine.rules.daily_realized_profit import DailyRealizedProfit
from risk_manager.engine.rules.daily_unrealized_loss import DailyUnrealizedLoss
from risk_manager.engine.rules.max_contracts import MaxContracts
from risk_manager.engine.rules.max_contracts_per_instrument import MaxContractsPerInstrument
from risk_manager.engine.rules.max_unrealized_profit import MaxUnrealizedProfit
from risk_manager.engine.rules.no_stop_loss_grace import NoStopLossGrace
from risk_manager.engine.rules.session_block_outside import SessionBlockOutside
from risk_manager.engine.rules.symbol_blocks import SymbolBlocks
from risk_manager.engine.rules.trade_frequency_limit import TradeFrequencyLimit
from risk_manager.engine.rules.trade_management import TradeManagement
from risk_manager.engine.rules.trailing_max_loss import TrailingMaxLoss

RULE_CLASSES: dict[str, type[Rule[Any]]] = {
    "max_contracts": MaxContracts,
    "max_contracts_per_instrument": MaxContractsPerInstrument,
    "daily_realized_loss": DailyRealizedLoss,
    "daily_unrealized_loss": DailyUnrealizedLoss,
    "max_unrealized_profit": MaxUnrealizedProfit,
    "trade_frequency_limit": TradeFrequencyLimit,
    "cooldown_after_loss": CooldownAfterLoss,
    "no_stop_loss_grace": NoStopLossGrace,
    "session_block_outside": SessionBlockOutside,
    "auth_loss_guard": AuthLossGuard,
    "symbol_blocks": SymbolBlocks,
    "trade_management": TradeManagement,
    "daily_realized_profit": DailyRealizedProfit,
    "trailing_max_loss": TrailingMaxLoss,
}


def build_rules(rules: RulesConfig) -> list[Rule[Any]]:
    """Instances of the enabled rules, in RULE-001 … RULE-014 order."""
    return [cls(getattr(rules, name)) for name, cls in RULE_CLASSES.items() if getattr(rules, name).enabled]


__all__ = ["RULE_CLASSES", "Measure", "Rule", "RuleContext", "build_rules"]
