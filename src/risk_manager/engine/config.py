"""The risk config schema (rules.md § Config keys), pydantic v2.

Key names are a contract shared with scenarios and user configs: exactly those of rules.md.
Every model forbids unknown keys, so a typo is an error naming the key, never a silently
ignored setting. Durations are written `500ms`, `30s`, `15m`, `1h` or `1h30m` (a bare number
is seconds); wall-clock times `"HH:MM"` (an unquoted YAML `17:00` arrives as the sexagesimal
integer 1020 and is read back as 17:00); money is in positive dollars.
"""

from __future__ import annotations

import re
from datetime import date, time, timedelta
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, ClassVar, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from risk_manager.domain.durations import format_duration as format_duration  # re-exported: rules and docs use it
from risk_manager.domain.durations import parse_duration as parse_duration

_TIME_OF_DAY = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def parse_time_of_day(value: Any) -> time:
    if isinstance(value, time):
        return value.replace(tzinfo=None)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1440:
        # YAML 1.1 reads an unquoted 17:00 as the base-60 integer 1020 (= minutes since midnight).
        return time(value // 60, value % 60)
    if isinstance(value, str):
        match = _TIME_OF_DAY.match(value.strip())
        if match:
            return time(int(match.group(1)), int(match.group(2)))
    raise ValueError(f"expected a wall-clock time \"HH:MM\" (00:00–23:59), got {value!r}")


def _check_zone(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected an IANA time zone name like America/Chicago, got {value!r}")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}: use an IANA name like America/Chicago or "
                         "Europe/London") from None
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^(\d+(\.\d+)?(ms|s|m|h|d))+$",
                    "description": "a duration: 500ms, 30s, 15m, 1h, 1h30m"}),
]
TimeOfDay = Annotated[
    time,
    BeforeValidator(parse_time_of_day),
    PlainSerializer(lambda t: t.strftime("%H:%M"), return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^([01]?\d|2[0-3]):[0-5]\d$",
                    "description": "a wall-clock time HH:MM"}),
]
TimeZoneName = Annotated[str, BeforeValidator(_check_zone),
                         WithJsonSchema({"type": "string", "description": "an IANA time zone, e.g. America/Chicago"})]
Money = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(gt=0, lt=1)]


class Weekday(StrEnum):
    mon = "mon"
    tue = "tue"
    wed = "wed"
    thu = "thu"
    fri = "fri"
    sat = "sat"
    sun = "sun"

    @property
    def number(self) -> int:
        """Monday = 0, as `date.weekday()`."""
        return list(Weekday).index(self)


WEEKDAYS = (Weekday.mon, Weekday.tue, Weekday.wed, Weekday.thu, Weekday.fri)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class RuleConfig(_Strict):
    """Keys every rule block has. `warn_at` only on rules with a numeric limit."""

    rule_id: ClassVar[str] = ""
    has_limit: ClassVar[bool] = False
    required_when_enabled: ClassVar[tuple[str, ...]] = ()

    enabled: bool = Field(False, description="turn the rule on")
    warn_at: Fraction | None = Field(None, description="alert once the value reaches this fraction of the limit "
                                                        "(0–1, e.g. 0.8); re-armed below warn_at − 0.1")

    @model_validator(mode="after")
    def _check_rule(self) -> Self:
        if self.warn_at is not None and not self.has_limit:
            raise ValueError(f"warn_at: this rule ({self.rule_id}) has no numeric limit to warn about")
        if self.enabled:
            missing = [k for k in self.required_when_enabled if getattr(self, k) is None]
            if missing:
                raise ValueError(f"{', '.join(missing)} is required when the rule is enabled")
        return self


