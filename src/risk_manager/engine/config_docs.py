"""Generates docs/configuration.md from the config schema, so the reference can never drift from the code.

`risk-manager config docs > docs/configuration.md` rewrites it; a test checks the committed file
matches `render_configuration_reference()`.
"""

from __future__ import annotations

import types
import typing
from datetime import date, time, timedelta
from enum import Enum
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from risk_manager.engine.config import (
    AdminConfig,
    DailyReset,
    RiskConfig,
    RuleConfig,
    RulesConfig,
    format_duration,
)

_INTRO = """# Risk config reference

<!-- GENERATED from risk_manager/engine/config.py by `risk-manager config docs`; do not edit by hand.
     tests/engine/test_config_docs.py fails when this file and the schema disagree. -->

The risk config is one YAML file (`risk-manager config validate FILE` checks it; `risk-manager
config schema` prints its JSON Schema). A scenario's `rules:` block is the `rules` mapping below.
Unknown keys are errors (a typo never silently disables a rule). Any string may use `${ENV_VAR}`
or `${ENV_VAR:-default}`. Durations: `500ms`, `30s`, `15m`, `1h`, `1h30m` (a bare number is seconds).
Times: `"HH:MM"` — quote them; an unquoted `17:00` is read as YAML's base-60 number 1020 and still
understood as 17:00. Money is in positive dollars. What each rule does: [rules.md](rules.md).
"""


_PIPE = "\\|"


def _type(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        base, *meta = args
        text = repr(meta)
        if base is timedelta:
            return "duration"
        if base is time:
            return '"HH:MM"'
        if "_check_zone" in text or "IANA" in text:
            return "IANA time zone"
        bounds = []
        for m in meta:
            for item in getattr(m, "metadata", [m]):
                for attr, sign in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤")):
                    value = getattr(item, attr, None)
                    if value is not None:
                        bounds.append(f"{sign} {value:g}")
        return f"{_type(base)} ({', '.join(bounds)})" if bounds else _type(base)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return " or ".join(_type(a) for a in inner) + (" (optional)" if len(inner) < len(args) else "")
    if origin is list:
        return f"list of {_type(args[0])}"
    if origin is dict:
        return f"map of SYMBOL → {_type(args[1])}"
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
        if issubclass(annotation, Enum):
            return " \\| ".join(f"`{m.value}`" for m in annotation)
        names = {bool: "true/false", int: "integer", float: "number", str: "text", timedelta: "duration",
                 time: '"HH:MM"', date: "date (YYYY-MM-DD)"}
        return names.get(annotation, annotation.__name__)
    return str(annotation)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True, validated_data={})
    if value is None:
        return "—"
    if isinstance(value, timedelta):
        return f"`{format_duration(value)}`"
    if isinstance(value, time):
        return f'`"{value.strftime("%H:%M")}"`'
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, BaseModel):
        return "see below" if value.model_dump() else "—"
    if isinstance(value, list):
        if value and isinstance(value[0], BaseModel):
            return "; ".join(_inline(v) for v in value)
        return f"`{[v.value if isinstance(v, Enum) else v for v in value]}`" if value else "`[]`"
    if isinstance(value, dict):
        return "`{}`" if not value else f"`{value}`"
    return f"`{value}`"


def _inline(model: BaseModel) -> str:
    data = model.model_dump(mode="json", exclude_none=True)
    if "days" in data:
        data["days"] = "-".join((data["days"][0], data["days"][-1])) if len(data["days"]) > 1 else data["days"][0]
    return "`" + ", ".join(f"{k}: {v}" for k, v in data.items()) + "`"


def _table(model: type[BaseModel]) -> list[str]:
    lines = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    for name, field in model.model_fields.items():
        meaning = (field.description or "").replace("|", _PIPE)
        annotation = typing.Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
        lines.append(f"| `{name}` | {_type(annotation)} | {_default(field)} | {meaning} |")
    return lines


def _nested(model: type[BaseModel], seen: set[type[BaseModel]]) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []

    def walk(annotation: Any) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation not in seen and not issubclass(annotation, RuleConfig) and annotation is not RulesConfig:
                seen.add(annotation)
                found.append(annotation)
            return
        for arg in typing.get_args(annotation):
            walk(arg)

    for field in model.model_fields.values():
        walk(field.annotation)
    return found


def render_configuration_reference() -> str:
    out = [_INTRO, "## Top level", "", *_table(RiskConfig), ""]
    for title, section in (("daily_reset", DailyReset), ("admin", AdminConfig)):
        out += [f"### `{title}`", "", *_table(section), ""]
    out += ["## `rules:` — one block per rule", "",
            "Every block has `enabled` (default `false`). `warn_at` exists only on rules with a numeric limit.", ""]
    seen: set[type[BaseModel]] = set()
    for name, field in RulesConfig.model_fields.items():
        model: Any = field.annotation
        assert isinstance(model, type) and issubclass(model, RuleConfig)
        out += [f"### `{name}` — {model.rule_id}", ""]
        if model.required_when_enabled:
            out += [f"Required when enabled: {', '.join(f'`{k}`' for k in model.required_when_enabled)}.", ""]
        out += [*_table(model), ""]
        for sub in _nested(model, seen):
            out += [f"#### {sub.__name__}", "", *_table(sub), ""]
    out += ["## Cross-field checks", "",
            "- `max_contracts_per_instrument.limits.*` and `default_limit` may not exceed `max_contracts.limit` "
            "when both rules are enabled.",
            "- `cooldown_after_loss.tiers` ascend by `loss`; a bigger loss may not have a shorter `cooldown`.",
            "- `trade_management.auto_stop.after` must be shorter than `no_stop_loss_grace.grace` when both are on.",
            "- `trailing_max_loss.buffer` must be smaller than `max_loss`.",
            "- A session window's `start` and `end` differ (end before start: the window crosses midnight).",
            ""]
    return "\n".join(out)
