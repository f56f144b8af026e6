from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from risk_manager.domain.durations import format_duration, parse_duration
from risk_manager.replay import ScenarioError, load_scenario, parse_scenario

SPEC_EXAMPLE = """
name: daily loss locks the account
start: "2026-03-03T15:00:00Z"
accounts:
  - {id: 1001, name: PRAC-V2-1001, balance: 50000, can_trade: true}
contracts: []
fees: true
rules:
  daily_realized_loss: {enabled: true, loss_limit: 500}
steps:
  - at: 0s
    quote: {symbol: MNQ, price: 20000.00}
  - at: 1s
    order: {account: 1001, symbol: MNQ, side: buy, size: 3, type: market, tag: entry}
  - at: 2s
    order: {account: 1001, symbol: MNQ, side: sell, size: 3, type: stop, stop_price: 19990, tag: sl}
  - at: 30s
    quote: {symbol: MNQ, price: 19900.00, bid: 19899.75, ask: 19900.25}
  - at: 31s
    cancel: {account: 1001, tag: sl}
  - at: 40s
    close: {account: 1001, symbol: MNQ}
  - at: 50s
    account: {id: 1001, can_trade: false}
  - at: 60s
    fault: {cut: user_hub, for: 5s}
  - at: "2026-03-03T17:00:00Z"
    advance: true
"""


def test_the_spec_example_parses() -> None:
    sc = parse_scenario(yaml.safe_load(SPEC_EXAMPLE))
    assert sc.start == datetime(2026, 3, 3, 15, tzinfo=UTC)
    assert [s.kind for s in sc.steps] == ["quote", "order", "order", "quote", "cancel", "close", "account",
                                          "fault", "advance"]
    assert sc.steps[-1].at == timedelta(hours=2)
    assert sc.steps[7].fault is not None and sc.steps[7].fault.for_ == timedelta(seconds=5)
    assert sc.steps[7].fault.kind == "cut"
    assert sc.steps[1].order is not None and sc.steps[1].order.instrument == "MNQ"
    assert sc.at(sc.steps[3]) == datetime(2026, 3, 3, 15, 0, 30, tzinfo=UTC)


def test_defaults() -> None:
    sc = parse_scenario({"name": "x", "start": "2026-03-03T15:00:00Z", "steps": [{"at": "500ms", "advance": True}]})
    assert [a.id for a in sc.accounts] == [1001]
    assert sc.accounts[0].balance == 50_000 and sc.accounts[0].can_trade
    assert sc.fees is True
    assert sc.steps[0].at == timedelta(milliseconds=500)


@pytest.mark.parametrize(("patch", "location", "message"), [
    ({"steps": [{"at": "1s", "order": {"account": 1001, "symbol": "MNQ", "side": "buy", "size": 0}}]},
     "steps[0].order.size", "greater than 0"),
    ({"steps": [{"at": "1s", "order": {"account": 1001, "symbol": "MNQ", "side": "long", "size": 1}}]},
     "steps[0].order.side", "'buy' or 'sell'"),
    ({"steps": [{"at": "1s", "order": {"account": 1001, "symbol": "MNQ", "side": "buy", "size": 1,
                                       "type": "limit"}}]},
     "steps[0].order", "needs limit_price"),
    ({"steps": [{"at": "1s", "order": {"account": 1001, "symbol": "MNQ", "side": "buy", "size": 3,
                                       "fill": [1, 1]}}]},
     "steps[0].order", "adds up to 2"),
    ({"steps": [{"at": "1s", "quote": {"price": 1}}]}, "steps[0].quote", "exactly one of symbol or contract"),
    ({"steps": [{"at": "1s", "quote": {"symbol": "ES", "price": 1}, "advance": True}]}, "steps[0]",
     "exactly one of"),
    ({"steps": [{"at": "1s", "fault": {"cut": "user_hub"}}]}, "steps[0].fault", "needs `for:`"),
    ({"steps": [{"at": "1s", "fault": {"http_errors": {"status": 404, "count": 1}}}]},
     "steps[0].fault.http_errors.status", "429"),
    ({"steps": [{"at": "1s", "fault": {"explode": True}}]}, "steps[0].fault.explode", "unknown key"),
    ({"steps": [{"at": "soon", "advance": True}]}, "steps[0].at", "a duration like"),
    ({"steps": [{"at": "5s", "advance": True}, {"at": "1s", "advance": True}]}, "steps[1].at", "time order"),
    ({"steps": [{"at": "2026-03-03T14:00:00Z", "advance": True}]}, "steps[0].at", "before the scenario start"),
    ({"steps": [{"advance": True}]}, "steps[0].at", "required"),
    ({"steps": []}, "steps", "at least 1"),
    ({"rules": {}, "rules_file": "x.yaml"}, "", "at most one of rules, risk, rules_file"),
    ({"accounts": [{"id": 1}, {"id": 1}]}, "", "duplicate account id"),
    ({"start": "yesterday"}, "start", "ISO"),
    ({"colour": "red"}, "colour", "unknown key"),
])
def test_errors_name_the_step_and_key(patch: dict[str, object], location: str, message: str) -> None:
    data: dict[str, object] = {"name": "x", "start": "2026-03-03T15:00:00Z",
                               "steps": [{"at": "1s", "advance": True}]}
    data.update(patch)
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data, "s.yaml")
    assert info.value.location == location
    assert message in info.value.message
    assert str(info.value).startswith("s.yaml")


def test_load_scenario_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read the file"):
        load_scenario(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ScenarioError, match="not valid YAML") as info:
        load_scenario(bad)
    assert "line" in info.value.location
    good = tmp_path / "sub" / "s.yaml"
    good.parent.mkdir()
    good.write_text("name: x\nstart: 2026-03-03T15:00:00Z\nrules_file: risk.yaml\nsteps:\n- {at: 1s, advance: true}\n")
    assert load_scenario(good).rules_file == good.parent / "risk.yaml"


def test_durations() -> None:
    assert parse_duration("1h30m") == timedelta(hours=1, minutes=30)
    assert parse_duration("250ms") == timedelta(milliseconds=250)
    assert parse_duration(5) == timedelta(seconds=5)
    assert parse_duration("2d") == timedelta(days=2)
    assert format_duration(timedelta(hours=1, minutes=30)) == "1h30m"
    assert format_duration(timedelta(0)) == "0s"
    for bad in ("", "5x", "m5", "-1s", True, None):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)  # type: ignore[arg-type]