class MaxContractsConfig(RuleConfig):
    rule_id = "RULE-001"
    has_limit = True
    required_when_enabled = ("limit",)
    limit: Annotated[int, Field(ge=0)] | None = Field(None, description="most contracts open at once, account-wide")
    count_type: Literal["gross", "net"] = Field("gross", description="gross: sum of sizes; net: |long − short|")
    micro_weight: Annotated[float, Field(gt=0, le=1)] = Field(
        1.0, description="weight of a micro contract (e.g. 0.1: ten MNQ count as one)")
    micro_symbols: list[str] | None = Field(
        None, description="symbols counted as micros (default: M-symbols with a full-size twin in the catalogue)")
    action: Literal["reduce_to_limit", "close_all"] = Field(
        "reduce_to_limit", description="reduce_to_limit: partial-close the excess; close_all: flatten the account")


class MaxContractsPerInstrumentConfig(RuleConfig):
    rule_id = "RULE-002"
    has_limit = True
    limits: dict[str, Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict, description="most contracts per symbol root, e.g. {MNQ: 2, ES: 1}")
    default_limit: Annotated[int, Field(ge=0)] | None = Field(None, description="limit for symbols not listed")
    unknown_symbol: Literal["block", "allow"] = Field(
        "allow", description="for unlisted symbols when there is no default_limit: block (limit 0) or allow")

    @field_validator("limits")
    @classmethod
    def _upper_symbols(cls, value: dict[str, int]) -> dict[str, int]:
        return {k.upper(): v for k, v in value.items()}

    def limit_for(self, symbol: str) -> int | None:
        limit = self.limits.get(symbol.upper())
        if limit is not None:
            return limit
        if self.default_limit is not None:
            return self.default_limit
        return 0 if self.unknown_symbol == "block" else None


class DailyRealizedLossConfig(RuleConfig):
    rule_id = "RULE-003"
    has_limit = True
    required_when_enabled = ("loss_limit",)
    loss_limit: Money | None = Field(None, description="stop for the day at −loss_limit dollars")
    include_unrealized: bool = Field(True, description="judge realized + open P&L in real time")
    include_fees: bool = Field(True, description="subtract fees from realized P&L")


class DailyUnrealizedLossConfig(RuleConfig):
    rule_id = "RULE-004"
    has_limit = True
    required_when_enabled = ("loss_limit",)
    loss_limit: Money | None = Field(None, description="close one position when its open P&L reaches −loss_limit")


class MaxUnrealizedProfitConfig(RuleConfig):
    rule_id = "RULE-005"
    has_limit = True
    required_when_enabled = ("target",)
    target: Money | None = Field(None, description="close one position when its open P&L reaches target")


class FrequencyCooldowns(_Strict):
    per_minute: Duration = Field(timedelta(seconds=60), description="cooldown after the per-minute limit")
    per_hour: Duration = Field(timedelta(minutes=30), description="cooldown after the per-hour limit")
    per_session: Duration = Field(timedelta(hours=1), description="cooldown after the per-session limit")


class TradeFrequencyLimitConfig(RuleConfig):
    rule_id = "RULE-006"
    has_limit = True
    per_minute: Annotated[int, Field(ge=0)] | None = Field(None, description="fills allowed in any rolling minute")
    per_hour: Annotated[int, Field(ge=0)] | None = Field(None, description="fills allowed in any rolling hour")
    per_session: Annotated[int, Field(ge=0)] | None = Field(None, description="fills allowed per trading day")
    cooldowns: FrequencyCooldowns = Field(default_factory=FrequencyCooldowns)  # type: ignore[arg-type]
    close_positions: bool = Field(True, description="also flatten and cancel orders on a breach")

    @model_validator(mode="after")
    def _one_window(self) -> Self:
        if self.enabled and self.per_minute is None and self.per_hour is None and self.per_session is None:
            raise ValueError("set at least one of per_minute, per_hour, per_session when the rule is enabled")
        return self


class LossTier(_Strict):
    loss: Money = Field(description="a losing trade of at least this many dollars…")
    cooldown: Duration = Field(description="…locks the account for this long")


