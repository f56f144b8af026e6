"""`merge_actions` cases the rule tests reach only by chance (through the random-stream property
test): a reduction listed before the close that subsumes it, two reductions of one contract, two
stop moves of one order, a single-order cancel inside a contract-wide cancel — and the words a
lock without an end date shows on the dashboard."""

from __future__ import annotations

from datetime import UTC, datetime

from risk_manager.engine.actions import Action, ActionKind, Lock, LockKind, make_key, merge_actions

ES = "CON.F.US.EP.Z26"
T = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)


def act(kind: ActionKind, rule: str, contract_id: str | None = ES, **fields: object) -> Action:
    key = make_key(kind, 1001, [rule], contract_id, "position:1", str(fields.get("order_id", "")))
    return Action(kind, 1001, (rule,), key, contract_id=contract_id, **fields)  # type: ignore[arg-type]


def test_a_reduction_before_its_close_is_absorbed_into_the_close() -> None:
    merged = merge_actions([act(ActionKind.REDUCE_POSITION, "RULE-002", size=1),
                            act(ActionKind.CLOSE_POSITION, "RULE-004"),
                            act(ActionKind.REDUCE_POSITION, "RULE-003", size=2)])
    assert [(a.kind, a.rules) for a in merged] == [(ActionKind.CLOSE_POSITION, ("RULE-002", "RULE-003", "RULE-004"))]
    assert "|RULE-002+RULE-003+RULE-004|" in merged[0].idempotency_key  # the key names every rule


def test_smallest_reduction_and_one_stop_move_win() -> None:
    merged = merge_actions([act(ActionKind.REDUCE_POSITION, "RULE-002", size=3),
                            act(ActionKind.REDUCE_POSITION, "RULE-003", size=1),
                            act(ActionKind.MODIFY_STOP, "RULE-012", order_id=9, price=4990.0),
                            act(ActionKind.MODIFY_STOP, "RULE-008", order_id=9, price=4990.0)])
    reduce = next(a for a in merged if a.kind is ActionKind.REDUCE_POSITION)
    assert (reduce.size, reduce.rules) == (1, ("RULE-002", "RULE-003"))
    stops = [a for a in merged if a.kind is ActionKind.MODIFY_STOP]
    assert len(stops) == 1 and stops[0].rules == ("RULE-008", "RULE-012")


def test_a_contract_wide_cancel_subsumes_a_single_order_cancel() -> None:
    merged = merge_actions([act(ActionKind.CANCEL_ORDERS, "RULE-012", order_id=9),
                            act(ActionKind.CANCEL_ORDERS, "RULE-011")])
    assert [(a.contract_id, a.order_id, a.rules) for a in merged] == [(ES, None, ("RULE-011", "RULE-012"))]


def test_words_for_locks_without_an_end_date() -> None:
    def ends(kind: LockKind, symbol: str | None = None) -> str:
        return Lock(1001, kind, "why", T, None, symbol, ("RULE-001",)).ends

    assert ends(LockKind.UNTIL_SESSION) == "when no further session opens within a year"
    assert ends(LockKind.MANUAL) == "never"
    assert ends(LockKind.SYMBOL, "CL") == "when CL leaves the block list"
    assert ends(LockKind.UNTIL_CAN_TRADE) == "when the broker reports canTrade: true"
