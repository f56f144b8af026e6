"""Model binding of REST request bodies, as ASP.NET Core does it for the Gateway.

Property names match case-insensitively; optional properties may be omitted or `null`; numbers
may arrive as JSON numbers or numeric strings; anything else that does not fit the declared type
is a model-binding failure, answered 400 `application/problem+json` with `errors{field: [msg]}`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal

from risk_manager.domain import parse_time

FieldKind = Literal["int", "int64", "float", "bool", "str", "datetime", "bracket"]

_DOTNET = {"int": "System.Int32", "int64": "System.Int64", "float": "System.Decimal", "bool": "System.Boolean",
           "str": "System.String", "datetime": "System.DateTime", "bracket": "PlaceOrderBracket"}
_INT_RANGE = {"int": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    kind: FieldKind
    required: bool = False


class BindingError(Exception):
    """The request cannot be bound; `errors` is the problem document's `errors` member."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))


def problem_document(errors: dict[str, list[str]], trace_id: str) -> dict[str, Any]:
    return {
        "type": "https://tools.ietf.org/html/rfc9110#section-15.5.1",
        "title": "One or more validation errors occurred.",
        "status": 400,
        "errors": errors,
        "traceId": trace_id,
    }


def parse_body(raw: bytes, fields: tuple[Field, ...]) -> Any:
    """The JSON body; an empty body is allowed only for endpoints without fields."""
    text = raw.decode("utf-8", errors="replace").strip()
    if not text:
        if not fields:
            return {}
        raise BindingError({"": ["A non-empty request body is required."]})
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise BindingError({"$": ["The JSON value is nested too deeply."],
                            "request": ["The request field is required."]}) from None
    except ValueError as exc:
        raise BindingError({"$": [f"The JSON value could not be parsed: {exc}."],
                            "request": ["The request field is required."]}) from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"'{name}' is an invalid JSON literal")


def bind(data: Any, fields: tuple[Field, ...]) -> dict[str, Any]:
    """Values by the fields' canonical names (None for an omitted or null optional field)."""
    if not fields:
        return {}
    if not isinstance(data, dict):
        raise BindingError({"$": [f"The JSON value could not be converted to the request type: expected an "
                                  f"object, got {_json_type(data)}."]})
    lowered = {k.lower(): v for k, v in data.items() if isinstance(k, str)}
    out: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for f in fields:
        value = lowered.get(f.name.lower())
        if value is None:
            if f.required:
                errors.setdefault(f.name, []).append(f"The {f.name} field is required.")
            out[f.name] = None
            continue
        try:
            out[f.name] = _convert(f, value)
        except ValueError as exc:
            errors.setdefault(f"$.{f.name}", []).append(
                f"The JSON value could not be converted to {_DOTNET[f.kind]}. Path: $.{f.name} ({exc}).")
    if errors:
        raise BindingError(errors)
    return out


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, dict) else "null"


def _convert(f: Field, value: Any) -> Any:
    if f.kind in ("int", "int64"):
        if isinstance(value, (bool, float | list | dict)):
            raise ValueError(f"expected an integer, got {_json_type(value)}")
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise ValueError(f"expected an integer, got the string {value!r}") from None
        low, high = _INT_RANGE[f.kind]
        if not low <= value <= high:
            raise ValueError(f"{value} is out of range")
        return int(value)
    if f.kind == "float":
        if isinstance(value, (bool, list | dict)):
            raise ValueError(f"expected a number, got {_json_type(value)}")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"expected a number, got the string {value!r}") from None
        if not math.isfinite(number):
            raise ValueError("expected a finite number")
        return number
    if f.kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {_json_type(value)}")
        return value
    if f.kind == "str":
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {_json_type(value)}")
        return value
    if f.kind == "datetime":
        if not isinstance(value, str):
            raise ValueError(f"expected an ISO 8601 timestamp string, got {_json_type(value)}")
        try:
            return parse_time(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 timestamp") from None
    # bracket: {ticks, type}
    if not isinstance(value, dict):
        raise ValueError(f"expected an object {{ticks, type}}, got {_json_type(value)}")
    try:
        return bind(value, (Field("ticks", "int", True), Field("type", "int", False)))
    except BindingError as exc:
        raise ValueError(str(exc)) from None