class CooldownAfterLossConfig(RuleConfig):
    rule_id = "RULE-007"
    has_limit = True
    tiers: list[LossTier] = Field(default_factory=list,
                                  description="ascending by loss; the most severe reached applies")
    consecutive_losses: Annotated[int, Field(ge=1)] | None = Field(None, description="this many losing trades in a row "
                                                                                     "also trigger a cooldown")
    consecutive_cooldown: Duration = Field(timedelta(minutes=15), description="cooldown after consecutive_losses")
    close_positions: bool = Field(True, description="also flatten and cancel orders on a breach")

    @model_validator(mode="after")
    def _tier_order(self) -> Self:
        for i in range(1, len(self.tiers)):
            before, tier = self.tiers[i - 1], self.tiers[i]
            if tier.loss <= before.loss:
                raise ValueError(f"tiers[{i}].loss: tiers must be in ascending order of loss "
                                 f"({tier.loss:g} after {before.loss:g})")
            if tier.cooldown < before.cooldown:
                raise ValueError(f"tiers[{i}].cooldown: a bigger loss cannot have a shorter cooldown "
                                 f"({format_duration(tier.cooldown)} after {format_duration(before.cooldown)})")
        if self.enabled and not self.tiers and self.consecutive_losses is None:
            raise ValueError("set tiers or consecutive_losses when the rule is enabled")
        return self


class NoStopLossGraceConfig(RuleConfig):
    rule_id = "RULE-008"
    grace: Duration = Field(timedelta(seconds=30), description="time a new position may stay without a stop")
    require_full_size: bool = Field(False, description="stops must cover the whole position size")


class SessionWindow(_Strict):
    start: TimeOfDay = Field(description="window opens, HH:MM")
    end: TimeOfDay = Field(description="window closes, HH:MM (before start: the window crosses midnight)")
    timezone: TimeZoneName | None = Field(None, description="IANA zone of start/end (default: top-level timezone)")
    days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS), description="days the window OPENS on")

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if self.start == self.end:
            raise ValueError("start and end are equal: a window must have a length (use 00:00–23:59 for all day)")
        if not self.days:
            raise ValueError("days: list at least one day (mon, tue, wed, thu, fri, sat, sun)")
        return self


class EarlyClose(_Strict):
    date: date
    time: TimeOfDay = Field(description="trading stops at this time on that date (top-level timezone)")


def _default_sessions() -> list[SessionWindow]:
    return [SessionWindow(start=time(8, 30), end=time(15, 0), timezone="America/Chicago")]


class SessionBlockOutsideConfig(RuleConfig):
    rule_id = "RULE-009"
    sessions: list[SessionWindow] = Field(default_factory=_default_sessions,
                                          description="allowed trading windows (default 08:30–15:00 "
                                                      "America/Chicago mon–fri)")
    symbol_sessions: dict[str, list[SessionWindow]] = Field(default_factory=dict,
                                                            description="per-symbol windows replacing `sessions`")
    holidays: list[date] | None = Field(None, description="dates closed all day (default: the shipped CME calendar; "
                                                          "[] for none)")
    early_close: list[EarlyClose] | None = Field(None, description="dates that close early (default: the shipped "
                                                                   "CME calendar; [] for none)")
    flatten_at_end: bool = Field(True, description="flatten, cancel and lock when a session ends")
    grace: Duration = Field(timedelta(0), description="delay after the session end before the flatten")

    @field_validator("symbol_sessions")
    @classmethod
    def _symbols(cls, value: dict[str, list[SessionWindow]]) -> dict[str, list[SessionWindow]]:
        for symbol, windows in value.items():
            if not windows:
                raise ValueError(f"{symbol}: list at least one window (a symbol that may never trade belongs in "
                                 "symbol_blocks)")
        return {k.upper(): v for k, v in value.items()}

    @field_validator("sessions")
    @classmethod
    def _some(cls, value: list[SessionWindow]) -> list[SessionWindow]:
        if not value:
            raise ValueError("list at least one window")
        return value


class AuthLossGuardConfig(RuleConfig):
    rule_id = "RULE-010"
    check_interval: Duration = Field(timedelta(seconds=30), description="how often the daemon polls Account/search")

    @field_validator("check_interval")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than 0s")
        return value


