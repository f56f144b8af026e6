"""Idempotency keys: the same event re-seen gives the same key; a new occurrence with identical content does not.

Chaos finding 1: a position grown to 5, reduced to 3 and grown to 5 again got the key of the first
breach, so enforcement skipped the second reduction as already executed (and the 5 s re-ask memo
held it back too).
"""

from __future__ import annotations

from risk_manager.domain import default_catalogue
from risk_manager.engine import ActionKind, Engine

from .harness import ES, Harness, one

MAX3 = {"max_contracts": {"enabled": True, "limit": 3}}


def test_grow_reduce_grow_again_gives_a_second_reduce_with_a_new_key() -> None:
    h = Harness(MAX3)
    first = one(h.position(ES, 5), ActionKind.REDUCE_POSITION)
    assert h.position(ES, 3) == []             # our reduction, seen
    # the same instant on purpose: the 5 s re-ask memo must not hold the new occurrence back either
    second = one(h.position(ES, 5), ActionKind.REDUCE_POSITION)
    assert (first.size, second.size) == (3, 3)
    assert second.idempotency_key != first.idempotency_key


def test_the_same_position_event_re_seen_keeps_its_key() -> None:
    h = Harness(MAX3)
    first = one(h.position(ES, 5), ActionKind.REDUCE_POSITION)
    re_seen = h.position(ES, 5)                 # a reconciliation re-delivers it at once: not asked again
    assert ActionKind.REDUCE_POSITION not in [a.kind for a in re_seen]
    h.advance(6)
    again = one(h.position(ES, 5), ActionKind.REDUCE_POSITION)  # re-asked after RETRY_AFTER …
    assert again.idempotency_key == first.idempotency_key      # … under the same key: executed at most once


def test_key_is_restart_stable_through_the_snapshot() -> None:
    h = Harness(MAX3)
    h.position(ES, 5)
    h.position(ES, 3)
    live = one(h.position(ES, 5), ActionKind.REDUCE_POSITION)
    h.engine = Engine.restore(h.engine.snapshot(), h.config, h.clock, default_catalogue())
    h.advance(6)
    again = one(h.position(ES, 5), ActionKind.REDUCE_POSITION)
    assert again.idempotency_key == live.idempotency_key


def test_quote_breach_after_reopening_at_the_same_price_gets_a_new_key() -> None:
    h = Harness({"daily_unrealized_loss": {"enabled": True, "loss_limit": 100}})
    h.position(ES, 1, avg=100.0)
    first = one(h.quote(ES, last=80.0, bid=80.0, ask=80.0), ActionKind.CLOSE_POSITION)
    h.position(ES, 0)
    h.quote(ES, last=100.0, bid=100.0, ask=100.0)
    assert h.position(ES, 1, avg=100.0) == []   # reopened: same id and size; then the same quote again
    second = one(h.quote(ES, last=80.0, bid=80.0, ask=80.0), ActionKind.CLOSE_POSITION)
    assert second.idempotency_key != first.idempotency_key


def test_a_second_can_trade_loss_with_the_same_balance_gets_a_new_key() -> None:
    h = Harness({"auth_loss_guard": {"enabled": True}})
    h.account(can_trade=True)
    first = one(h.account(can_trade=False), ActionKind.LOCK)
    again = h.account(can_trade=False)          # the same state re-seen: no new lock key
    assert [a for a in again if a.kind is ActionKind.LOCK and a.idempotency_key != first.idempotency_key] == []
    h.account(can_trade=True)
    second = one(h.account(can_trade=False), ActionKind.LOCK)
    assert second.idempotency_key != first.idempotency_key


def test_restart_from_an_older_snapshot_does_not_reuse_an_executed_key() -> None:
    """Chaos seed 40 with --kill: the snapshot lags the enforcer's store, so growth numbers may be handed
    out again after a restart; the broker's fill ids still tell the new occurrence apart."""
    h = Harness(MAX3)
    h.trade(None, ES, tid=501)
    first = one(h.position(ES, 5), ActionKind.REDUCE_POSITION)   # executed by the enforcer
    older = h.engine.snapshot()
    h.trade(-10.0, ES, tid=502)                 # our reduction …
    h.position(ES, 3)
    h.trade(None, ES, tid=503)                  # … and the trader's new fill: 5 again
    h.engine = Engine.restore(older, h.config, h.clock, default_catalogue())   # killed, restarted
    h.advance(6)
    h.trade(-10.0, ES, tid=502)                 # the reconciliation feeds the missed fills first
    h.trade(None, ES, tid=503)
    again = one(h.position(ES, 5), ActionKind.REDUCE_POSITION)
    assert again.idempotency_key != first.idempotency_key
