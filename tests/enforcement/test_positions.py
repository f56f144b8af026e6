"""close_position, reduce_position, flatten_account against the simulator: verified, never flipping."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from risk_manager.domain import OrderSide, OrderType
from risk_manager.enforcement import OutcomeStatus
from risk_manager.engine.actions import ActionKind
from risk_manager.sim import Simulator
from risk_manager.store import ActionState

from .conftest import ACCOUNT, CL, ES, MNQ, Rig, action


async def test_close_position_is_verified_flat_with_one_request(rig: Rig) -> None:
    rig.sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=2, type="market")
    outcome = await rig.one(action(ActionKind.CLOSE_POSITION, "close-1", contract_id=MNQ))
    assert outcome.status is OutcomeStatus.DONE, outcome.reason
    assert outcome.reason is None and outcome.detail == "verified flat" and outcome.attempts == 1
    assert rig.position_sizes() == {}
    assert [(i.contract_id, i.outcome) for i in rig.intents("close")] == [(MNQ, "ok")]
    stored = await rig.store.action("close-1")
    assert stored is not None and stored.state is ActionState.DONE and stored.detail == "verified flat"
    [logged] = await rig.store.enforcement_log(ACCOUNT)
    assert (logged.key, logged.outcome, logged.rules) == ("close-1", "done", ("test_rule",))
    assert logged.finished >= logged.started
    assert rig.enforcer.stats.done == 1 and rig.enforcer.stats.requests == 2  # close + one verification read


async def test_close_of_a_flat_contract_is_done_without_a_second_request(rig: Rig) -> None:
    outcome = await rig.one(action(ActionKind.CLOSE_POSITION, "close-flat", contract_id=ES))
    assert outcome.status is OutcomeStatus.DONE
    assert outcome.detail == "verified flat"  # PositionNotFound = already done, not a failure
    assert [i.outcome for i in rig.intents("close")] == ["error 2"]


async def test_reduce_uses_the_hinted_size_and_partial_close(rig: Rig) -> None:
    rig.sim.trader.place_order(ACCOUNT, "ES", side="sell", size=5, type="market")
    rig.positions[ACCOUNT] = {ES: 5}
    outcome = await rig.one(action(ActionKind.REDUCE_POSITION, "reduce-1", contract_id=ES, size=2))
    assert outcome.status is OutcomeStatus.DONE, outcome.reason
    assert rig.position_sizes() == {ES: -2}  # still short, 2 left
    assert [(i.kind, i.size) for i in rig.sim.recorder.intents] == [("partialClose", 3)]
    assert outcome.detail == f"verified: {ES} at 2 contract(s) (target 2)"


async def test_reduce_never_flips_even_with_a_stale_view(rig: Rig) -> None:
    rig.sim.trader.place_order(ACCOUNT, "ES", side="buy", size=3, type="market")
    rig.positions[ACCOUNT] = {ES: 8}  # the daemon's view is behind: the broker holds 3
    outcome = await rig.one(action(ActionKind.REDUCE_POSITION, "reduce-stale", contract_id=ES, size=2))
    assert outcome.status is OutcomeStatus.DONE, outcome.reason
    assert rig.position_sizes() == {ES: 2}  # long 2: reduced, never flipped
    sent = [(i.size, i.outcome) for i in rig.intents("partialClose")]
    assert sent == [(6, "error 5"), (1, "ok")]  # refused as too large, then recomputed from the broker
    assert outcome.attempts == 2


async def test_reduce_without_a_hint_reads_the_broker_and_to_zero_closes(rig: Rig) -> None:
    rig.sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=4, type="market")
    outcome = await rig.one(action(ActionKind.REDUCE_POSITION, "reduce-nohint", contract_id=MNQ, size=1))
    assert outcome.status is OutcomeStatus.DONE and rig.position_sizes() == {MNQ: 1}
    outcome = await rig.one(action(ActionKind.REDUCE_POSITION, "reduce-zero", contract_id=MNQ, size=0))
    assert outcome.status is OutcomeStatus.DONE and rig.position_sizes() == {}
    assert [i.kind for i in rig.sim.recorder.intents] == ["partialClose", "close"]


async def test_reduce_already_at_target_sends_nothing(rig: Rig) -> None:
    rig.sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=2, type="market")
    rig.positions[ACCOUNT] = {MNQ: 2}
    outcome = await rig.one(action(ActionKind.REDUCE_POSITION, "reduce-noop", contract_id=MNQ, size=3))
    assert outcome.status is OutcomeStatus.DONE and outcome.attempts == 0
    assert "nothing needed sending" in outcome.detail
    assert rig.sim.recorder.intents == type(rig.sim.recorder.intents)()


async def test_flatten_closes_every_position_including_one_the_hint_missed(rig: Rig) -> None:
    rig.sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=2, type="market")
    rig.sim.trader.place_order(ACCOUNT, "ES", side="sell", size=1, type="market")
    rig.sim.trader.place_order(ACCOUNT, "CL", side="buy", size=3, type="market")  # not in any config, not hinted
    rig.positions[ACCOUNT] = {MNQ: 2, ES: 1}
    outcome = await rig.one(action(ActionKind.FLATTEN_ACCOUNT, "flatten-1"))
    assert outcome.status is OutcomeStatus.DONE, outcome.reason
    assert rig.position_sizes() == {}
    assert sorted(i.contract_id for i in rig.intents("close")) == sorted([MNQ, ES, CL])
    assert outcome.detail == "verified flat (close sent for 3 contract(s))"


async def test_flatten_of_an_account_with_nothing_open(rig: Rig) -> None:
    outcome = await rig.one(action(ActionKind.FLATTEN_ACCOUNT, "flatten-empty"))
    assert outcome.status is OutcomeStatus.DONE and outcome.attempts == 0
    assert rig.intents("close") == []


async def test_a_permanent_refusal_fails_and_is_not_retried(rig: Rig) -> None:
    outcome = await rig.one(action(ActionKind.CLOSE_POSITION, "close-bad", contract_id="CON.F.US.NOPE.Z26"))
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.reason is not None and "ContractNotFound" in outcome.reason and "by hand" in outcome.reason
    stored = await rig.store.action("close-bad")
    assert stored is not None and stored.state is ActionState.FAILED


async def test_lost_close_response_gives_exactly_one_close(rig: Rig) -> None:
    rig.sim.trader.place_order(ACCOUNT, "MNQ", side="sell", size=3, type="market")
    rig.sim.faults.lose_responses(1)
    outcome = await rig.one(action(ActionKind.CLOSE_POSITION, "close-lost", contract_id=MNQ))
    assert outcome.status is OutcomeStatus.DONE, outcome.reason
    assert [(i.kind, i.response_lost) for i in rig.sim.recorder.intents] == [("close", True)]
    assert rig.position_sizes() == {}


def _close_in_parts(sim: Simulator, chunks: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the simulator fill a close order in chunks (one per matching step), as a thin market would."""
    broker = sim.broker

    def close_position(account_id: int, contract_id: str, size: int | None = None) -> Any:
        signed = {p.contract_id: p.signed_size for p in broker.positions(account_id)}.get(contract_id, 0)
        if signed == 0:
            return broker.close_position.__wrapped__(account_id, contract_id, size)  # type: ignore[attr-defined]
        side = OrderSide.ASK if signed > 0 else OrderSide.BID
        return broker.place(account_id, contract_id, OrderType.MARKET, side, size or abs(signed), fill_plan=chunks)

    close_position.__wrapped__ = broker.close_position  # type: ignore[attr-defined]
    monkeypatch.setattr(broker, "close_position", close_position)