class SymbolBlocksConfig(RuleConfig):
    rule_id = "RULE-011"
    blocked: list[str] = Field(default_factory=list, description="symbol roots or shell patterns, e.g. [RTY, \"CL*\"]")

    @field_validator("blocked")
    @classmethod
    def _upper(cls, value: list[str]) -> list[str]:
        if any(not p.strip() for p in value):
            raise ValueError("a blocked pattern cannot be empty")
        return [p.strip().upper() for p in value]


class AutoStop(_Strict):
    ticks: Annotated[int, Field(ge=1)] = Field(description="stop distance from the entry, in ticks")
    after: Duration = Field(timedelta(seconds=5), description="wait this long for the trader's own stop")


class Breakeven(_Strict):
    trigger_ticks: Annotated[int, Field(ge=1)] = Field(description="profit in ticks that triggers the move")
    offset_ticks: Annotated[int, Field(ge=0)] = Field(0, description="stop goes to entry ± this many ticks")

    @model_validator(mode="after")
    def _offset_below_trigger(self) -> Self:
        if self.offset_ticks >= self.trigger_ticks:
            raise ValueError("offset_ticks must be smaller than trigger_ticks (the stop would be above the price)")
        return self


class Trailing(_Strict):
    activate_ticks: Annotated[int, Field(ge=1)] = Field(description="profit in ticks that activates the trail")
    distance_ticks: Annotated[int, Field(ge=1)] = Field(description="stop distance behind the best price")


class TradeManagementConfig(RuleConfig):
    rule_id = "RULE-012"
    auto_stop: AutoStop | None = Field(None, description="place a stop on a new position that has none")
    breakeven: Breakeven | None = Field(None, description="move the stop to entry ± offset once in profit")
    trailing: Trailing | None = Field(None, description="trail the stop behind the best price")

    @model_validator(mode="after")
    def _something(self) -> Self:
        if self.enabled and self.auto_stop is None and self.breakeven is None and self.trailing is None:
            raise ValueError("set at least one of auto_stop, breakeven, trailing when the rule is enabled")
        return self


class DailyRealizedProfitConfig(RuleConfig):
    rule_id = "RULE-013"
    has_limit = True
    required_when_enabled = ("target",)
    target: Money | None = Field(None, description="lock for the day once realized P&L reaches target")
    include_fees: bool = Field(True, description="subtract fees from realized P&L")
    message: str = Field("daily profit target reached: done for the day", description="alert text")


class TrailingMaxLossConfig(RuleConfig):
    rule_id = "RULE-014"
    has_limit = True
    required_when_enabled = ("max_loss",)
    max_loss: Money | None = Field(None, description="the firm's maximum loss limit in dollars")
    starting_balance: Money | None = Field(None, description="default: the account balance when first seen")
    buffer: Annotated[float, Field(ge=0)] = Field(0.0, description="act this many dollars before the firm would")

    @model_validator(mode="after")
    def _buffer(self) -> Self:
        if self.max_loss is not None and self.buffer >= self.max_loss:
            raise ValueError(f"buffer ({self.buffer:g}) must be smaller than max_loss ({self.max_loss:g})")
        return self


