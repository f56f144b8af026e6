"""Is a risk-config change a loosening? The table behind commitment mode (docs/admin.md § Commitment mode).

`loosenings(old, new)` lists, in plain words, every change from `old` to `new` that gives the trader
more room: a rule turned off, a limit raised, a cooldown shortened, a grace lengthened, a symbol
unblocked, a session widened, a holiday removed, a safety switch (`include_fees`, `close_positions`,
`flatten_at_end`…) turned off. Tightening changes and changes that do not touch protection (the
alert `message`) are not listed. The admin editor refuses a loosening while a lock is active and
`admin.commitment_mode` is on; the daemon can call the same function on a live reload.

Every key of every rule has exactly one entry in `KEY_RULES` (a test checks it), so a key added to
the schema without a decision here fails the test suite instead of passing silently as "not a
loosening". Where one value means "no limit" (`limit: null`), it counts as infinitely loose.

A change that loosens one thing and tightens another (blocking NQ instead of ES, reshaping a
session, swapping cooldown tiers) is a loosening in both directions, on purpose: commitment mode
refuses what loosens anything. Plain one-key changes of an ordered value are a loosening in
exactly one direction (the property test in tests/admin/test_loosening.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from risk_manager.domain.catalogue import default_catalogue
from risk_manager.engine.calendar import ExchangeCalendar, SessionSchedule, shipped_exchange_calendar
from risk_manager.engine.config import (
    AdminConfig,
    CooldownAfterLossConfig,
    MaxContractsConfig,
    MaxContractsPerInstrumentConfig,
    RiskConfig,
    RuleConfig,
    RulesConfig,
    SessionBlockOutsideConfig,
    SessionWindow,
    format_duration,
)

Check = Callable[[str, Any, Any], list[str]]


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _number(value: Any, none: float) -> float:
    if value is None:
        return none
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


def higher_looser(what: str) -> Check:
    """A bigger number (or longer duration) gives more room; `null` means no limit at all."""
    def check(key: str, old: Any, new: Any) -> list[str]:
        if _number(new, math.inf) > _number(old, math.inf):
            return [f"{key}: {what} raised {_show(old)} → {_show(new)}"]
        return []
    return check


def lower_looser(what: str, none: float = -math.inf) -> Check:
    """A smaller number (or shorter duration) gives more room."""
    def check(key: str, old: Any, new: Any) -> list[str]:
        if _number(new, none) < _number(old, none):
            return [f"{key}: {what} lowered {_show(old)} → {_show(new)}"]
        return []
    return check


def switched_off(what: str) -> Check:
    def check(key: str, old: Any, new: Any) -> list[str]:
        return [f"{key}: {what} turned off"] if old and not new else []
    return check


def switched_on(what: str) -> Check:
    def check(key: str, old: Any, new: Any) -> list[str]:
        return [f"{key}: {what} turned on"] if new and not old else []
    return check


def ordered(strict_first: Sequence[str], what: str) -> Check:
    """A choice whose values go from the strictest to the loosest."""
    def check(key: str, old: Any, new: Any) -> list[str]:
        if strict_first.index(new) > strict_first.index(old):
            return [f"{key}: {what} changed {old} → {new}"]
        return []
    return check


def removed_items(what: str) -> Check:
    def check(key: str, old: Any, new: Any) -> list[str]:
        gone = sorted(set(old or ()) - set(new or ()))
        return [f"{key}: {what} removed: {', '.join(map(str, gone))}"] if gone else []
    return check


def never(key: str, old: Any, new: Any) -> list[str]:
    """Keys that do not change protection (alert text)."""
    return []


def _optional_block(what: str, fields: dict[str, Check]) -> Check:
    """A sub-block that is off when null (auto_stop, breakeven, trailing): removing it loosens."""
    def check(key: str, old: Any, new: Any) -> list[str]:
        if old is None:
            return []
        if new is None:
            return [f"{key}: {what} removed"]
        return _compare_fields(key, old, new, fields)
    return check


def _block(fields: dict[str, Check]) -> Check:
    def check(key: str, old: Any, new: Any) -> list[str]:
        return _compare_fields(key, old, new, fields)
    return check


def _compare_fields(prefix: str, old: Any, new: Any, fields: dict[str, Check]) -> list[str]:
    found: list[str] = []
    for name, check in fields.items():
        before, after = getattr(old, name), getattr(new, name)
        if before != after:
            found += check(f"{prefix}.{name}", before, after)
    return found


# --- keys whose comparison needs the whole rule block -------------------------------------------------

def _micro_set(config: MaxContractsConfig) -> set[str]:
    if config.micro_symbols is not None:
        return {s.upper() for s in config.micro_symbols}
    return {entry.symbol.upper() for entry in default_catalogue() if entry.is_micro}


def _micro_symbols(key: str, old: MaxContractsConfig, new: MaxContractsConfig) -> list[str]:
    if new.micro_weight >= 1:
        return []  # every micro counts as a full contract: the list changes nothing
    added = sorted(_micro_set(new) - _micro_set(old))
    return [f"{key}: counted as micros (weight {new.micro_weight:g}) now also: {', '.join(added)}"] if added else []


def _per_symbol_limits(key: str, old: MaxContractsPerInstrumentConfig,
                       new: MaxContractsPerInstrumentConfig) -> list[str]:
    found: list[str] = []
    for symbol in sorted(set(old.limits) | set(new.limits)):
        before, after = old.limit_for(symbol), new.limit_for(symbol)
        if _number(after, math.inf) > _number(before, math.inf):
            found.append(f"{key}.{symbol}: contract limit raised {_show(before)} → {_show(after)}")
    return found


def _unlisted_limit(key: str, old: MaxContractsPerInstrumentConfig, new: MaxContractsPerInstrumentConfig) -> list[str]:
    before, after = old.limit_for("\0unlisted"), new.limit_for("\0unlisted")
    if _number(after, math.inf) > _number(before, math.inf):
        return [f"{key}: limit for unlisted symbols raised {_show(before)} → {_show(after)}"]
    return []


def _tier_cooldown(tiers: Iterable[Any], loss: float) -> float:
    return max((t.cooldown.total_seconds() for t in tiers if t.loss <= loss), default=0.0)


def _tiers(key: str, old: CooldownAfterLossConfig, new: CooldownAfterLossConfig) -> list[str]:
    found: list[str] = []
    for loss in sorted({t.loss for t in old.tiers} | {t.loss for t in new.tiers}):
        before, after = _tier_cooldown(old.tiers, loss), _tier_cooldown(new.tiers, loss)
        if after < before:
            found.append(f"{key}: a ${loss:g} loss now locks for {format_duration(timedelta(seconds=after))} "
                         f"instead of {format_duration(timedelta(seconds=before))}")
    return found


# Two reference weeks (winter and summer time, no shipped holiday in either) on which windows are compared.
_REFERENCE_WEEKS = (datetime(2026, 1, 12, tzinfo=ZoneInfo("UTC")), datetime(2026, 7, 13, tzinfo=ZoneInfo("UTC")))
_NO_HOLIDAYS = ExchangeCalendar(zone=ZoneInfo("UTC"), holidays=frozenset(), early_close=())


def _open_minutes(windows: Sequence[SessionWindow], zone: ZoneInfo) -> set[int]:
    """Minutes (since the first reference Monday 00:00 UTC) at which the windows allow trading."""
    schedule = SessionSchedule(windows, zone, _NO_HOLIDAYS)
    base = _REFERENCE_WEEKS[0].timestamp()
    minutes: set[int] = set()
    for week in _REFERENCE_WEEKS:
        start = week.timestamp()
        for minute in range(7 * 24 * 60):
            ts = start + minute * 60
            if schedule.is_open(ts):
                minutes.add(round((ts - base) / 60))
    return minutes


def _sessions_wider(key: str, old: Sequence[SessionWindow], new: Sequence[SessionWindow],
                    old_zone: ZoneInfo, new_zone: ZoneInfo) -> list[str]:
    extra = _open_minutes(new, new_zone) - _open_minutes(old, old_zone)
    if extra:
        hours = len(extra) / 60 / len(_REFERENCE_WEEKS)
        return [f"{key}: trading windows widened (about {hours:g} more hours a week)"]
    return []


def _session_rule(old_config: RiskConfig, new_config: RiskConfig) -> list[str]:
    key = "rules.session_block_outside"
    old, new = old_config.rules.session_block_outside, new_config.rules.session_block_outside
    old_zone, new_zone = old_config.zone, new_config.zone
    found: list[str] = []
    if old.sessions != new.sessions or old_zone != new_zone:
        found += _sessions_wider(f"{key}.sessions", old.sessions, new.sessions, old_zone, new_zone)
    for symbol in sorted(set(old.symbol_sessions) | set(new.symbol_sessions)):
        before = old.symbol_sessions.get(symbol, old.sessions)
        after = new.symbol_sessions.get(symbol, new.sessions)
        if before != after or old_zone != new_zone:
            found += _sessions_wider(f"{key}.symbol_sessions.{symbol}", before, after, old_zone, new_zone)
    found += _holidays(f"{key}.holidays", old, new)
    found += _early_closes(f"{key}.early_close", old, new)
    return found


def _holiday_set(config: SessionBlockOutsideConfig) -> frozenset[date]:
    return shipped_exchange_calendar().holidays if config.holidays is None else frozenset(config.holidays)


def _holidays(key: str, old: SessionBlockOutsideConfig, new: SessionBlockOutsideConfig) -> list[str]:
    gone = sorted(_holiday_set(old) - _holiday_set(new))
    if not gone:
        return []
    shown = ", ".join(d.isoformat() for d in gone[:5]) + (f" and {len(gone) - 5} more" if len(gone) > 5 else "")
    return [f"{key}: closed days removed: {shown}"]


def _early_map(config: SessionBlockOutsideConfig) -> dict[date, time]:
    if config.early_close is None:
        return dict(shipped_exchange_calendar().early_close)
    return {e.date: e.time for e in config.early_close}


def _early_closes(key: str, old: SessionBlockOutsideConfig, new: SessionBlockOutsideConfig) -> list[str]:
    before, after = _early_map(old), _early_map(new)
    found: list[str] = []
    for day in sorted(before):
        if day not in after:
            found.append(f"{key}: early close on {day.isoformat()} removed")
        elif after[day] > before[day]:
            found.append(f"{key}: early close on {day.isoformat()} moved later "
                         f"{before[day]:%H:%M} → {after[day]:%H:%M}")
    return found


# --- the table -----------------------------------------------------------------------------------------

_ENABLED = switched_off("rule")
_WARN = higher_looser("warning threshold")  # null: no warning at all
_COOLDOWN = lower_looser("cooldown")
_CLOSE = switched_off("closing positions on a breach")

BLOCK_CHECKS: dict[str, Check] = {
    "cooldowns": _block({"per_minute": _COOLDOWN, "per_hour": _COOLDOWN, "per_session": _COOLDOWN}),
}

KEY_RULES: dict[str, dict[str, Check | str]] = {
    # rule → key → a Check on the key's old/new value, or "rule" when the whole block decides (below)
    "max_contracts": {
        "enabled": _ENABLED, "warn_at": _WARN, "limit": higher_looser("contract limit"),
        "count_type": ordered(("gross", "net"), "counting"),
        "micro_weight": lower_looser("micro weight"), "micro_symbols": "rule",
        "action": ordered(("close_all", "reduce_to_limit"), "breach action"),
    },
    "max_contracts_per_instrument": {
        "enabled": _ENABLED, "warn_at": _WARN, "limits": "rule", "default_limit": "rule", "unknown_symbol": "rule",
    },
    "daily_realized_loss": {
        "enabled": _ENABLED, "warn_at": _WARN, "loss_limit": higher_looser("loss limit"),
        "include_unrealized": switched_off("counting open P&L"), "include_fees": switched_off("counting fees"),
    },
    "daily_unrealized_loss": {"enabled": _ENABLED, "warn_at": _WARN, "loss_limit": higher_looser("loss limit")},
    "max_unrealized_profit": {"enabled": _ENABLED, "warn_at": _WARN, "target": higher_looser("profit target")},
    "trade_frequency_limit": {
        "enabled": _ENABLED, "warn_at": _WARN, "per_minute": higher_looser("fills per minute"),
        "per_hour": higher_looser("fills per hour"), "per_session": higher_looser("fills per session"),
        "cooldowns": BLOCK_CHECKS["cooldowns"], "close_positions": _CLOSE,
    },
    "cooldown_after_loss": {
        "enabled": _ENABLED, "warn_at": _WARN, "tiers": "rule",
        "consecutive_losses": higher_looser("losing trades in a row"),
        "consecutive_cooldown": _COOLDOWN, "close_positions": _CLOSE,
    },
    "no_stop_loss_grace": {
        "enabled": _ENABLED, "warn_at": _WARN, "grace": higher_looser("grace without a stop"),
        "require_full_size": switched_off("stops must cover the full size"),
    },
    "session_block_outside": {
        "enabled": _ENABLED, "warn_at": _WARN, "sessions": "rule", "symbol_sessions": "rule", "holidays": "rule",
        "early_close": "rule", "flatten_at_end": switched_off("flatten at session end"),
        "grace": higher_looser("delay before the session-end flatten"),
    },
    "auth_loss_guard": {"enabled": _ENABLED, "warn_at": _WARN, "check_interval": higher_looser("check interval")},
    "symbol_blocks": {"enabled": _ENABLED, "warn_at": _WARN, "blocked": removed_items("blocked symbols")},
    "trade_management": {
        "enabled": _ENABLED, "warn_at": _WARN,
        "auto_stop": _optional_block("automatic stop", {
            "ticks": higher_looser("stop distance (ticks)"), "after": higher_looser("wait for the trader's stop")}),
        "breakeven": _optional_block("move to breakeven", {
            "trigger_ticks": higher_looser("breakeven trigger (ticks)"),
            "offset_ticks": lower_looser("breakeven offset (ticks)")}),
        "trailing": _optional_block("trailing stop", {
            "activate_ticks": higher_looser("trail activation (ticks)"),
            "distance_ticks": higher_looser("trail distance (ticks)")}),
    },
    "daily_realized_profit": {
        "enabled": _ENABLED, "warn_at": _WARN, "target": higher_looser("profit target"),
        "include_fees": switched_off("counting fees"), "message": never,
    },
    "trailing_max_loss": {
        "enabled": _ENABLED, "warn_at": _WARN, "max_loss": higher_looser("maximum loss"),
        "starting_balance": lower_looser("starting balance"), "buffer": lower_looser("safety buffer", none=0.0),
    },
}

ADMIN_CHECKS: dict[str, Check] = {
    "allow_manual_unlock": switched_on("manual unlock"),
    "commitment_mode": switched_off("commitment mode"),
}

# Rule blocks whose keys interact: compared as a whole (the keys marked "rule" above).
WHOLE_BLOCK: dict[str, Callable[[str, Any, Any], list[str]]] = {
    "max_contracts": _micro_symbols,
    "max_contracts_per_instrument": lambda key, old, new: (
        _per_symbol_limits(f"{key}.limits", old, new) + _unlisted_limit(f"{key}.default_limit", old, new)
        + ordered(("block", "allow"), "unlisted symbols")(f"{key}.unknown_symbol", old.unknown_symbol,
                                                          new.unknown_symbol)),
    "cooldown_after_loss": lambda key, old, new: _tiers(f"{key}.tiers", old, new),
}


@dataclass(frozen=True)
class Loosening:
    """One loosening change: the rule (or `admin` / `daily_reset`) and what changed, in words."""

    rule: str
    text: str

    def __str__(self) -> str:
        return self.text


def find_loosenings(old: RiskConfig, new: RiskConfig) -> list[Loosening]:
    found: list[Loosening] = []
    for rule, checks in KEY_RULES.items():
        before: RuleConfig = getattr(old.rules, rule)
        after: RuleConfig = getattr(new.rules, rule)
        prefix = f"rules.{rule}"
        texts: list[str] = []
        if rule == "session_block_outside":
            texts += _session_rule(old, new)
        elif before == after:
            continue
        for name, check in checks.items():
            value_before, value_after = getattr(before, name), getattr(after, name)
            if callable(check) and value_before != value_after:
                texts += check(f"{prefix}.{name}", value_before, value_after)
        if rule in WHOLE_BLOCK and before != after:
            texts += WHOLE_BLOCK[rule](prefix, before, after)
        found += [Loosening(rule, text) for text in texts]
    for name, check in ADMIN_CHECKS.items():
        found += [Loosening("admin", t) for t in check(f"admin.{name}", getattr(old.admin, name),
                                                        getattr(new.admin, name))]
    if old.daily_reset != new.daily_reset:
        # Moving the reset moves the end of every until-reset lock; whether that is sooner depends on the
        # moment, so any move counts (the one deliberate exception to "one direction only").
        found.append(Loosening("daily_reset", f"daily_reset: moved {old.daily_reset.time:%H:%M} "
                               f"{old.daily_reset.timezone} → {new.daily_reset.time:%H:%M} {new.daily_reset.timezone} "
                               "(ends until-reset locks at another time)"))
    return found


def loosenings(old: RiskConfig, new: RiskConfig) -> list[str]:
    """Each change from `old` to `new` that loosens protection, in words (empty: none)."""
    return [str(item) for item in find_loosenings(old, new)]


def unclassified_keys() -> list[str]:
    """Schema keys with no entry in the table (must stay empty; a test checks it)."""
    missing = [f"rules.{rule}.{key}" for rule, info in RulesConfig.model_fields.items()
               for key in getattr(info.annotation, "model_fields", {}) if key not in KEY_RULES.get(rule, {})]
    missing += [f"admin.{key}" for key in AdminConfig.model_fields if key not in ADMIN_CHECKS]
    return missing


__all__ = ["KEY_RULES", "Loosening", "find_loosenings", "loosenings", "unclassified_keys"]
