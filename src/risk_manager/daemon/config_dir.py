"""The daemon's configuration directory: `config.yaml`, `accounts.yaml` and the risk rules file.

- `config.yaml`: the seeds' master schema — `api`, `authentication`, `signalr`, `errorHandling`,
  `orderManagement`, `stateReconciliation` (validated by the Gateway client's `GatewayConfig`) —
  plus `database` (`path`, `retention`), `logging` (`level`) and `risk_file` (default `risk.yaml`).
- `accounts.yaml`: the accounts to protect, by `name` or `id`; the credentials they log in with,
  by reference (`${ENV_VAR}`); per-account rule overrides merged over the risk file's `rules:`.
- the risk rules file (`risk.yaml`): the engine's schema (`risk_manager.engine.RiskConfig`).

Everything is loaded and validated before anything starts: a problem raises `DaemonConfigError`
naming the file, the key and what is allowed, and nothing is half-applied.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from risk_manager.engine import ConfigError, RiskConfig, parse_risk_config
from risk_manager.engine.config_loader import substitute_env
from risk_manager.gateway import GatewayConfig, GatewayConfigError
from risk_manager.store import Retention

CONFIG_FILE = "config.yaml"
ACCOUNTS_FILE = "accounts.yaml"
DEFAULT_RISK_FILE = "risk.yaml"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class DaemonConfigError(ValueError):
    """An invalid configuration directory. `file`, `key` and `message` say where and what is allowed."""

    def __init__(self, file: str, key: str, message: str) -> None:
        self.file = file
        self.key = key
        self.message = message
        super().__init__(f"{file}: {key or '(top level)'}: {message}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RetentionSection(_Strict):
    """`database.retention`: days to keep (the seeds' keys; `null` keeps forever)."""

    enforcement_logs: int | None = Field(30, alias="enforcementLogs", ge=1)
    order_history: int | None = Field(90, alias="orderHistory", ge=1)
    daily_unrealized_pnl: int | None = Field(7, alias="dailyUnrealizedPnl", ge=1)
    journal: int | None = Field(30, ge=1)

    def to_retention(self) -> Retention:
        return Retention(journal_days=self.journal, enforcement_log_days=self.enforcement_logs,
                         order_history_days=self.order_history)


class DatabaseSection(_Strict):
    path: Path = Path("state/risk.db")
    schema_version: int | None = Field(None, alias="schemaVersion")  # informative (the store migrates itself)
    retention: RetentionSection = Field(default_factory=lambda: RetentionSection.model_validate({}))
    durable_fsync: bool = Field(True, alias="durableFsync")


class LoggingSection(_Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # The seed's per-topic switches; every topic is logged (structured, one line per event) either way.
    resilience: dict[str, bool] = Field(default_factory=dict)

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class DaemonSection(_Strict):
    """`config.yaml` keys the daemon owns (the Gateway sections are validated by `GatewayConfig`)."""

    database: DatabaseSection = Field(default_factory=lambda: DatabaseSection.model_validate({}))
    logging: LoggingSection = Field(default_factory=lambda: LoggingSection.model_validate({}))
    risk_file: Path = Path(DEFAULT_RISK_FILE)


_GATEWAY_SECTIONS = ("api", "authentication", "signalr", "signalR", "errorHandling", "orderManagement",
                     "stateReconciliation")


class CredentialSection(_Strict):
    user_name: str = Field(alias="userName", min_length=1)
    api_key: str = Field(alias="apiKey", min_length=1)


class AccountSection(_Strict):
    id: int | None = Field(None, gt=0)
    name: str | None = Field(None, min_length=1)
    credentials: str = "default"
    rules: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True

    @model_validator(mode="after")
    def _identified(self) -> AccountSection:
        if self.id is None and self.name is None:
            raise ValueError("give the account's id or name (or both)")
        return self

    @property
    def label(self) -> str:
        return self.name or str(self.id)


class AccountsFile(_Strict):
    credentials: dict[str, CredentialSection] = Field(min_length=1)
    accounts: list[AccountSection] = Field(min_length=1)

    @model_validator(mode="after")
    def _references(self) -> AccountsFile:
        for i, account in enumerate(self.accounts):
            if account.credentials not in self.credentials:
                raise ValueError(f"accounts[{i}].credentials: {account.credentials!r} is not defined under "
                                 f"credentials (defined: {', '.join(sorted(self.credentials))})")
        keys = [a.id if a.id is not None else a.name for a in self.accounts]
        if len(set(keys)) != len(keys):
            raise ValueError(f"accounts: the same account is listed twice ({keys})")
        return self


@dataclass(frozen=True, slots=True)
class Credential:
    name: str
    user_name: str
    api_key: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class AccountSpec:
    """One account to protect: its id and/or name (resolved at start-up) and its own risk config."""

    id: int | None
    name: str | None
    credential: Credential
    risk: RiskConfig

    @property
    def label(self) -> str:
        return self.name or str(self.id)


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    directory: Path
    gateway: GatewayConfig
    database_path: Path
    retention: Retention
    durable_fsync: bool
    log_level: str
    risk_file: Path
    risk: RiskConfig
    accounts: tuple[AccountSpec, ...]

    @property
    def credentials(self) -> list[Credential]:
        seen: dict[str, Credential] = {}
        for account in self.accounts:
            seen.setdefault(account.credential.name, account.credential)
        return list(seen.values())


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DaemonConfigError(str(path), "", "file not found (run `risk-manager init DIR` to write an "
                                               "example configuration)") from None
    except OSError as exc:
        raise DaemonConfigError(str(path), "", f"cannot read the file: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise DaemonConfigError(str(path), where, f"not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DaemonConfigError(str(path), "", f"expected a mapping of settings, got {type(data).__name__}")
    return data


def _validation_error(file: str, exc: ValidationError, model: type[BaseModel]) -> DaemonConfigError:
    err = exc.errors(include_url=False)[0]
    key = ""
    for part in err["loc"]:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = "unknown key"
    elif err["type"] == "missing":
        message = "required key is missing"
    elif err["type"] == "literal_error":
        message = message.replace("Input should be", "allowed values:")
    if ": " in message and err["type"] == "value_error" and not key:
        key, message = message.split(": ", 1)
    more = len(exc.errors()) - 1
    return DaemonConfigError(file, key, message + (f" (and {more} more problem(s))" if more else ""))


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` merged over `base`: mappings merge key by key, anything else replaces."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _risk_config(data: Mapping[str, Any], file: str, environ: Mapping[str, str],
                 prefix: str = "") -> RiskConfig:
    try:
        return parse_risk_config(dict(data), file, environ)
    except ConfigError as exc:
        path = f"{prefix}.{exc.key_path}" if prefix and exc.key_path else (prefix or exc.key_path)
        raise DaemonConfigError(file, path, exc.message) from None


def load_config_dir(directory: Path | str, environ: Mapping[str, str] | None = None) -> DaemonConfig:
    """Load and validate the whole configuration directory (`DaemonConfigError` on the first problem)."""
    env = os.environ if environ is None else environ
    root = Path(directory)
    if not root.is_dir():
        raise DaemonConfigError(str(root), "", "not a directory (run `risk-manager init DIR` to create one)")
    config_path = root / CONFIG_FILE
    raw = _read_yaml(config_path)
    try:
        raw = substitute_env(raw, str(config_path), env)
    except ConfigError as exc:
        raise DaemonConfigError(str(config_path), exc.key_path, exc.message) from None
    gateway_part = {k: v for k, v in raw.items() if k in _GATEWAY_SECTIONS}
    daemon_part = {k: v for k, v in raw.items() if k not in _GATEWAY_SECTIONS}
    try:
        gateway = GatewayConfig.load(gateway_part, source=str(config_path))
    except GatewayConfigError as exc:
        first = exc.problems[0] if exc.problems else "invalid"
        key, _, message = first.partition(": ")
        raise DaemonConfigError(str(config_path), key, message or first) from None
    try:
        section = DaemonSection.model_validate(daemon_part)
    except ValidationError as exc:
        problem = _validation_error(str(config_path), exc, DaemonSection)
        if problem.message == "unknown key":
            allowed = sorted([*_GATEWAY_SECTIONS[:2], "signalr", *_GATEWAY_SECTIONS[4:], "database", "logging",
                              "risk_file"])
            if "." not in problem.key:
                problem = DaemonConfigError(problem.file, problem.key,
                                            f"unknown key; allowed here: {', '.join(sorted(set(allowed)))}")
        raise problem from None

    risk_path = section.risk_file if section.risk_file.is_absolute() else root / section.risk_file
    risk_raw = _read_yaml(risk_path)
    risk = _risk_config(risk_raw, str(risk_path), env)

    accounts_path = root / ACCOUNTS_FILE
    accounts_raw = _read_yaml(accounts_path)
    try:
        accounts_raw = substitute_env(accounts_raw, str(accounts_path), env)
    except ConfigError as exc:
        raise DaemonConfigError(str(accounts_path), exc.key_path, exc.message) from None
    try:
        accounts_file = AccountsFile.model_validate(accounts_raw)
    except ValidationError as exc:
        raise _validation_error(str(accounts_path), exc, AccountsFile) from None
    credentials = {name: Credential(name, c.user_name, c.api_key) for name, c in accounts_file.credentials.items()}
    specs: list[AccountSpec] = []
    for i, account in enumerate(accounts_file.accounts):
        if not account.enabled:
            continue
        account_risk = risk
        if account.rules:
            merged = deep_merge(risk_raw, {"rules": account.rules})
            account_risk = _risk_config(merged, str(accounts_path), env, prefix=f"accounts[{i}]")
        specs.append(AccountSpec(account.id, account.name, credentials[account.credentials], account_risk))
    if not specs:
        raise DaemonConfigError(str(accounts_path), "accounts", "every account is disabled; enable at least one")
    db_path = section.database.path if section.database.path.is_absolute() else root / section.database.path
    return DaemonConfig(directory=root, gateway=gateway, database_path=db_path,
                        retention=section.database.retention.to_retention(),
                        durable_fsync=section.database.durable_fsync, log_level=section.logging.level,
                        risk_file=risk_path, risk=risk, accounts=tuple(specs))