class RulesConfig(_Strict):
    max_contracts: MaxContractsConfig = Field(default_factory=MaxContractsConfig)  # type: ignore[arg-type]
    max_contracts_per_instrument: MaxContractsPerInstrumentConfig = Field(
        default_factory=MaxContractsPerInstrumentConfig)  # type: ignore[arg-type]
    daily_realized_loss: DailyRealizedLossConfig = Field(default_factory=DailyRealizedLossConfig)  # type: ignore[arg-type]
    daily_unrealized_loss: DailyUnrealizedLossConfig = Field(
        default_factory=DailyUnrealizedLossConfig)  # type: ignore[arg-type]
    max_unrealized_profit: MaxUnrealizedProfitConfig = Field(
        default_factory=MaxUnrealizedProfitConfig)  # type: ignore[arg-type]
    trade_frequency_limit: TradeFrequencyLimitConfig = Field(
        default_factory=TradeFrequencyLimitConfig)  # type: ignore[arg-type]
    cooldown_after_loss: CooldownAfterLossConfig = Field(default_factory=CooldownAfterLossConfig)  # type: ignore[arg-type]
    no_stop_loss_grace: NoStopLossGraceConfig = Field(default_factory=NoStopLossGraceConfig)  # type: ignore[arg-type]
    session_block_outside: SessionBlockOutsideConfig = Field(
        default_factory=SessionBlockOutsideConfig)  # type: ignore[arg-type]
    auth_loss_guard: AuthLossGuardConfig = Field(default_factory=AuthLossGuardConfig)  # type: ignore[arg-type]
    symbol_blocks: SymbolBlocksConfig = Field(default_factory=SymbolBlocksConfig)  # type: ignore[arg-type]
    trade_management: TradeManagementConfig = Field(default_factory=TradeManagementConfig)  # type: ignore[arg-type]
    daily_realized_profit: DailyRealizedProfitConfig = Field(
        default_factory=DailyRealizedProfitConfig)  # type: ignore[arg-type]
    trailing_max_loss: TrailingMaxLossConfig = Field(default_factory=TrailingMaxLossConfig)  # type: ignore[arg-type]

    @model_validator(mode="after")
    def _cross_checks(self) -> Self:
        total, per = self.max_contracts, self.max_contracts_per_instrument
        if total.enabled and per.enabled and total.limit is not None:
            for symbol, limit in per.limits.items():
                if limit > total.limit:
                    raise ValueError(f"max_contracts_per_instrument.limits.{symbol}: {limit} is above the "
                                     f"account-wide max_contracts.limit ({total.limit})")
            if per.default_limit is not None and per.default_limit > total.limit:
                raise ValueError(f"max_contracts_per_instrument.default_limit: {per.default_limit} is above the "
                                 f"account-wide max_contracts.limit ({total.limit})")
        tm, grace = self.trade_management, self.no_stop_loss_grace
        if tm.enabled and tm.auto_stop is not None and grace.enabled and tm.auto_stop.after >= grace.grace:
            raise ValueError(f"trade_management.auto_stop.after: {format_duration(tm.auto_stop.after)} must be "
                             f"shorter than no_stop_loss_grace.grace ({format_duration(grace.grace)}) so the "
                             "automatic stop lands before the grace check")
        return self

    def enabled_ids(self) -> list[str]:
        return [block.rule_id for block in self.blocks() if block.enabled]

    def blocks(self) -> list[RuleConfig]:
        return [getattr(self, name) for name in type(self).model_fields]


class DailyReset(_Strict):
    time: TimeOfDay = Field(time(17, 0), description="wall-clock time of the daily reset")
    timezone: TimeZoneName = Field("America/Chicago", description="IANA zone of the reset time")


class AdminConfig(_Strict):
    allow_manual_unlock: bool = Field(True, description="the admin may clear a lock by hand (audited)")
    commitment_mode: bool = Field(False, description="while any lock is active, admin rule changes that loosen "
                                                     "protection are refused until the next reset")


class RiskConfig(_Strict):
    """The whole risk config: calendar settings, admin policy and the 14 rule blocks."""

    timezone: TimeZoneName = Field("America/Chicago", description="default zone of session windows, holidays "
                                                                 "and early closes")
    daily_reset: DailyReset = Field(default_factory=DailyReset)  # type: ignore[arg-type]
    admin: AdminConfig = Field(default_factory=AdminConfig)  # type: ignore[arg-type]
    rules: RulesConfig = Field(default_factory=RulesConfig)

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


RULE_NAMES: dict[str, str] = {cls.rule_id: name for name, cls in (
    (name, info.annotation) for name, info in RulesConfig.model_fields.items()) if isinstance(cls, type)
    and issubclass(cls, RuleConfig)}
