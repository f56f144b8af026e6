"""The snapshot built from a real engine: content, JSON Schema (shipped = generated), compatibility rules."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import jsonschema
import pytest

from risk_manager.broadcast import Snapshot, account_snapshot, connection_state, json_schema
from risk_manager.broadcast.schema import MAX_RECENT, ActionEntry, shipped_json_schema
from risk_manager.domain import OrderSide, OrderStatus, OrderType
from risk_manager.engine import ActionKind
from tests.broadcast.desk import Desk
from tests.engine.harness import ES


@pytest.fixture
def desk(tmp_path: Path) -> Desk:
    return Desk(tmp_path / "dashboard.token")


def test_breach_of_rule_003_is_in_the_account_snapshot(desk: Desk) -> None:
    desk.open_long(2)
    actions = desk.lose(-600.0)
    assert {a.kind for a in actions} >= {ActionKind.LOCK, ActionKind.FLATTEN_ACCOUNT}
    acct = desk.snapshot()["accounts"]["1001"]
    assert acct["connection"] == "connected" and acct["freshness"] == "fresh"
    assert acct["pnl"]["realized"] == -600.0 and acct["pnl"]["trades"] == 1
    assert acct["positions"][0]["size"] == 2 and acct["positions"][0]["side"] == "long"
    assert acct["positions"][0]["open_pnl"] == pytest.approx(-100.0)  # 1 point × 2 ES × $50
    [lock] = acct["locks"]
    assert lock["kind"] == "until_reset" and lock["rules"] == ["RULE-003"] and lock["until"] is not None
    assert acct["locked"] is True
    assert {a["kind"] for a in acct["actions"]} >= {"lock", "flatten_account", "cancel_orders"}
    rule = next(r for r in acct["rules"] if r["rule_id"] == "RULE-003")
    assert rule["fraction"] >= 1.0
    assert set(acct["enabled_rules"]) == {"RULE-001", "RULE-003"}
    assert acct["session"]["state"] == "always" and acct["session"]["next_reset"] is not None
    jsonschema.validate(desk.snapshot(), json_schema())


def test_working_orders_only_and_recent_lists_bounded_newest_first(desk: Desk) -> None:
    desk.h.order(ES, OrderSide.ASK, OrderType.STOP, stop=4990.0, oid=7)
    desk.h.order(ES, OrderSide.BID, OrderType.LIMIT, oid=8, status=OrderStatus.FILLED)
    status = desk.h.engine.status(1001)
    now = desk.h.clock.now()
    lock_action = desk.lose(-600.0)[0]
    entries = [ActionEntry.of(lock_action, "done", now + timedelta(seconds=i)) for i in range(MAX_RECENT + 5)]
    orders = [o for o in desk.h.engine.accounts[1001].orders.values()]
    acct = account_snapshot(status, "reconnecting", False, None, orders, entries, [], now)
    assert [o["id"] for o in acct["orders"]] == [7]
    assert acct["orders"][0]["type"] == "stop" and acct["orders"][0]["side"] == "sell"
    assert len(acct["actions"]) == MAX_RECENT
    assert acct["actions"][0]["at"] > acct["actions"][-1]["at"]
    assert acct["freshness"] == "stale" and acct["connection"] == "reconnecting"


def test_a_lock_past_its_end_is_not_shown_before_the_engine_expires_it(desk: Desk) -> None:
    desk.lose(-600.0)
    status = desk.h.engine.status(1001)
    [lock] = status.locks
    assert lock.until is not None
    later = lock.until + timedelta(seconds=1)
    assert account_snapshot(status, "connected", True, None, [], [], [], later)["locks"] == []


def test_connection_states_and_bad_input() -> None:
    assert connection_state("connecting") == "reconnecting"
    assert connection_state("connected") == "connected"
    with pytest.raises(ValueError, match="unknown hub state 'lost'"):
        connection_state("lost")


def test_bad_connection_is_refused(desk: Desk) -> None:
    with pytest.raises(ValueError, match="connection 'up'"):
        account_snapshot(desk.h.engine.status(1001), "up", True, None, [], [], [], desk.h.clock.now())  # type: ignore[arg-type]


def test_the_shipped_schema_is_the_generated_one() -> None:
    assert shipped_json_schema() == json.loads(json.dumps(json_schema())), (
        "regenerate: risk-manager status --schema > src/risk_manager/broadcast/snapshot.schema.json")


def test_schema_rejects_what_clients_could_not_read(desk: Desk) -> None:
    snap = desk.snapshot()
    snap["accounts"]["1001"]["freshness"] = "green"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(snap, json_schema())
    del snap["accounts"]["1001"]["freshness"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(snap, json_schema())


def test_fields_added_later_are_ignored_by_v1_clients(desk: Desk) -> None:
    snap = desk.snapshot()
    snap["accounts"]["1001"]["margin"] = 1234.0
    snap["something_new"] = {"x": 1}
    parsed = Snapshot.model_validate(snap)
    assert parsed.accounts["1001"].account_id == 1001
    jsonschema.validate(snap, json_schema())


def test_recent_activity_keeps_the_latest_per_account(desk: Desk) -> None:
    from risk_manager.broadcast import AlertEntry, RecentActivity

    recent = RecentActivity(keep=3)
    action = desk.lose(-600.0)[0]
    now = desk.h.clock.now()
    for i in range(5):
        recent.add_action(1001, ActionEntry.of(action, "done", now + timedelta(seconds=i)))
    recent.add_alert(2002, AlertEntry(now, "warning", "80 % of the daily loss limit", ("RULE-003",)))
    assert [a.at for a in recent.actions(1001)] == [now + timedelta(seconds=i) for i in (2, 3, 4)]
    assert recent.actions(2002) == [] and recent.alerts(2002)[0].level == "warning"
