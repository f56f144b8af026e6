"""Configuration of the simulator: accounts, users and run-time options (`SimConfig`).

`load_accounts_file(path)` reads the YAML accounts file of `risk-manager sim serve --accounts FILE`:

```yaml
users:                       # optional; none = any userName with an apiKey of >= 8 characters
  - {userName: alice, apiKey: alice-key-123, accounts: [1001]}
accounts:                    # optional; none = the default account 1001
  - {id: 1001, name: SIM-1001, balance: 50000, canTrade: true}
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from risk_manager.domain import Catalogue, Clock


class SimConfigError(ValueError):
    """A simulator configuration (accounts file, option) is invalid; the message names file and key."""


@dataclass(frozen=True, slots=True)
class SimAccount:
    id: int
    name: str
    balance: float = 50_000.0
    can_trade: bool = True
    is_visible: bool = True
    active: bool = True


@dataclass(frozen=True, slots=True)
class SimUser:
    user_name: str
    api_key: str
    account_ids: tuple[int, ...] | list[int] = ()  # empty = every account


def _default_accounts() -> list[SimAccount]:
    return [SimAccount(id=1001, name="SIM-1001", balance=50_000.0, can_trade=True)]


QuoteFeed = Literal["random", "scripted"]


@dataclass(slots=True)
class SimConfig:
    accounts: list[SimAccount] = field(default_factory=_default_accounts)
    users: list[SimUser] = field(default_factory=list)
    seed: int = 1
    token_lifetime: timedelta = timedelta(hours=24)
    wrap_user_events: bool = True
    quote_feed: QuoteFeed = "random"
    fees: bool = True
    clock: Clock | None = None
    catalogue: Catalogue | None = None
    # Beyond the brief's API: tuning knobs with defaults that match the protocol doc.
    keepalive_interval: float = 10.0          # wall seconds between hub pings ({"type":6}); must be < 15
    feed_interval: float = 0.5                # clock seconds between random-walk steps (quotes ≥ 1/s)
    scripted_resend_interval: float = 20.0    # clock seconds before the last quote is re-sent (scripted feed)
    poll_interval: float = 0.1                # wall seconds between automatic polls (SystemClock only)
    record_limit: int = 200_000               # entries kept per recorder list (oldest dropped first)
    rate_limit_general: tuple[int, float] = (200, 60.0)
    rate_limit_history: tuple[int, float] = (50, 30.0)
    partial_quotes: bool = False              # True: after the first, quotes carry only the fields that changed

    def __post_init__(self) -> None:
        if self.quote_feed not in ("random", "scripted"):
            raise SimConfigError(f"quote_feed must be 'random' or 'scripted', got {self.quote_feed!r}")
        if not self.accounts:
            raise SimConfigError("accounts: at least one account is needed")
        ids = [a.id for a in self.accounts]
        if len(set(ids)) != len(ids):
            raise SimConfigError(f"accounts: account ids must be unique, got {ids}")
        if self.token_lifetime <= timedelta(0):
            raise SimConfigError(f"token_lifetime must be positive, got {self.token_lifetime}")
        if not 0 < self.keepalive_interval < 15:
            raise SimConfigError("keepalive_interval must be between 0 and 15 seconds (SignalR clients time out at 30)")
        known = set(ids)
        for user in self.users:
            unknown = [a for a in user.account_ids if a not in known]
            if unknown:
                raise SimConfigError(f"users: user {user.user_name!r} names unknown account(s) {unknown}")


# --- the accounts file (pydantic models: typed validation with field paths) --------------------

class _AccountModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)
    id: int = Field(gt=0)
    name: str = Field(min_length=1)
    balance: float = 50_000.0
    can_trade: bool = Field(True, alias="canTrade")
    is_visible: bool = Field(True, alias="isVisible")
    active: bool = True


class _UserModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)
    user_name: str = Field(alias="userName", min_length=1)
    api_key: str = Field(alias="apiKey", min_length=1)
    accounts: list[int] = Field(default_factory=list)


class _AccountsFileModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    users: list[_UserModel] = Field(default_factory=list)
    accounts: list[_AccountModel] = Field(default_factory=list)


def _error_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def parse_accounts(data: Any, source: str) -> tuple[list[SimAccount], list[SimUser]]:
    """Accounts and users from parsed YAML; `SimConfigError` names `source`, the key and what is allowed."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SimConfigError(f"{source}: expected a mapping with keys 'users' and 'accounts', "
                             f"got {type(data).__name__}")
    # YAML floats written as integers (balance: 50000) are fine; strict mode would refuse them.
    for item in data.get("accounts") or []:
        if isinstance(item, dict) and isinstance(item.get("balance"), int) and not isinstance(
                item.get("balance"), bool):
            item["balance"] = float(item["balance"])
    try:
        model = _AccountsFileModel.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        allowed = {
            "extra_forbidden": "unknown key; allowed: users (userName, apiKey, accounts), "
                               "accounts (id, name, balance, canTrade, isVisible, active)",
        }.get(first["type"], first["msg"])
        raise SimConfigError(f"{source}: {_error_path(tuple(first['loc']))}: {allowed}") from None
    accounts = [SimAccount(id=a.id, name=a.name, balance=a.balance, can_trade=a.can_trade,
                           is_visible=a.is_visible, active=a.active) for a in model.accounts]
    users = [SimUser(user_name=u.user_name, api_key=u.api_key, account_ids=tuple(u.accounts)) for u in model.users]
    if not accounts:
        accounts = _default_accounts()
    ids = [a.id for a in accounts]
    if len(set(ids)) != len(ids):
        raise SimConfigError(f"{source}: accounts: ids must be unique, got {ids}")
    for i, user in enumerate(users):
        unknown = [a for a in user.account_ids if a not in ids]
        if unknown:
            raise SimConfigError(f"{source}: users[{i}].accounts: unknown account id(s) {unknown}; "
                                 f"allowed: ids listed under 'accounts' {ids}")
    return accounts, users


def load_accounts_file(path: Path) -> tuple[list[SimAccount], list[SimUser]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SimConfigError(f"{path}: cannot read the accounts file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SimConfigError(f"{path}: not valid YAML ({exc})") from None
    return parse_accounts(data, str(path))


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: str | float | int, what: str = "duration") -> timedelta:
    """`500ms`, `10s`, `5m`, `2h`, `1d` or a number of seconds → timedelta."""
    if isinstance(value, bool):
        raise SimConfigError(f"{what}: expected a duration like 500ms, 10s, 5m, 2h, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip().lower()
        for unit in ("ms", "s", "m", "h", "d"):
            if text.endswith(unit) and text[: -len(unit)].replace(".", "", 1).isdigit():
                seconds = float(text[: -len(unit)]) * _UNITS[unit]
                break
        else:
            try:
                seconds = float(text)
            except ValueError:
                raise SimConfigError(f"{what}: expected a duration like 500ms, 10s, 5m, 2h, got {value!r}") from None
    if seconds < 0:
        raise SimConfigError(f"{what}: must not be negative, got {value!r}")
    return timedelta(seconds=seconds)
