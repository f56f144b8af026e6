"""Every scenario of `scenarios/` through `replay --check`: the real daemon against the simulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from risk_manager.replay.runner import replay
from risk_manager.replay.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))
RULE_IDS = [f"{n:02d}" for n in range(1, 15)]
FAULTS = ["cut-user-hub", "cut-market-hub", "cut-rest", "latency", "http-429", "http-500", "http-503",
          "expire-token", "lose-response", "drop-events"]

# Scenarios that expose a known bug outside the daemon; strict, so a fix makes the test fail until removed.
KNOWN_BUGS: dict[str, str] = {}   # scenario file → why it fails today (a strict xfail until fixed)


def test_library_covers_every_rule_and_fault() -> None:
    names = [p.name for p in SCENARIOS]
    for rule in RULE_IDS:
        assert any(n.startswith(f"rule-{rule}-") and "breach" in n for n in names), f"RULE-0{rule}: no breach"
        assert any(n.startswith(f"rule-{rule}-") and "near-miss" in n for n in names), f"RULE-0{rule}: no near-miss"
    for fault in FAULTS:
        assert f"fault-{fault}.yaml" in names
    assert all(load_scenario(p).expect is not None for p in SCENARIOS)


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
async def test_scenario(path: Path, request: pytest.FixtureRequest) -> None:
    if path.name in KNOWN_BUGS:
        request.applymarker(pytest.mark.xfail(reason=KNOWN_BUGS[path.name], strict=True))
    result = await replay(load_scenario(path), source=str(path), check=True)
    assert result.problems == [], "\n".join(result.problems)
    assert result.report["broker"]["duplicate_orders"] == 0
