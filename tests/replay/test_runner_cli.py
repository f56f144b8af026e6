"""`risk-manager replay`: the report format of scenarios.md, the readable table, exit codes 0 / 1 / 2."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from risk_manager.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
DAILY = ROOT / "scenarios" / "rule-03-daily-loss-breach.yaml"


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    """`replay` configures the root logger; keep that from leaking into other test modules."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.setLevel(level)
    root.handlers[:] = handlers


def test_json_report_has_the_contract_shape(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["replay", str(DAILY), "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert set(report) == {"scenario", "actions", "locks", "alerts", "final", "broker"}
    flatten = next(a for a in report["actions"] if a["action"] == "flatten_account")
    assert flatten == {"at": "2026-03-03T15:00:30.000Z", "account": 1001, "rules": ["RULE-003"],
                       "action": "flatten_account", "contract": None, "size": None, "status": "done"}
    assert report["locks"] == [{"account": 1001, "kind": "until_reset", "rules": ["RULE-003"], "symbol": None,
                                "start": "2026-03-03T15:00:30.000Z", "end": "2026-03-03T23:00:00.000Z"}]
    assert report["alerts"][0]["rule"] == "RULE-003"
    final = report["final"]["1001"]
    assert set(final) == {"positions", "open_orders", "realized_pnl", "fees", "balance", "locked", "can_trade"}
    assert final["positions"] == [] and final["locked"] is True
    assert round(final["balance"], 2) == round(50_000 + final["realized_pnl"] - final["fees"], 2)
    assert set(report["broker"]) == {"orders_placed_by_daemon", "duplicate_orders", "requests", "http_429"}
    assert report["broker"]["duplicate_orders"] == 0


def test_same_report_every_time(tmp_path: Path) -> None:
    reports = []
    for i in range(2):
        out = tmp_path / f"r{i}.json"
        assert CliRunner().invoke(app, ["replay", str(DAILY), "--json", str(out)]).exit_code == 0
        report = json.loads(out.read_text())
        report["broker"].pop("requests")  # REST reads may differ by a verification poll
        reports.append(report)
    assert reports[0] == reports[1]


def test_table_without_json() -> None:
    result = CliRunner().invoke(app, ["replay", str(DAILY)])
    assert result.exit_code == 0
    assert "flatten_account" in result.stdout and "until_reset" in result.stdout and "broker:" in result.stdout


def test_invalid_scenario_exits_2_naming_step_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text('name: x\nstart: "2026-03-03T15:00:00Z"\nsteps:\n  - {at: 0s, quote: {symbol: MNQ, price: 1}}\n'
                   "  - {at: 1s, order: {account: 1001, symbol: MNQ, side: buy, size: 0}}\n")
    result = CliRunner().invoke(app, ["replay", str(bad)])
    assert result.exit_code == 2
    assert "steps[1].order.size" in result.stderr


def test_bad_rules_and_unknown_tag_exit_2(tmp_path: Path) -> None:
    rules = tmp_path / "risk.yaml"
    rules.write_text("rules: {daily_realized_loss: {enabled: true, loss_limt: 5}}\n")
    result = CliRunner().invoke(app, ["replay", str(DAILY), "--rules", str(rules)])
    assert result.exit_code == 2
    assert "rules.daily_realized_loss.loss_limt" in result.stderr
    tag = tmp_path / "tag.yaml"
    tag.write_text('name: x\nstart: "2026-03-03T15:00:00Z"\nsteps:\n  - {at: 1s, cancel: {account: 1001, tag: nope}}\n')
    result = CliRunner().invoke(app, ["replay", str(tag)])
    assert result.exit_code == 2
    assert "steps[0].cancel" in result.stderr


def test_check_mismatch_exits_1(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(DAILY.read_text().replace("orders_placed_by_daemon: 0", "orders_placed_by_daemon: 3"))
    result = CliRunner().invoke(app, ["replay", str(wrong), "--check"])
    assert result.exit_code == 1
    assert "expect.broker.orders_placed_by_daemon" in result.stderr
