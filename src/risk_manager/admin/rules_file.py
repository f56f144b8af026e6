"""Editing the risk rules file: comment-preserving, validated as a whole before it is written.

`RulesDocument` holds the file as a ruamel.yaml round-trip document, so an edit changes one value
and keeps every comment, the key order and the layout. Before anything is written, the new text is
read back exactly as the daemon reads it (`yaml.safe_load` + the engine's schema, `${ENV}` included):
an invalid result raises `ConfigError` naming the file, the key and what is allowed, and the file
is left as it was. The write is atomic (a 0600 temp file, fsync, rename).
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from risk_manager.admin.errors import AdminError, KeyPathError, RuleNameError
from risk_manager.engine.config import RULE_NAMES, RiskConfig, RulesConfig
from risk_manager.engine.config_loader import parse_risk_config
from risk_manager.engine.errors import ConfigError
from risk_manager.security.paths import write_private_atomic

# Top-level sections that `set` may edit besides the rule blocks (e.g. `set admin commitment_mode true`).
SECTIONS = ("admin", "daily_reset")


def _yaml() -> YAML:
    rt = YAML(typ="rt")
    rt.preserve_quotes = True
    rt.width = 4096  # never re-wrap a user's long line
    rt.indent(mapping=2, sequence=4, offset=2)
    return rt


def rule_key(name: str) -> str:
    """`RULE-003`, `daily_realized_loss` or `daily-realized-loss` → `daily_realized_loss`."""
    text = name.strip()
    if text.upper() in RULE_NAMES:
        return RULE_NAMES[text.upper()]
    key = text.lower().replace("-", "_")
    if key in RulesConfig.model_fields:
        return key
    raise RuleNameError(f"no rule named {name!r}",
                        "use one of: " + ", ".join(RulesConfig.model_fields) + " (or its id, e.g. RULE-003)")


def section_path(name: str) -> list[str]:
    """The document path of a rule block (`rules.<key>`) or of a top-level section (`admin`, `daily_reset`)."""
    if name.strip().lower() in SECTIONS:
        return [name.strip().lower()]
    try:
        return ["rules", rule_key(name)]
    except RuleNameError as exc:
        raise RuleNameError(exc.problem, exc.remedy.replace(" (or its id", f", or a section: {', '.join(SECTIONS)} "
                                                           "(or a rule's id")) from None


def parse_value(text: str) -> Any:
    """A command-line value read as YAML (`400`, `true`, `15m`, `"17:00"`, `[RTY, CL]`, `null`)."""
    try:
        return _yaml().load(text)
    except YAMLError as exc:
        raise KeyPathError(f"the value {text!r} is not valid YAML ({getattr(exc, 'problem', exc)})",
                           "quote text values, e.g. '\"17:00\"', and write lists as [A, B]") from None


def _yaml_problem(exc: Exception) -> str:
    """`not valid YAML at line 3, column 1: …` (PyYAML and ruamel.yaml errors have the same attributes)."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"not valid YAML{where}: {getattr(exc, 'problem', None) or exc}"


@dataclass(frozen=True)
class Change:
    """One setting that differs between two valid configs (key path, value before, value after)."""

    key: str
    old: Any
    new: Any

    def __str__(self) -> str:
        return f"{self.key}: {_show(self.old)} → {_show(self.new)}"


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | dict):
        return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return str(value)


