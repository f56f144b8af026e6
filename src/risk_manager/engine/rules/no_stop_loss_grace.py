"""RULE-008 no_stop_loss_grace: a new position must be protected by a stop within the grace period.

The grace timer starts when a position opens (0 → >0) and again when a protecting stop goes away
(cancelled, expired, rejected) while the position is open; scale-ins do not restart it. With
`require_full_size`, a scale-in after the grace has run out starts a new grace for the added size.
At expiry a stop known from order events satisfies it; otherwise the engine asks the daemon for
the broker's open orders (`check_stops`) and decides on the `StopsChecked` answer — closing the
position when no stop is found or the broker could not be asked (fail closed).
"""

from __future__ import annotations

from risk_manager.engine.actions import Action, ActionKind, make_key
from risk_manager.engine.config import NoStopLossGraceConfig, format_duration
from risk_manager.engine.rules.base import Rule, RuleContext, alert, close
from risk_manager.engine.state import AccountState, PositionState, stop_coverage

STOP_CHECK_TIMEOUT = 15.0  # seconds the daemon has to answer a check_stops with StopsChecked
ANSWERED = "answered|"     # memo prefix: a check_stops that got its StopsChecked answer


class NoStopLossGrace(Rule[NoStopLossGraceConfig]):
    rule_id = "RULE-008"
    name = "no_stop_loss_grace"
    timed = True

    def grace_deadline(self, pos: PositionState) -> float:
        grace = self.config.grace.total_seconds()
        deadline = max(pos.opened_at, pos.stop_lost_at) + grace
        if self.config.require_full_size and pos.grown_at > deadline:
            deadline = pos.grown_at + grace
        return deadline

    def covered(self, account: AccountState, pos: PositionState) -> bool:
        coverage = stop_coverage(account.orders, pos)
        return coverage >= pos.size if self.config.require_full_size else coverage > 0

    def check_key(self, account: AccountState, pos: PositionState) -> str:
        cause = f"timer:grace:{pos.contract_id}:{self.grace_deadline(pos):.3f}"
        return make_key(ActionKind.CHECK_STOPS, account.account_id, (self.rule_id,), pos.contract_id, cause)

    def _timeout_cause(self, pos: PositionState) -> str:
        return f"timer:stops_unanswered:{pos.contract_id}:{self.grace_deadline(pos):.3f}"

    def _pending(self, account: AccountState, pos: PositionState) -> tuple[float, str] | None:
        """(when, what) of this position's next RULE-008 step, None when there is nothing to do."""
        if self.covered(account, pos):
            return None
        key = self.check_key(account, pos)
        asked = account.memo.get(key)
        if asked is None:
            return self.grace_deadline(pos), "check"
        if ANSWERED + key in account.memo:
            return None
        timeout_key = make_key(ActionKind.CLOSE_POSITION, account.account_id, (self.rule_id,), pos.contract_id,
                               self._timeout_cause(pos))
        if timeout_key in account.memo:
            return None
        return asked + STOP_CHECK_TIMEOUT, "timeout"

    def deadline(self, ctx: RuleContext, account: AccountState) -> float | None:
        best: float | None = None
        for pos in account.positions.values():
            pending = self._pending(account, pos)
            if pending is not None and (best is None or pending[0] < best):
                best = pending[0]
        return best

    def on_time(self, ctx: RuleContext, account: AccountState) -> list[Action]:
        out: list[Action] = []
        for pos in account.positions.values():
            pending = self._pending(account, pos)
            if pending is None or pending[0] > ctx.now:
                continue
            if pending[1] == "check":
                out.append(Action(ActionKind.CHECK_STOPS, account.account_id, (self.rule_id,),
                                  self.check_key(account, pos), contract_id=pos.contract_id, size=pos.size,
                                  symbol=pos.symbol,
                                  message=f"{pos.symbol}: no stop after {format_duration(self.config.grace)}; "
                                          "asking the broker for open orders"))
            else:  # the daemon never answered the check: fail closed
                cause = self._timeout_cause(pos)
                out += [close(account.account_id, self.rule_id, cause, pos),
                        alert(account.account_id, self.rule_id, cause,
                              f"{pos.symbol}: the broker check for a stop got no answer within "
                              f"{STOP_CHECK_TIMEOUT:g}s; closing the position (no stop can be confirmed)",
                              contract_id=pos.contract_id)]
        return out

    def stops_checked(self, ctx: RuleContext, account: AccountState, contract_id: str, ok_broker: bool,
                      cause: str) -> list[Action]:
        """The daemon's answer to `check_stops`: keep the position if a stop is there, else close it."""
        pos = account.positions.get(contract_id)
        if pos is None:
            return []
        aid = account.account_id
        if not ok_broker:
            message = (f"{pos.symbol}: could not ask the broker for stop orders; closing the position "
                       "(no stop can be confirmed)")
        elif self.covered(account, pos):
            return []
        elif stop_coverage(account.orders, pos) > 0:
            message = f"{pos.symbol}: stops cover less than the position size {pos.size}; closing it"
        else:
            message = f"{pos.symbol}: no stop-loss after {format_duration(self.config.grace)}; closing the position"
        return [close(aid, self.rule_id, cause, pos), alert(aid, self.rule_id, cause, message,
                                                            contract_id=contract_id)]
