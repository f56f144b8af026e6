"""The scenario format of `../shared/spec/scenarios.md`: parsing and validation.

A scenario scripts what a trader and the market do on the simulated Gateway. This module turns a
YAML file into typed, validated steps; anything wrong is a `ScenarioError` naming the file, the
step and the key (`steps[3].order.size: must be greater than 0`), which `replay` reports with exit
code 2. The format is a contract: keys are only ever added, optional.

The `rules:` / `risk:` / `rules_file:` blocks are kept as raw mappings here and validated by the
risk-config schema when the scenario is run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from risk_manager.domain.durations import parse_duration
from risk_manager.domain.wire import parse_time


class ScenarioError(ValueError):
    """An invalid scenario. `location` is the key path, e.g. `steps[3].order.size`."""

    def __init__(self, source: str, location: str, message: str) -> None:
        self.source = source
        self.location = location
        self.message = message
        where = f"{source}: {location}" if location else source
        super().__init__(f"{where}: {message}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Side = Literal["buy", "sell"]
OrderKind = Literal["market", "limit", "stop", "stop_limit", "trailing_stop"]


class ScenarioAccount(_Strict):
    id: PositiveInt
    name: str | None = None
    balance: float = 50_000.0
    can_trade: bool = True

    @property
    def display_name(self) -> str:
        return self.name or f"PRAC-V2-{self.id}"


class ScenarioContract(_Strict):
    """An extra contract for the simulator's catalogue (wire field names, plus the simulator's extras)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str
    name: str
    description: str = ""
    tick_size: float = Field(alias="tickSize", gt=0)
    tick_value: float = Field(alias="tickValue", gt=0)
    symbol_id: str | None = Field(default=None, alias="symbolId")
    symbol: str | None = None
    fee: float = Field(default=0.0, ge=0)
    reference_price: float = Field(default=100.0, gt=0)


class QuoteStep(_Strict):
    symbol: str | None = None
    contract: str | None = None
    price: float = Field(gt=0)
    bid: float | None = Field(default=None, gt=0)
    ask: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _instrument(self) -> QuoteStep:
        _one_instrument(self.symbol, self.contract)
        if self.bid is not None and self.ask is not None and self.bid > self.ask:
            raise ValueError(f"bid {self.bid} is above ask {self.ask}")
        return self

    @property
    def instrument(self) -> str:
        return self.contract or self.symbol or ""


class OrderStep(_Strict):
    account: PositiveInt
    symbol: str | None = None
    contract: str | None = None
    side: Side
    size: PositiveInt
    type: OrderKind = "market"
    limit_price: float | None = Field(default=None, gt=0)
    stop_price: float | None = Field(default=None, gt=0)
    trail_ticks: PositiveInt | None = None
    tag: str | None = None
    fill: list[PositiveInt] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> OrderStep:
        _one_instrument(self.symbol, self.contract)
        if self.type in ("limit", "stop_limit") and self.limit_price is None:
            raise ValueError(f"a {self.type} order needs limit_price")
        if self.type in ("stop", "stop_limit") and self.stop_price is None:
            raise ValueError(f"a {self.type} order needs stop_price")
        if self.type == "trailing_stop" and self.trail_ticks is None and self.stop_price is None:
            raise ValueError("a trailing_stop order needs trail_ticks (or stop_price as its starting stop)")
        if self.fill is not None and sum(self.fill) != self.size:
            raise ValueError(f"fill {self.fill} adds up to {sum(self.fill)}, not the order size {self.size}")
        return self

    @property
    def instrument(self) -> str:
        return self.contract or self.symbol or ""


class CancelStep(_Strict):
    account: PositiveInt
    tag: str | None = None
    order_id: PositiveInt | None = None

    @model_validator(mode="after")
    def _target(self) -> CancelStep:
        if (self.tag is None) == (self.order_id is None):
            raise ValueError("give exactly one of tag or order_id")
        return self


