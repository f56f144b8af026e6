"""`replay --check`: verify a scenario's `expect:` block against its report.

Matching rules (documented in docs/scenarios.md):

- `actions`, `locks`, `alerts`: every expected item must match a *distinct* report item. An item
  matches when each key it gives matches the report item's value; keys it leaves out are free.
  Order does not matter.
- `no_actions: true` / `no_locks: true`: the report has none (near-miss scenarios).
- `final`: per account id, each key given must match the simulator's final view of that account.
- `broker`: each key given must equal the report's broker counter.
- Values: numbers match within 0.01 (money); a list given for `rules` matches when it has the same
  rules in any order; other lists match item by item and must have the same length; strings and
  booleans match exactly; a mapping matches as a subset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from risk_manager.replay.scenario import Expect

MONEY_TOLERANCE = 0.01


def matches(expected: Any, actual: Any, key: str | None = None) -> bool:
    """Does `actual` satisfy `expected` under the rules of this module?"""
    if expected is None:
        return actual is None
    if isinstance(expected, bool):
        return isinstance(actual, bool) and actual == expected
    if isinstance(expected, int | float):
        return (isinstance(actual, int | float) and not isinstance(actual, bool)
                and abs(float(actual) - float(expected)) <= MONEY_TOLERANCE)
    if isinstance(expected, str):
        return isinstance(actual, str) and actual == expected
    if isinstance(expected, Mapping):
        return isinstance(actual, Mapping) and all(
            k in actual and matches(v, actual[k], str(k)) for k, v in expected.items())
    if isinstance(expected, Sequence):
        if not isinstance(actual, Sequence) or isinstance(actual, str) or len(actual) != len(expected):
            return False
        if key == "rules":
            return sorted(map(str, expected)) == sorted(map(str, actual))
        return all(matches(e, a) for e, a in zip(expected, actual, strict=True))
    return bool(expected == actual)


def _match_items(name: str, expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> list[str]:
    """Each expected item must match a distinct actual item (greedy on the first unused match)."""
    problems = []
    used: set[int] = set()
    for i, item in enumerate(expected):
        hit = next((j for j, got in enumerate(actual) if j not in used and matches(item, got)), None)
        if hit is None:
            problems.append(f"expect.{name}[{i}] {item} not found in the report's {name}: {actual}")
        else:
            used.add(hit)
    return problems


def check_expectations(expect: Expect, report: Mapping[str, Any]) -> list[str]:
    """Every way the report falls short of `expect` (empty when the scenario passed)."""
    problems: list[str] = []
    for name in ("actions", "locks", "alerts"):
        wanted = getattr(expect, name)
        if wanted is not None:
            problems += _match_items(name, wanted, list(report.get(name, [])))
    if expect.no_actions and report.get("actions"):
        problems.append(f"expect.no_actions: the report has {len(report['actions'])} action(s): {report['actions']}")
    if expect.no_locks and report.get("locks"):
        problems.append(f"expect.no_locks: the report has {len(report['locks'])} lock(s): {report['locks']}")
    if expect.final is not None:
        final = report.get("final", {})
        for account_id, wanted_account in expect.final.items():
            got = final.get(str(account_id), final.get(account_id))
            if got is None:
                problems.append(f"expect.final.{account_id}: no such account in the report")
                continue
            for key, value in wanted_account.items():
                if key not in got or not matches(value, got[key], key):
                    problems.append(f"expect.final.{account_id}.{key}: expected {value!r}, got {got.get(key)!r}")
    if expect.broker is not None:
        broker = report.get("broker", {})
        for key, value in expect.broker.items():
            if key not in broker or not matches(value, broker[key], key):
                problems.append(f"expect.broker.{key}: expected {value!r}, got {broker.get(key)!r}")
    return problems
