"""RULE-001, RULE-002, RULE-004, RULE-005: size and per-position P&L limits."""

from __future__ import annotations

from risk_manager.engine import ActionKind

from .harness import CL, ES, MES, MNQ, NQ, SHORT, Harness, kinds, of, one


def test_rule001_breach_reduces_the_position_that_grew_last() -> None:
    h = Harness({"max_contracts": {"enabled": True, "limit": 3}})
    assert h.position(ES, 2) == []
    actions = h.position(NQ, 2)
    reduce = one(actions, ActionKind.REDUCE_POSITION)
    assert (reduce.contract_id, reduce.size, reduce.rules) == (NQ, 1, ("RULE-001",))
    assert reduce.idempotency_key.startswith("reduce_position|1001|RULE-001|CON.F.US.ENQ.Z26|position:")


def test_rule001_at_the_limit_is_not_a_breach() -> None:
    h = Harness({"max_contracts": {"enabled": True, "limit": 3}})
    h.position(ES, 2)
    assert h.position(NQ, 1, SHORT) == []


def test_rule001_close_all_and_net_counting() -> None:
    h = Harness({"max_contracts": {"enabled": True, "limit": 2, "action": "close_all"}})
    h.position(ES, 2)
    assert ActionKind.FLATTEN_ACCOUNT.value in kinds(h.position(NQ, 1))
    net = Harness({"max_contracts": {"enabled": True, "limit": 2, "count_type": "net"}})
    net.position(ES, 3)
    assert net.position(NQ, 2, SHORT) == []  # |3 − 2| = 1


def test_rule001_micro_weight() -> None:
    h = Harness({"max_contracts": {"enabled": True, "limit": 2, "micro_weight": 0.1}})
    assert h.position(MNQ, 10) == []         # 1.0
    assert h.position(ES, 1) == []            # 2.0
    close = one(h.position(MES, 5), ActionKind.CLOSE_POSITION)   # 2.5 → cut 5 micros (0.5) = all of MES
    assert close.contract_id == MES


def test_rule001_micro_weight_cuts_just_enough() -> None:
    h = Harness({"max_contracts": {"enabled": True, "limit": 2, "micro_weight": 0.1}})
    h.position(ES, 2)
    actions = h.position(MES, 7)               # 2.7 → cut 7 micros → close
    assert one(actions, ActionKind.CLOSE_POSITION).contract_id == MES
    h2 = Harness({"max_contracts": {"enabled": True, "limit": 2, "micro_weight": 0.1}})
    h2.position(ES, 1)
    reduce = one(h2.position(MES, 13), ActionKind.REDUCE_POSITION)  # 2.3 → cut 3
    assert reduce.size == 10


def test_rule002_per_instrument_limit_default_and_block() -> None:
    h = Harness({"max_contracts_per_instrument": {"enabled": True, "limits": {"MNQ": 2}, "unknown_symbol": "block"}})
    assert h.position(MNQ, 2) == []
    reduce = one(h.position(MNQ, 3), ActionKind.REDUCE_POSITION)
    assert (reduce.size, reduce.rules) == (2, ("RULE-002",))
    assert one(h.position(ES, 1), ActionKind.CLOSE_POSITION).contract_id == ES  # unlisted + block → limit 0
    allow = Harness({"max_contracts_per_instrument": {"enabled": True, "limits": {"MNQ": 2}}})
    assert allow.position(ES, 50) == []
    default = Harness({"max_contracts_per_instrument": {"enabled": True, "default_limit": 1}})
    assert one(default.position(ES, 2), ActionKind.REDUCE_POSITION).size == 1


def test_rule002_repeated_breach_is_not_requested_twice() -> None:
    h = Harness({"max_contracts_per_instrument": {"enabled": True, "limits": {"MNQ": 2}}})
    assert of(h.position(MNQ, 3), ActionKind.REDUCE_POSITION)
    h.quote(MNQ, 25000.0)
    # the same position seen again through a reconciliation: no second reduce while the first is in flight
    assert of(h.position(MNQ, 3), ActionKind.REDUCE_POSITION) == []
    h.advance(6)
    assert of(h.position(MNQ, 3), ActionKind.REDUCE_POSITION)  # still there after RETRY_AFTER: ask again