async def test_partial_fills_of_a_close_are_waited_for_without_a_second_close(
        rig: Rig, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="risk_manager.enforcement")
    rig.sim.trader.place_order(ACCOUNT, "ES", side="buy", size=4, type="market")
    _close_in_parts(rig.sim, [1, 1, 1, 1], monkeypatch)
    outcome = await rig.one(action(ActionKind.CLOSE_POSITION, "close-partial", contract_id=ES))
    assert outcome.status is OutcomeStatus.DONE, outcome.reason
    assert rig.position_sizes() == {}
    assert len(rig.intents("close")) == 1  # the working close was tracked, never doubled
    progress_lines = caplog.text.count("enforcement_partial_fill")
    assert 1 <= progress_lines <= 3  # one line per new fill volume seen (1, 2, 3 of 4), not one per read


async def test_a_close_that_keeps_filling_in_parts_times_out(
        sim: Simulator, client: Any, store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(sim, client, store, partial_fill_timeout_s=0.15)
    await rig.enforcer.start()
    sim.trader.place_order(ACCOUNT, "MNQ", side="sell", size=60, type="market")
    _close_in_parts(sim, [1] * 59, monkeypatch)
    outcome = await rig.one(action(ActionKind.CLOSE_POSITION, "close-slow", contract_id=MNQ))
    await rig.enforcer.aclose()
    assert outcome.status is OutcomeStatus.FAILED
    assert outcome.reason is not None and outcome.reason.startswith("partial fill: the closing order")
    assert "still open after 0.15 s" in outcome.reason
    assert len(rig.intents("close")) == 1
    assert all(size < 0 for size in rig.position_sizes().values())  # still short: never flipped


@pytest.mark.parametrize(("side", "held", "hinted", "to_size"), [
    ("buy", 5, 5, 2), ("sell", 5, 3, 2), ("buy", 4, 5, 2), ("sell", 2, None, 0), ("buy", 1, 1, 1),
    ("sell", 6, 9, 1), ("buy", 3, 1, 2),
])
async def test_reduce_ends_at_or_below_the_target_on_the_same_side(
        rig: Rig, side: str, held: int, hinted: int | None, to_size: int) -> None:
    rig.sim.trader.place_order(ACCOUNT, "ES", side=side, size=held, type="market")  # type: ignore[arg-type]
    if hinted is not None:
        rig.positions[ACCOUNT] = {ES: hinted}
    outcome = await rig.one(action(ActionKind.REDUCE_POSITION, f"reduce-{side}-{held}-{hinted}-{to_size}",
                                   contract_id=ES, size=to_size))
    assert outcome.status is OutcomeStatus.DONE, outcome.reason
    left = rig.position_sizes().get(ES, 0)
    sign = 1 if side == "buy" else -1
    assert 0 <= sign * left <= to_size  # reduced, never through zero to the other side
    if hinted is None or hinted <= held:
        assert sign * left == min(held, to_size)  # an exact (or fresh-enough) view reduces exactly