class CloseStep(_Strict):
    account: PositiveInt
    symbol: str | None = None
    contract: str | None = None

    @model_validator(mode="after")
    def _instrument(self) -> CloseStep:
        _one_instrument(self.symbol, self.contract)
        return self

    @property
    def instrument(self) -> str:
        return self.contract or self.symbol or ""


class AccountStep(_Strict):
    id: PositiveInt
    can_trade: bool | None = None
    balance: float | None = None


class LatencyFault(_Strict):
    rest_ms: float = Field(default=0, ge=0)
    hub_ms: float = Field(default=0, ge=0)


class HttpErrorsFault(_Strict):
    status: Literal[429, 500, 503]
    count: PositiveInt


class LoseResponseFault(_Strict):
    count: PositiveInt


class DropEventsFault(_Strict):
    hub: Literal["user", "market"]
    count: PositiveInt


class FaultStep(_Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    cut: Literal["user_hub", "market_hub", "rest"] | None = None
    for_: timedelta | None = Field(default=None, alias="for")
    latency: LatencyFault | None = None
    http_errors: HttpErrorsFault | None = None
    expire_token: Literal[True] | None = None
    lose_response: LoseResponseFault | None = None
    drop_events: DropEventsFault | None = None

    @field_validator("for_", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    @model_validator(mode="after")
    def _exactly_one(self) -> FaultStep:
        kinds = [k for k in ("cut", "latency", "http_errors", "expire_token", "lose_response", "drop_events")
                 if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("a fault has exactly one of cut, latency, http_errors, expire_token, lose_response, "
                             f"drop_events (got {', '.join(kinds) or 'none'})")
        if self.cut is not None and (self.for_ is None or self.for_ <= timedelta(0)):
            raise ValueError("a cut needs `for:` with a positive duration, e.g. for: 5s")
        if self.cut is None and self.for_ is not None:
            raise ValueError("`for:` belongs to a cut only")
        return self

    @property
    def kind(self) -> str:
        for k in ("cut", "latency", "http_errors", "expire_token", "lose_response", "drop_events"):
            if getattr(self, k) is not None:
                return k
        raise AssertionError("validated fault without a kind")


STEP_KINDS = ("quote", "order", "cancel", "close", "account", "fault", "advance")


class Step(_Strict):
    at: timedelta
    quote: QuoteStep | None = None
    order: OrderStep | None = None
    cancel: CancelStep | None = None
    close: CloseStep | None = None
    account: AccountStep | None = None
    fault: FaultStep | None = None
    advance: Literal[True] | None = None

    @property
    def kind(self) -> str:
        for k in STEP_KINDS:
            if getattr(self, k) is not None:
                return k
        raise AssertionError("validated step without a kind")

    @model_validator(mode="after")
    def _exactly_one(self) -> Step:
        kinds = [k for k in STEP_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"a step has `at` and exactly one of {', '.join(STEP_KINDS)} "
                             f"(got {', '.join(kinds) or 'none'})")
        return self


class Expect(_Strict):
    """What `replay --check` verifies against the report (see docs/scenarios.md for the matching rules)."""

    actions: list[dict[str, Any]] | None = None
    no_actions: bool = False
    locks: list[dict[str, Any]] | None = None
    no_locks: bool = False
    alerts: list[dict[str, Any]] | None = None
    final: dict[int, dict[str, Any]] | None = None
    broker: dict[str, Any] | None = None


class Scenario(_Strict):
    name: str = Field(min_length=1)
    description: str | None = None
    start: datetime
    accounts: list[ScenarioAccount] = Field(default_factory=lambda: [ScenarioAccount(id=1001)])
    contracts: list[ScenarioContract] = Field(default_factory=list)
    fees: bool = True
    rules: dict[str, Any] | None = None
    risk: dict[str, Any] | None = None
    rules_file: Path | None = None
    steps: list[Step] = Field(min_length=1)
    expect: Expect | None = None

    @field_validator("start", mode="before")
    @classmethod
    def _start(cls, value: Any) -> Any:
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, str):
            try:
                return parse_time(value)
            except ValueError:
                pass
        raise ValueError("expected an ISO 8601 UTC timestamp such as \"2026-03-03T15:00:00Z\"")

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        given = [k for k in ("rules", "risk", "rules_file") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give at most one of rules, risk, rules_file (got {', '.join(given)})")
        ids = [a.id for a in self.accounts]
        if len(set(ids)) != len(ids):
            raise ValueError(f"accounts: duplicate account id in {ids}")
        return self

    def at(self, step: Step) -> datetime:
        return self.start + step.at


def _one_instrument(symbol: str | None, contract: str | None) -> None:
    if (symbol is None) == (contract is None):
        raise ValueError("give exactly one of symbol or contract")


def _step_offset(raw: Any, start: datetime | None, index: int, source: str) -> timedelta:
    """`at:` is an offset (`500ms`, `10s`, `2h`) or an ISO timestamp at/after `start`."""
    if isinstance(raw, datetime) or (isinstance(raw, str) and "T" in raw):
        if start is None:
            raise ScenarioError(source, f"steps[{index}].at", "an ISO timestamp needs a valid `start`")
        when = raw if isinstance(raw, datetime) else _parse_iso(raw, source, index)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        offset = when - start
        if offset < timedelta(0):
            raise ScenarioError(source, f"steps[{index}].at", f"{raw} is before the scenario start {start.isoformat()}")
        return offset
    try:
        return parse_duration(raw)
    except ValueError as exc:
        raise ScenarioError(source, f"steps[{index}].at", f"{exc} or an ISO timestamp") from None


def _parse_iso(raw: str, source: str, index: int) -> datetime:
    try:
        return parse_time(raw)
    except ValueError:
        raise ScenarioError(source, f"steps[{index}].at", f"invalid timestamp {raw!r}") from None


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + ("for" if part == "for_" else part)
    return text


def parse_scenario(data: Any, source: str = "<scenario>") -> Scenario:
    """Validate a parsed YAML document as a scenario."""
    if not isinstance(data, dict):
        raise ScenarioError(source, "", "a scenario is a YAML mapping with name, start, steps, …")
    data = dict(data)
    start: datetime | None = None
    try:
        start = Scenario._start(data.get("start")) if data.get("start") is not None else None
    except ValueError:
        start = None
    steps = data.get("steps")
    if isinstance(steps, list):
        fixed = []
        for i, step in enumerate(steps):
            if not isinstance(step, dict):
                raise ScenarioError(source, f"steps[{i}]", "a step is a mapping with `at` and one action key")
            if "at" not in step:
                raise ScenarioError(source, f"steps[{i}].at", "required: when the step happens (e.g. 10s)")
            fixed.append({**step, "at": _step_offset(step["at"], start, i, source)})
        for i in range(1, len(fixed)):
            if fixed[i]["at"] < fixed[i - 1]["at"]:
                raise ScenarioError(source, f"steps[{i}].at", "steps must be in time order "
                                    f"({fixed[i]['at']} comes after {fixed[i - 1]['at']})")
        data["steps"] = fixed
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = _location(tuple(err["loc"]))
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key (see docs/scenarios.md for the format)"
        elif err["type"] == "missing":
            message = "required key is missing"
        more = len(exc.errors()) - 1
        raise ScenarioError(source, loc, message + (f" (and {more} more problem(s))" if more else "")) from None


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario file. A relative `rules_file` is resolved against the scenario's folder."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(source, "", f"cannot read the file: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ScenarioError(source, where, f"not valid YAML: {getattr(exc, 'problem', exc)}") from None
    scenario = parse_scenario(data, source)
    if scenario.rules_file is not None and not scenario.rules_file.is_absolute():
        scenario = scenario.model_copy(update={"rules_file": path.parent / scenario.rules_file})
    return scenario

