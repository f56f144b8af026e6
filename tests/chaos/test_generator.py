"""The chaos generator: deterministic per seed, valid, and its YAML replays the same scenario."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from risk_manager.chaos.generator import RULE_CONFIGS, TAG_PREFIX, generate, to_yaml
from risk_manager.chaos.oracle import read_rules
from risk_manager.replay.runner import scenario_risk
from risk_manager.replay.scenario import load_scenario


def test_the_same_seed_gives_the_same_scenario() -> None:
    assert generate(7) == generate(7)
    assert to_yaml(generate(7)) == to_yaml(generate(7))
    assert generate(7) != generate(8)


@pytest.mark.parametrize("seed", range(0, 40))
def test_yaml_round_trips_through_load_scenario(seed: int, tmp_path: Path) -> None:
    scenario = generate(seed)
    path = tmp_path / f"chaos-{seed}.yaml"
    path.write_text(to_yaml(scenario), encoding="utf-8")
    assert load_scenario(path) == scenario


def test_scenarios_have_accounts_trading_and_an_end() -> None:
    for seed in range(20):
        scenario = generate(seed, minutes=1.5)
        assert 2 <= len(scenario.accounts) <= 3
        kinds = Counter(step.kind for step in scenario.steps)
        assert kinds["order"] > 0 and kinds["quote"] > 0
        assert scenario.steps[-1].kind == "advance"
        assert all(step.order.tag is not None and step.order.tag.startswith(TAG_PREFIX)
                   for step in scenario.steps if step.order is not None)
    assert len(generate(3, accounts=1).accounts) == 1


def test_every_fault_kind_and_rule_config_is_drawn() -> None:
    faults: set[str] = set()
    names: set[str] = set()
    for seed in range(150):
        scenario = generate(seed)
        names.add(scenario.name.split("(")[1].rstrip(")"))
        for step in scenario.steps:
            if step.fault is not None:
                kind = step.fault.kind
                if step.fault.drop_events is not None:
                    kind += ":" + step.fault.drop_events.hub
                faults.add(kind)
    assert faults == {"cut", "latency", "http_errors", "expire_token", "lose_response", "drop_events:user",
                      "drop_events:market"}
    assert names == set(RULE_CONFIGS)


def test_rule_configs_are_valid_for_the_daemon_and_the_oracle() -> None:
    for seed in range(30):
        scenario = generate(seed)
        scenario_risk(scenario)                  # the daemon's own schema accepts it
        read_rules(scenario.rules or {})         # and the oracle models every enabled rule


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="accounts"):
        generate(1, accounts=0)
    with pytest.raises(ValueError, match="minutes"):
        generate(1, minutes=0)