def test_rule004_per_position_loss_breach_and_just_not() -> None:
    h = Harness({"daily_unrealized_loss": {"enabled": True, "loss_limit": 100}})
    h.position(ES, 1, avg=5000.0)              # ES: $12.50 a tick, $50 a point
    assert h.quote(ES, 4998.25) == []          # −7 ticks = −$87.50
    actions = h.quote(ES, 4998.00)             # −8 ticks = −$100: reaching the limit is a breach
    close = one(actions, ActionKind.CLOSE_POSITION)
    assert (close.contract_id, close.rules) == (ES, ("RULE-004",))
    assert close.idempotency_key.startswith("close_position|1001|RULE-004|CON.F.US.EP.Z26|quote:")


def test_rule004_short_position_direction_from_type() -> None:
    h = Harness({"daily_unrealized_loss": {"enabled": True, "loss_limit": 100}})
    h.position(ES, 1, SHORT, avg=5000.0)
    assert h.quote(ES, 4990.0) == []           # a short gains when the price falls
    assert h.quote(ES, 5001.75) == []          # −7 ticks
    assert one(h.quote(ES, 5002.0), ActionKind.CLOSE_POSITION).contract_id == ES


def test_rule004_and_rule005_exact_limit_despite_float_noise() -> None:
    # CL: tick 0.01 = $10. (62.04 − 62.16) / 0.01 × 10 is −119.99999999999744 in floats; the open P&L is money,
    # kept in cents, so −$120.00 reaches a $120 limit (chaos seeds 273 and 860 missed exactly this close).
    h = Harness({"daily_unrealized_loss": {"enabled": True, "loss_limit": 120}})
    h.position(CL, 1, SHORT, avg=62.04)
    assert h.quote(CL, 62.15) == []            # −11 ticks
    assert one(h.quote(CL, 62.16), ActionKind.CLOSE_POSITION).rules == ("RULE-004",)
    h3 = Harness({"daily_unrealized_loss": {"enabled": True, "loss_limit": 120}})
    h3.position(CL, 3, SHORT, avg=61.94)
    assert one(h3.quote(CL, 61.98), ActionKind.CLOSE_POSITION).contract_id == CL   # 4 ticks × 3 = −$120
    target = Harness({"max_unrealized_profit": {"enabled": True, "target": 40}})
    target.position(CL, 1, avg=61.94)
    assert one(target.quote(CL, 61.98), ActionKind.CLOSE_POSITION).rules == ("RULE-005",)  # 39.999999999999 raw


def test_rule005_take_profit_breach_and_just_not() -> None:
    h = Harness({"max_unrealized_profit": {"enabled": True, "target": 250}})
    h.position(ES, 2, avg=5000.0)              # $25 a tick for 2 contracts
    assert h.quote(ES, 5002.25) == []          # 9 ticks × 25 = $225
    assert one(h.quote(ES, 5002.5), ActionKind.CLOSE_POSITION).rules == ("RULE-005",)


def test_quote_mid_price_when_last_is_zero_and_partial_quotes_merge() -> None:
    h = Harness({"daily_unrealized_loss": {"enabled": True, "loss_limit": 100}})
    h.position(ES, 1, avg=5000.0)
    assert h.quote(ES, 0.0, bid=4998.75, ask=4999.25) == []       # mid 4999 → −$50
    assert h.engine.status(1001).positions[0].open_pnl == -50.0
    # a partial update (bid only) merges with the ask already known: mid (4996.75 + 4999.25)/2 = 4998 → −$100
    assert one(h.quote(ES, bid=4996.75), ActionKind.CLOSE_POSITION).contract_id == ES


def test_damaged_quote_is_ignored() -> None:
    h = Harness({"daily_unrealized_loss": {"enabled": True, "loss_limit": 100}})
    h.position(ES, 1, avg=5000.0)
    h.quote(ES, 4999.0)
    assert h.quote(ES, float("nan")) == [] and h.quote(ES, float("-inf")) == []
    assert h.engine.status(1001).positions[0].open_pnl == -50.0
