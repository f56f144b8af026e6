"""RULE-009 corners: one enforcement when the trader breaks the rule during the session-end grace
(the end timer then finds it done), and no guessing about contracts the catalogue does not know."""

from __future__ import annotations

from datetime import UTC, datetime

from .harness import ES, Harness, kinds


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
