"""RULE-009 corners: one enforcement when the trader breaks the rule during the session-end grace
(the end timer then finds it done), a per-symbol session end that closes and cancels only that
symbol, and no guessing about contracts the catalogue does not know."""

from __future__ import annotations

from datetime import UTC, datetime

from risk_manager.domain import OrderSide
from risk_manager.engine import ActionKind

from .harness import CL, ES, Harness, kinds, of


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def test_breach_during_the_grace_is_enforced_once() -> None:
    h = Harness({"session_block_outside": {"enabled": True, "grace": "30s"}}, start=utc(2026, 3, 3, 20, 59, 50))
    assert h.position(ES, 1) == []                                      # 14:59:50 CST, inside the session
    h.advance_to(utc(2026, 3, 3, 21, 0, 10))                            # session over, grace running
    grown = h.position(ES, 2)
    assert kinds(grown) == ["lock", "cancel_orders", "flatten_account", "alert"]
    assert h.advance_to(utc(2026, 3, 3, 21, 0, 30)) == []               # the end timer: already locked


def test_unknown_contract_is_not_judged_by_session() -> None:
    h = Harness({"session_block_outside": {"enabled": True}}, start=utc(2026, 3, 3, 22, 0))  # 16:00 CST
    assert [a for a in h.position("CON.F.US.NOPE.Z26", 1) if "RULE-009" in a.rules] == []


def test_a_per_symbol_session_end_touches_only_that_symbol() -> None:
    h = Harness({"session_block_outside": {"enabled": True, "symbol_sessions": {"CL": [
        {"start": "08:00", "end": "13:30"}]}}}, start=utc(2026, 3, 3, 19, 29))   # 13:29 CST: both open
    assert h.position(ES, 1) == [] and h.position(CL, 1) == []
    h.order(ES, OrderSide.BID)
    h.order(CL, OrderSide.BID)
    actions = h.advance_to(utc(2026, 3, 3, 19, 30))                    # CL's window ends, ES's goes on
    assert [a.contract_id for a in of(actions, ActionKind.CLOSE_POSITION)] == [CL]
    assert [a.contract_id for a in of(actions, ActionKind.CANCEL_ORDERS)] == [CL]
    assert of(actions, ActionKind.FLATTEN_ACCOUNT) == []
