"""Reading an `Action` back from its JSON (`Action.to_json()`), as the store keeps pending actions."""

from __future__ import annotations

from typing import Any

from risk_manager.enforcement.errors import StoredActionError
from risk_manager.engine.actions import Action, ActionKind, AlertLevel, Lock


def action_from_json(data: Any, *, source: str = "pending_actions") -> Action:
    """The inverse of `Action.to_json()`; `StoredActionError` names the field that is wrong."""
    if not isinstance(data, dict):
        raise StoredActionError(f"{source}: a stored action must be a JSON object, got {type(data).__name__}")
    try:
        kind = ActionKind(data["kind"])
        lock_data = data.get("lock")
        level = data.get("level")
        return Action(
            kind=kind, account_id=int(data["account_id"]), rules=tuple(str(r) for r in data.get("rules") or ()),
            idempotency_key=str(data["idempotency_key"]), contract_id=_opt_str(data.get("contract_id")),
            size=_opt_int(data.get("size")), price=_opt_float(data.get("price")),
            order_id=_opt_int(data.get("order_id")), side=_opt_int(data.get("side")),
            lock=None if lock_data is None else Lock.from_json(lock_data), message=_opt_str(data.get("message")),
            level=None if level is None else AlertLevel(level), symbol=_opt_str(data.get("symbol")),
        )
    except KeyError as exc:
        raise StoredActionError(f"{source}: stored action lacks the field {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise StoredActionError(f"{source}: stored action has a bad value: {exc}") from None


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _opt_int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise ValueError(f"expected an integer, got {value!r}")
    return int(value)


def _opt_float(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)
