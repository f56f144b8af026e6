"""Loading a risk config from YAML: `${ENV}` substitution, validation, errors that name file and key.

pydantic does the validation; this module only reads the file, substitutes environment variables
(`${NAME}` or `${NAME:-default}`, in any string value) and turns a `ValidationError` into a
`ConfigError` whose every problem names the key path (`rules.daily_realized_loss.loss_limit`)
and what is allowed.
"""

from __future__ import annotations

import os
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from risk_manager.engine.config import RiskConfig
from risk_manager.engine.errors import ConfigError

_SUBKEY = re.compile(r"^([a-z_][a-z0-9_]*(?:\[\d+\])?(?:\.[A-Za-z0-9_]+)*): (.+)$", re.DOTALL)
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def substitute_env(data: Any, file: str, environ: Mapping[str, str] | None = None, path: str = "") -> Any:
    """`data` with `${NAME}` / `${NAME:-default}` replaced in every string; unknown NAME is an error."""
    env = os.environ if environ is None else environ
    if isinstance(data, str):
        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(file, path, f"environment variable {name} is not set (write ${{{name}:-default}} "
                                          "to give a default)")
        return _ENV.sub(replace, data)
    if isinstance(data, Mapping):
        return {k: substitute_env(v, file, env, f"{path}.{k}" if path else str(k)) for k, v in data.items()}
    if isinstance(data, list):
        return [substitute_env(v, file, env, f"{path}[{i}]") for i, v in enumerate(data)]
    return data


def _allowed_keys(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str] | None:
    """The keys allowed at `loc` (the location of an unknown key), walking the schema."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
        else:
            current = None
        # unwrap Optional / list / dict to the model inside
        while current is not None and not (isinstance(current, type) and issubclass(current, BaseModel)):
            args = [a for a in typing.get_args(current) if a is not type(None)]
            if not args:
                return None
            current = args[-1]
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return None


def _problem(error: Mapping[str, Any], model: type[BaseModel]) -> tuple[str, str]:
    loc = tuple(error.get("loc", ()))
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    kind = error.get("type", "")
    message = str(error.get("msg", "invalid"))
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
        sub = _SUBKEY.match(message)
        if sub:  # validators write "key: problem" to point below the model they check
            key, message = sub.group(1), sub.group(2)
            path = f"{path}.{key}" if path else key
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, loc)
        message = "unknown key" + (f"; allowed here: {', '.join(allowed)}" if allowed else "")
    elif kind == "missing":
        message = "required key is missing"
    elif kind == "literal_error":
        message = message.replace("Input should be", "allowed values:")
    elif "input" in error and kind not in ("value_error", "assertion_error"):
        message = f"{message} (got {error['input']!r})"
    return path, message


def config_error_from_validation(exc: ValidationError, file: str,
                                 model: type[BaseModel] = RiskConfig, prefix: str = "") -> ConfigError:
    problems = [_problem(e, model) for e in exc.errors(include_url=False)]
    if prefix:
        problems = [(f"{prefix}.{p}" if p else prefix, m) for p, m in problems]
    return ConfigError(file, problems[0][0], problems[0][1], problems)


def parse_risk_config(data: Any, file: str = "", environ: Mapping[str, str] | None = None) -> RiskConfig:
    """Validate an already parsed mapping (e.g. a scenario's `risk:` block) into a RiskConfig."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(file, "", f"expected a mapping of settings at the top level, got {type(data).__name__}")
    data = substitute_env(data, file, environ)
    try:
        return RiskConfig.model_validate(data)
    except ValidationError as exc:
        raise config_error_from_validation(exc, file) from None


def parse_rules_block(data: Any, file: str = "", environ: Mapping[str, str] | None = None) -> RiskConfig:
    """A scenario's `rules:` mapping (the rule blocks directly) as a RiskConfig with default calendar."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(file, "rules", f"expected a mapping of rule blocks, got {type(data).__name__}")
    return parse_risk_config({"rules": data}, file, environ)


def load_risk_config(path: str | Path, environ: Mapping[str, str] | None = None) -> RiskConfig:
    """Read, substitute and validate a YAML risk config file. Raises ConfigError."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(file, "", f"cannot read the file: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(file, "", f"not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    return parse_risk_config(data, file, environ)
