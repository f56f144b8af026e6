"""RULE-012 trade_management: automatic stop, breakeven and trailing stop — automation, not punishment.

Never loosens a stop and never touches a stop the trader has already tightened past the target.
Broker-side trailing stops (type 5) are left alone: the broker trails them itself.
"""

from __future__ import annotations

from risk_manager.domain import OrderType, PositionType
from risk_manager.domain.ticks import round_to_tick
from risk_manager.engine.actions import Action, ActionKind, make_key
from risk_manager.engine.config import TradeManagementConfig
from risk_manager.engine.rules.base import Rule, RuleContext
from risk_manager.engine.state import AccountState, Change, ChangeKind, PositionState, is_stop_for, stop_coverage

_EPS = 1e-9
_DIRECTED = (PositionType.LONG, PositionType.SHORT)


class TradeManagement(Rule[TradeManagementConfig]):
    rule_id = "RULE-012"
    name = "trade_management"
    triggers = frozenset({ChangeKind.QUOTE, ChangeKind.POSITION, ChangeKind.ORDER})
    timed = True

    # --- automatic stop --------------------------------------------------------------------------

    def auto_deadline(self, pos: PositionState) -> float | None:
        auto = self.config.auto_stop
        if auto is None:
            return None
        return max(pos.opened_at, pos.stop_lost_at) + auto.after.total_seconds()

    def _auto_key(self, account: AccountState, pos: PositionState, deadline: float) -> str:
        return make_key(ActionKind.PLACE_STOP, account.account_id, (self.rule_id,), pos.contract_id,
                        f"timer:auto_stop:{pos.contract_id}:{deadline:.3f}")

    def deadline(self, ctx: RuleContext, account: AccountState) -> float | None:
        best: float | None = None
        for pos in account.positions.values():
            d = self.auto_deadline(pos)
            if d is None or pos.type not in _DIRECTED or pos.contract_id not in ctx.contracts:
                continue
            if stop_coverage(account.orders, pos) > 0 or self._auto_key(account, pos, d) in account.memo:
                continue
            if best is None or d < best:
                best = d
        return best

    def on_time(self, ctx: RuleContext, account: AccountState) -> list[Action]:
        auto = self.config.auto_stop
        if auto is None:
            return []
        out: list[Action] = []
        for pos in account.positions.values():
            d = self.auto_deadline(pos)
            if d is None or d > ctx.now or stop_coverage(account.orders, pos) > 0:
                continue
            info = ctx.contracts.find(pos.contract_id)
            if info is None or pos.type not in _DIRECTED:
                continue
            sign = -1 if pos.type == PositionType.LONG else 1
            price = round_to_tick(pos.average_price + sign * auto.ticks * info.tick_size, info.tick_size)
            out.append(Action(ActionKind.PLACE_STOP, account.account_id, (self.rule_id,),
                              self._auto_key(account, pos, d), contract_id=pos.contract_id, size=pos.size,
                              price=price, side=int(pos.type.closing_side), symbol=pos.symbol,
                              message=f"{pos.symbol}: automatic stop {auto.ticks} ticks from entry at {price:g}"))
        return out

    # --- breakeven and trailing ------------------------------------------------------------------

    def target(self, pos: PositionState, tick: float, price: float) -> float | None:
        """The stop price breakeven/trailing want now (None: no move wanted)."""
        best = pos.best_price
        if best is None:
            return None
        long = pos.type == PositionType.LONG
        best_ticks = ((best - pos.average_price) if long else (pos.average_price - best)) / tick
        targets = []
        be, trail = self.config.breakeven, self.config.trailing
        if be is not None and best_ticks >= be.trigger_ticks - _EPS:
            targets.append(pos.average_price + (be.offset_ticks * tick if long else -be.offset_ticks * tick))
        if trail is not None and best_ticks >= trail.activate_ticks - _EPS:
            targets.append(best - trail.distance_ticks * tick if long else best + trail.distance_ticks * tick)
        if not targets:
            return None
        wanted = round_to_tick(max(targets) if long else min(targets), tick, "down" if long else "up")
        # A stop at or through the market would fill at once (or be rejected): that is not a stop move.
        if (long and wanted >= price) or (not long and wanted <= price):
            return None
        return wanted

    def evaluate(self, ctx: RuleContext, account: AccountState, change: Change) -> list[Action]:
        if (self.config.breakeven is None and self.config.trailing is None) or change.contract_id is None:
            return []
        pos = account.positions.get(change.contract_id)
        price = ctx.prices.get(change.contract_id)
        if pos is None or price is None or pos.type not in _DIRECTED:
            return []
        if change.kind is ChangeKind.QUOTE and not pos.best_moved:
            # The wanted stop depends only on the best price; when it did not move, whatever it wants
            # was already asked (a new best is always beyond the wanted stop, so nothing was held back).
            return []
        info = ctx.contracts.find(pos.contract_id)
        if info is None:
            return []
        wanted = self.target(pos, info.tick_size, price)
        if wanted is None:
            return []
        long = pos.type == PositionType.LONG
        out: list[Action] = []
        for order in account.orders.values():
            if not is_stop_for(order, pos) or order.type == OrderType.TRAILING_STOP or order.stop_price is None:
                continue
            current = order.stop_price
            if (long and wanted > current + _EPS) or (not long and wanted < current - _EPS):
                key = make_key(ActionKind.MODIFY_STOP, account.account_id, (self.rule_id,), pos.contract_id,
                               f"stop:{order.id}", f"{wanted:.10g}")
                out.append(Action(ActionKind.MODIFY_STOP, account.account_id, (self.rule_id,), key,
                                  contract_id=pos.contract_id, order_id=order.id, price=wanted, symbol=pos.symbol,
                                  message=f"{pos.symbol}: stop {current:g} → {wanted:g}"))
        return out
