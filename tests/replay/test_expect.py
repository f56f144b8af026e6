from __future__ import annotations

from typing import Any

from risk_manager.replay.expect import check_expectations, matches
from risk_manager.replay.scenario import Expect

REPORT: dict[str, Any] = {
    "scenario": "s",
    "actions": [
        {"at": "2026-03-03T15:00:30.000Z", "account": 1001, "rules": ["RULE-003", "RULE-013"],
         "action": "flatten_account", "contract": None, "size": None, "status": "done"},
        {"at": "2026-03-03T15:00:30.000Z", "account": 1001, "rules": ["RULE-003"],
         "action": "cancel_orders", "contract": None, "size": None, "status": "done"},
    ],
    "locks": [{"account": 1001, "kind": "until_reset", "rules": ["RULE-003"], "symbol": None,
               "start": "2026-03-03T15:00:30.000Z", "end": "2026-03-03T23:00:00.000Z"}],
    "alerts": [],
    "final": {"1001": {"positions": [], "open_orders": [], "realized_pnl": -512.5, "fees": 3.7,
                       "balance": 49487.5, "locked": True, "can_trade": True}},
    "broker": {"orders_placed_by_daemon": 0, "duplicate_orders": 0, "requests": 14, "http_429": 0},
}


def test_a_matching_expect_passes() -> None:
    expect = Expect(
        actions=[{"action": "cancel_orders"}, {"action": "flatten_account", "rules": ["RULE-013", "RULE-003"],
                                               "status": "done"}],
        locks=[{"kind": "until_reset", "account": 1001}],
        final={1001: {"positions": [], "locked": True, "realized_pnl": -512.5, "balance": 49487.504}},
        broker={"duplicate_orders": 0, "http_429": 0},
    )
    assert check_expectations(expect, REPORT) == []


def test_each_shortfall_is_named() -> None:
    expect = Expect(
        actions=[{"action": "flatten_account"}, {"action": "flatten_account"}],  # only one in the report
        no_locks=True,
        final={1001: {"locked": False}, 2002: {"locked": True}},
        broker={"duplicate_orders": 1},
    )
    problems = check_expectations(expect, REPORT)
    assert any(p.startswith("expect.actions[1]") for p in problems)
    assert any(p.startswith("expect.no_locks") for p in problems)
    assert "expect.final.1001.locked: expected False, got True" in problems
    assert "expect.final.2002: no such account in the report" in problems
    assert "expect.broker.duplicate_orders: expected 1, got 0" in problems
    assert len(problems) == 5


def test_no_actions_and_value_rules() -> None:
    assert check_expectations(Expect(no_actions=True), {"actions": []}) == []
    assert check_expectations(Expect(no_actions=True), REPORT)[0].startswith("expect.no_actions")
    assert matches(1.0, 1.005) and not matches(1.0, 1.02)
    assert not matches(1, True) and not matches(True, 1)
    assert matches([], []) and not matches([], [{"x": 1}])
    assert matches({"a": [1, 2]}, {"a": [1, 2], "b": 3}) and not matches({"a": [2, 1]}, {"a": [1, 2]})
    assert matches(["RULE-1", "RULE-2"], ["RULE-2", "RULE-1"], key="rules")
    assert matches(None, None) and not matches(None, 0)
    assert not matches("done", None)
