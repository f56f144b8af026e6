"""The replay report of scenarios.md (a contract): JSON document and readable table.

```json
{"scenario": "...", "actions": [...], "locks": [...], "alerts": [...], "final": {...}, "broker": {...}}
```

- `actions`: every broker action the daemon's enforcer finished, in order: `at` (virtual clock,
  when it started), `account`, `rules`, `action`, `contract`, `size`, `status` (done | failed |
  skipped) and `reason` when not done.
- `locks`: every lock the daemon stored, with `start` and `end` (null for condition locks).
- `alerts`: every alert.
- `final`: the simulator's own view of each account (the broker's truth), plus `locked` (the daemon's).
- `broker`: what the simulator counted: orders the daemon placed, duplicate orders, requests, 429s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from risk_manager.daemon.daemon import AlertRecord
from risk_manager.domain import Order, Position, PositionType
from risk_manager.enforcement import ActionOutcome
from risk_manager.engine import ActionKind, Lock


def format_time(when: datetime) -> str:
    """`2026-03-03T15:00:30.000Z`: UTC, milliseconds, as in scenarios.md."""
    utc = when.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def action_row(outcome: ActionOutcome) -> dict[str, Any]:
    action = outcome.action
    row: dict[str, Any] = {
        "at": format_time(outcome.started), "account": action.account_id, "rules": list(action.rules),
        "action": action.kind.value, "contract": action.contract_id, "size": action.size,
        "status": str(outcome.status),
    }
    if str(outcome.status) != "done":
        row["reason"] = outcome.reason or ""
    return row


def lock_row(lock: Lock) -> dict[str, Any]:
    return {"account": lock.account_id, "kind": lock.kind.value, "rules": list(lock.rules), "symbol": lock.symbol,
            "start": format_time(lock.start), "end": None if lock.until is None else format_time(lock.until)}


def alert_row(alert: AlertRecord) -> dict[str, Any]:
    return {"at": format_time(alert.at), "account": alert.account_id, "rule": "+".join(alert.rules),
            "level": alert.level, "message": alert.message}


def position_row(position: Position) -> dict[str, Any]:
    side = "long" if position.type == PositionType.LONG else "short" if position.type == PositionType.SHORT else "?"
    return {"contract": position.contract_id, "side": side, "size": position.size,
            "average_price": position.average_price}


def order_row(order: Order) -> dict[str, Any]:
    return {"id": order.id, "contract": order.contract_id, "type": order.type.name.lower(),
            "side": "buy" if int(order.side) == 0 else "sell", "size": order.size,
            "limit_price": order.limit_price, "stop_price": order.stop_price, "tag": order.custom_tag}


def build_report(name: str, outcomes: Iterable[ActionOutcome], alerts: Iterable[AlertRecord],
                 final: Mapping[str, dict[str, Any]], broker: Mapping[str, int]) -> dict[str, Any]:
    actions: list[dict[str, Any]] = []
    locks: list[dict[str, Any]] = []
    for outcome in outcomes:
        if outcome.action.kind is ActionKind.LOCK:
            if outcome.action.lock is not None and str(outcome.status) != "failed":
                row = lock_row(outcome.action.lock)
                if row not in locks:
                    locks.append(row)
        else:
            actions.append(action_row(outcome))
    return {"scenario": name, "actions": actions, "locks": locks, "alerts": [alert_row(a) for a in alerts],
            "final": dict(final), "broker": dict(broker)}


def _table(title: str, headers: list[str], rows: list[list[Any]]) -> list[str]:
    if not rows:
        return [f"{title}: none"]
    cells = [[("-" if v is None else str(v)) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    out = [f"{title}:", "  " + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    out += ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return out


def render_table(report: Mapping[str, Any]) -> str:
    """The report as readable text (what `replay` prints without --json)."""
    lines = [f"scenario: {report['scenario']}"]
    lines += _table("actions", ["at", "account", "rules", "action", "contract", "size", "status", "reason"], [
        [a["at"], a["account"], "+".join(a["rules"]), a["action"], a["contract"], a["size"], a["status"],
         a.get("reason")] for a in report["actions"]])
    lines += _table("locks", ["account", "kind", "rules", "symbol", "start", "end"], [
        [lk["account"], lk["kind"], "+".join(lk["rules"]), lk["symbol"], lk["start"], lk["end"]]
        for lk in report["locks"]])
    lines += _table("alerts", ["at", "account", "rule", "message"], [
        [a["at"], a["account"], a["rule"], a["message"]] for a in report["alerts"]])
    lines += _table("final (the simulator's view)", ["account", "positions", "open orders", "realized", "fees",
                                                     "balance", "locked", "can_trade"], [
        [aid, ", ".join(f"{p['side']} {p['size']} {p['contract']}" for p in f["positions"]) or "flat",
         len(f["open_orders"]), f"{f['realized_pnl']:.2f}", f"{f['fees']:.2f}", f"{f['balance']:.2f}", f["locked"],
         f["can_trade"]] for aid, f in report["final"].items()])
    lines.append("broker: " + ", ".join(f"{k}={v}" for k, v in report["broker"].items()))
    return "\n".join(lines)