def _flatten(data: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(data, Mapping) and data:
        for key, value in data.items():
            yield from _flatten(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, data


def changes(old: RiskConfig, new: RiskConfig) -> list[Change]:
    """Every setting that differs (defaults filled in), in schema order; lists are compared whole."""
    before = dict(_flatten(old.model_dump(mode="json")))
    after = dict(_flatten(new.model_dump(mode="json")))
    keys = list(before) + [k for k in after if k not in before]
    return [Change(k, before.get(k), after.get(k)) for k in keys if before.get(k) != after.get(k)]


class RulesDocument:
    """One risk file, loaded for editing. `config` is the valid config it held when loaded."""

    def __init__(self, path: Path, text: str | None, environ: Mapping[str, str] | None = None) -> None:
        self.path = path
        self.original = text  # None: the file does not exist yet
        self.environ = environ
        try:
            loaded = _yaml().load(text or "")
        except YAMLError as exc:
            raise ConfigError(str(path), "", _yaml_problem(exc)) from None
        if loaded is None:
            loaded = CommentedMap()
        if not isinstance(loaded, CommentedMap):
            raise ConfigError(str(path), "", f"expected a mapping of settings at the top level, "
                                             f"got {type(loaded).__name__}")
        self.data: CommentedMap = loaded
        self.config = self._validate(text or "")

    @classmethod
    def load(cls, path: Path, environ: Mapping[str, str] | None = None) -> RulesDocument:
        """Read `path` (a missing file is an empty config, all defaults). Raises ConfigError if it is invalid."""
        try:
            text: str | None = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = None
        except OSError as exc:
            raise ConfigError(str(path), "", f"cannot read the file: {exc.strerror or exc}") from None
        return cls(path, text, environ)

    def _validate(self, text: str) -> RiskConfig:
        """`text` read the way the daemon reads its risk file (PyYAML, ${ENV}, the engine's schema)."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(str(self.path), "", _yaml_problem(exc)) from None
        return parse_risk_config(data, str(self.path), self.environ)

    # --- edits ---------------------------------------------------------------------------------------

    def set(self, section: str, key: str, value: Any) -> None:
        """Set `key` (dots for nested keys, numbers for list items) in a rule block or section."""
        parts = key.split(".")
        if not key or any(not p for p in parts):
            raise KeyPathError(f"{key!r} is not a key path", "write keys with dots, e.g. cooldowns.per_minute")
        path = section_path(section) + parts
        node: Any = self.data
        for depth, part in enumerate(path[:-1]):
            node = self._child(node, part, path[:depth + 1], path[depth + 1])
        self._assign(node, path[-1], value, path)

    def unset(self, section: str, key: str) -> bool:
        """Remove `key` so its default applies again; False when the file does not set it."""
        path = section_path(section) + key.split(".")
        node: Any = self.data
        for part in path[:-1]:
            if isinstance(node, CommentedSeq) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            elif isinstance(node, CommentedMap) and part in node:
                node = node[part]
            else:
                return False
        last = path[-1]
        if isinstance(node, CommentedMap) and last in node:
            del node[last]
            return True
        if isinstance(node, CommentedSeq) and last.isdigit() and int(last) < len(node):
            del node[int(last)]
            return True
        return False

    def enable(self, rule: str, enabled: bool) -> None:
        self.set(rule_key(rule), "enabled", enabled)

    @staticmethod
    def _child(node: Any, part: str, where: list[str], next_part: str) -> Any:
        if isinstance(node, CommentedSeq):
            index = _index(part, node, where)
            return node[index]
        if not isinstance(node, CommentedMap):
            raise KeyPathError(f"{'.'.join(where[:-1])} is a single value, not a block with keys",
                               f"set {'.'.join(where[:-1])} itself, or replace it with a block")
        child = node.get(part)
        if not isinstance(child, CommentedMap | CommentedSeq):
            if child is not None:
                raise KeyPathError(f"{'.'.join(where)} is a single value ({child!r}), not a block with keys",
                                   f"set {'.'.join(where)} itself")
            if next_part.isdigit():
                raise KeyPathError(f"{'.'.join(where)} is not in the file, so it has no item {next_part}",
                                   f"set the whole list, e.g. {where[-1]} '[...]' (see `rules show`)")
            child = CommentedMap()
            node[part] = child
        return child

    @staticmethod
    def _assign(node: Any, part: str, value: Any, where: list[str]) -> None:
        if isinstance(node, CommentedSeq):
            node[_index(part, node, where)] = value
        else:
            node[part] = value

    # --- output --------------------------------------------------------------------------------------

    def render(self) -> str:
        stream = io.StringIO()
        _yaml().dump(self.data, stream)
        text = stream.getvalue()
        return "" if text.strip() == "{}" else text

    def validated(self) -> RiskConfig:
        """The edited document as the daemon would read it; ConfigError (file, key, allowed) if invalid."""
        return self._validate(self.render())

    def write(self) -> None:
        """Atomically replace the file with the edited text (0600). Call `validated()` first."""
        try:
            write_private_atomic(self.path, self.render().encode("utf-8"))
        except OSError as exc:
            raise AdminError(f"cannot write {self.path} ({exc.strerror or exc}); nothing was changed",
                             "run the command as a user who may write it (the system config: with sudo), "
                             "or pass --rules with a path in an existing directory") from None


def _index(part: str, node: CommentedSeq, where: list[str]) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise KeyPathError(f"{'.'.join(where)}: {part!r} is not an item of this list (it has {len(node)} item(s), "
                           f"numbered from 0)", "set the whole list instead, e.g. '[...]'")
    return int(part)


def rule_block(config: RiskConfig, section: str) -> dict[str, Any]:
    """A rule block (or section) with every default filled in, as plain data."""
    node: Any = config.model_dump(mode="json")
    for part in section_path(section):
        node = node[part]
    result: dict[str, Any] = node
    return result


SUMMARY_KEYS: dict[str, tuple[str, ...]] = {
    "max_contracts": ("limit", "count_type"),
    "max_contracts_per_instrument": ("limits", "default_limit"),
    "daily_realized_loss": ("loss_limit",),
    "daily_unrealized_loss": ("loss_limit",),
    "max_unrealized_profit": ("target",),
    "trade_frequency_limit": ("per_minute", "per_hour", "per_session"),
    "cooldown_after_loss": ("tiers", "consecutive_losses"),
    "no_stop_loss_grace": ("grace",),
    "session_block_outside": ("sessions",),
    "auth_loss_guard": ("check_interval",),
    "symbol_blocks": ("blocked",),
    "trade_management": ("auto_stop", "breakeven", "trailing"),
    "daily_realized_profit": ("target",),
    "trailing_max_loss": ("max_loss", "buffer"),
}


@dataclass(frozen=True)
class RuleSummary:
    key: str
    rule_id: str
    enabled: bool
    limits: str  # "loss_limit=400, warn_at=0.8"


def _summary_value(key: str, value: Any) -> str:
    if key == "sessions":
        return " + ".join(f"{w['start']}–{w['end']} {w['timezone'] or ''} {','.join(w['days'])}".replace("  ", " ")
                          for w in value)
    return _show(value)


def summaries(config: RiskConfig) -> list[RuleSummary]:
    """One line per rule: its id, whether it is on, and its key limits (with warn_at when set)."""
    result = []
    for key in RulesConfig.model_fields:
        block = rule_block(config, key)
        shown = [*SUMMARY_KEYS.get(key, ()), "warn_at"]
        limits = ", ".join(f"{k}={_summary_value(k, block[k])}" for k in shown
                           if k in block and block[k] not in (None, [], {}))
        result.append(RuleSummary(key, getattr(config.rules, key).rule_id, bool(block["enabled"]), limits or "-"))
    return result


__all__ = ["SECTIONS", "SUMMARY_KEYS", "Change", "RuleSummary", "RulesDocument", "changes", "parse_value",
           "rule_block", "rule_key", "section_path", "summaries"]
