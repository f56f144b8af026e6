"""The loosening table: per rule, a change is a loosening in the documented direction only."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from risk_manager.admin.loosening import KEY_RULES, find_loosenings, loosenings, unclassified_keys
from risk_manager.engine.config import RiskConfig


def cfg(rules: dict[str, Any] | None = None, **top: Any) -> RiskConfig:
    return RiskConfig.model_validate({**top, "rules": rules or {}})


def test_every_schema_key_has_a_decision() -> None:
    assert unclassified_keys() == []


TIER = {"loss": 100, "cooldown": "15m"}

# (rule block before, rule block after): the second is looser than the first.
LOOSER: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("max_contracts", {"enabled": True, "limit": 2}, {"enabled": False, "limit": 2}),
    ("max_contracts", {"enabled": True, "limit": 2}, {"enabled": True, "limit": 3}),
    ("max_contracts", {"limit": 2}, {}),  # limit removed: no limit
    ("max_contracts", {"count_type": "gross"}, {"count_type": "net"}),
    ("max_contracts", {"action": "close_all"}, {"action": "reduce_to_limit"}),
    ("max_contracts", {"micro_weight": 1.0}, {"micro_weight": 0.1}),
    ("max_contracts", {"micro_weight": 0.1, "micro_symbols": ["MNQ"]}, {"micro_weight": 0.1,
                                                                       "micro_symbols": ["MNQ", "MES"]}),
    ("max_contracts", {"warn_at": 0.7}, {"warn_at": 0.9}),
    ("max_contracts", {"warn_at": 0.7}, {}),
    ("max_contracts_per_instrument", {"limits": {"MNQ": 2}}, {"limits": {"MNQ": 3}}),
    ("max_contracts_per_instrument", {"limits": {"MNQ": 2}, "default_limit": 5}, {"default_limit": 5}),
    ("max_contracts_per_instrument", {"default_limit": 1}, {"default_limit": 2}),
    ("max_contracts_per_instrument", {"unknown_symbol": "block"}, {"unknown_symbol": "allow"}),
    ("daily_realized_loss", {"loss_limit": 300}, {"loss_limit": 400}),
    ("daily_realized_loss", {"include_unrealized": True}, {"include_unrealized": False}),
    ("daily_realized_loss", {"include_fees": True}, {"include_fees": False}),
    ("daily_unrealized_loss", {"loss_limit": 100}, {"loss_limit": 150}),
    ("max_unrealized_profit", {"target": 100}, {"target": 200}),
    ("trade_frequency_limit", {"per_minute": 3}, {"per_minute": 5}),
    ("trade_frequency_limit", {"per_session": 10}, {}),
    ("trade_frequency_limit", {"cooldowns": {"per_hour": "30m"}}, {"cooldowns": {"per_hour": "10m"}}),
    ("trade_frequency_limit", {"close_positions": True}, {"close_positions": False}),
    ("cooldown_after_loss", {"tiers": [TIER]}, {"tiers": [{"loss": 100, "cooldown": "5m"}]}),
    ("cooldown_after_loss", {"tiers": [TIER]}, {"tiers": [{"loss": 200, "cooldown": "15m"}]}),
    ("cooldown_after_loss", {"tiers": [TIER]}, {}),
    ("cooldown_after_loss", {"consecutive_losses": 3}, {"consecutive_losses": 4}),
    ("cooldown_after_loss", {"consecutive_cooldown": "15m"}, {"consecutive_cooldown": "5m"}),
    ("no_stop_loss_grace", {"grace": "30s"}, {"grace": "2m"}),
    ("no_stop_loss_grace", {"require_full_size": True}, {}),
    ("session_block_outside", {}, {"sessions": [{"start": "08:00", "end": "15:00"}]}),
    ("session_block_outside", {}, {"sessions": [{"start": "08:30", "end": "15:00", "days": ["mon", "tue", "wed",
                                                                                             "thu", "fri", "sat"]}]}),
    ("session_block_outside", {}, {"symbol_sessions": {"CL": [{"start": "07:00", "end": "15:00"}]}}),
    ("session_block_outside", {"holidays": ["2026-12-24", "2026-12-31"]}, {"holidays": ["2026-12-24"]}),
    ("session_block_outside", {}, {"holidays": []}),  # the shipped CME calendar dropped
    ("session_block_outside", {"early_close": [{"date": "2026-11-27", "time": "12:00"}]},
     {"early_close": [{"date": "2026-11-27", "time": "12:15"}]}),
    ("session_block_outside", {"flatten_at_end": True}, {"flatten_at_end": False}),
    ("session_block_outside", {"grace": "0s"}, {"grace": "1m"}),
    ("auth_loss_guard", {"check_interval": "30s"}, {"check_interval": "5m"}),
    ("symbol_blocks", {"blocked": ["RTY", "CL*"]}, {"blocked": ["CL*"]}),
    ("trade_management", {"auto_stop": {"ticks": 8}}, {}),
    ("trade_management", {"auto_stop": {"ticks": 8}}, {"auto_stop": {"ticks": 12}}),
    ("trade_management", {"auto_stop": {"ticks": 8, "after": "5s"}}, {"auto_stop": {"ticks": 8, "after": "20s"}}),
    ("trade_management", {"breakeven": {"trigger_ticks": 8, "offset_ticks": 2}},
     {"breakeven": {"trigger_ticks": 8, "offset_ticks": 1}}),
    ("trade_management", {"trailing": {"activate_ticks": 8, "distance_ticks": 4}},
     {"trailing": {"activate_ticks": 8, "distance_ticks": 6}}),
    ("daily_realized_profit", {"target": 500}, {"target": 800}),
    ("trailing_max_loss", {"max_loss": 2000}, {"max_loss": 2500}),
    ("trailing_max_loss", {"max_loss": 2000, "buffer": 200}, {"max_loss": 2000, "buffer": 100}),
    ("trailing_max_loss", {"starting_balance": 50000}, {"starting_balance": 49000}),
]


@pytest.mark.parametrize(("rule", "before", "after"), LOOSER,
                         ids=[f"{r}-{i}" for i, (r, _, _) in enumerate(LOOSER)])
def test_a_looser_block_is_a_loosening_and_the_reverse_is_not(rule: str, before: dict[str, Any],
                                                              after: dict[str, Any]) -> None:
    old, new = cfg({rule: before}), cfg({rule: after})
    found = find_loosenings(old, new)
    assert found, f"{rule}: {before} → {after} should loosen"
    assert {item.rule for item in found} == {rule}
    assert all(item.text.startswith(f"rules.{rule}") for item in found)
    assert loosenings(new, old) == []


@pytest.mark.parametrize(("block", "text"), [
    ({"message": "done"}, None),
    ({"blocked": ["RTY"]}, None),
])
def test_changes_that_do_not_loosen(block: dict[str, Any], text: str | None) -> None:
    rule = "daily_realized_profit" if "message" in block else "symbol_blocks"
    assert loosenings(cfg(), cfg({rule: block})) == []


def test_the_messages_say_what_and_by_how_much() -> None:
    old = cfg({"daily_realized_loss": {"enabled": True, "loss_limit": 300}})
    new = cfg({"daily_realized_loss": {"enabled": True, "loss_limit": 400}})
    assert loosenings(old, new) == ["rules.daily_realized_loss.loss_limit: loss limit raised 300 → 400"]
    wider = cfg({"session_block_outside": {"sessions": [{"start": "08:00", "end": "15:00"}]}})
    assert loosenings(cfg(), wider) == [
        "rules.session_block_outside.sessions: trading windows widened (about 2.5 more hours a week)"]


def test_a_swap_loosens_in_both_directions() -> None:
    """Blocking NQ instead of RTY unblocks RTY: refused either way (documented)."""
    a, b = cfg({"symbol_blocks": {"blocked": ["RTY"]}}), cfg({"symbol_blocks": {"blocked": ["NQ"]}})
    assert loosenings(a, b) and loosenings(b, a)


def test_admin_policy_and_reset() -> None:
    assert loosenings(cfg(admin={"commitment_mode": True}), cfg()) == [
        "admin.commitment_mode: commitment mode turned off"]
    assert loosenings(cfg(), cfg(admin={"commitment_mode": True})) == []
    assert loosenings(cfg(admin={"allow_manual_unlock": False}), cfg()) == [
        "admin.allow_manual_unlock: manual unlock turned on"]
    moved = cfg(daily_reset={"time": "16:00"})
    assert [i.rule for i in find_loosenings(cfg(), moved)] == ["daily_reset"]
    assert [i.rule for i in find_loosenings(moved, cfg())] == ["daily_reset"]


def test_a_time_zone_change_that_moves_sessions_later_is_caught() -> None:
    """The top-level zone applies to windows without their own: New York 08:30 is Chicago 07:30."""
    old = cfg({"session_block_outside": {"sessions": [{"start": "08:30", "end": "15:00"}]}})
    new = cfg({"session_block_outside": {"sessions": [{"start": "08:30", "end": "15:00"}]}},
              timezone="America/New_York")
    assert loosenings(old, new)  # opens an hour earlier (Chicago time)


# --- property: one-key changes of an ordered value are a loosening in exactly one direction at most -----

SCALARS: dict[tuple[str, str], st.SearchStrategy[Any]] = {
    ("max_contracts", "limit"): st.none() | st.integers(0, 50),
    ("max_contracts", "micro_weight"): st.sampled_from([0.1, 0.2, 0.5, 1.0]),
    ("max_contracts", "count_type"): st.sampled_from(["gross", "net"]),
    ("max_contracts", "action"): st.sampled_from(["close_all", "reduce_to_limit"]),
    ("max_contracts", "warn_at"): st.none() | st.sampled_from([0.5, 0.8, 0.9]),
    ("no_stop_loss_grace", "enabled"): st.booleans(),
    ("max_contracts_per_instrument", "default_limit"): st.none() | st.integers(0, 10),
    ("max_contracts_per_instrument", "unknown_symbol"): st.sampled_from(["block", "allow"]),
    ("daily_realized_loss", "loss_limit"): st.none() | st.sampled_from([100.0, 250.0, 400.0, 1000.0]),
    ("daily_realized_loss", "include_unrealized"): st.booleans(),
    ("daily_realized_loss", "include_fees"): st.booleans(),
    ("daily_unrealized_loss", "loss_limit"): st.none() | st.sampled_from([50.0, 75.0, 200.0]),
    ("max_unrealized_profit", "target"): st.none() | st.sampled_from([100.0, 300.0]),
    ("trade_frequency_limit", "per_minute"): st.none() | st.integers(0, 10),
    ("trade_frequency_limit", "per_hour"): st.none() | st.integers(0, 50),
    ("trade_frequency_limit", "close_positions"): st.booleans(),
    ("cooldown_after_loss", "consecutive_losses"): st.none() | st.integers(1, 6),
    ("cooldown_after_loss", "consecutive_cooldown"): st.sampled_from(["1m", "5m", "15m", "1h"]),
    ("no_stop_loss_grace", "grace"): st.sampled_from(["5s", "30s", "2m"]),
    ("no_stop_loss_grace", "require_full_size"): st.booleans(),
    ("session_block_outside", "flatten_at_end"): st.booleans(),
    ("session_block_outside", "grace"): st.sampled_from(["0s", "30s", "5m"]),
    ("auth_loss_guard", "check_interval"): st.sampled_from(["10s", "30s", "2m"]),
    ("symbol_blocks", "blocked"): st.lists(st.sampled_from(["RTY", "CL*", "NQ"]), unique=True).map(sorted),
    ("daily_realized_profit", "target"): st.none() | st.sampled_from([200.0, 500.0]),
    ("daily_realized_profit", "include_fees"): st.booleans(),
    ("trailing_max_loss", "max_loss"): st.sampled_from([2000.0, 3000.0]),
    ("trailing_max_loss", "buffer"): st.sampled_from([0.0, 100.0, 500.0]),
    ("trailing_max_loss", "starting_balance"): st.none() | st.sampled_from([49000.0, 50000.0]),
}


@st.composite
def one_key_change(draw: st.DrawFn) -> tuple[RiskConfig, RiskConfig]:
    rule, key = draw(st.sampled_from(sorted(SCALARS)))
    assert key in KEY_RULES[rule]
    a, b = draw(SCALARS[(rule, key)]), draw(SCALARS[(rule, key)])
    if rule == "symbol_blocks":  # a list change is ordered only when one list contains the other
        b = sorted(set(a) | set(b))
    return cfg({rule: {key: a}}), cfg({rule: {key: b}})


@settings(max_examples=300, deadline=None)
@given(one_key_change())
def test_a_change_and_its_reverse_are_never_both_loosenings(change: tuple[RiskConfig, RiskConfig]) -> None:
    old, new = change
    assert not (loosenings(old, new) and loosenings(new, old))
    if old == new:
        assert loosenings(old, new) == []
