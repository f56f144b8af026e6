"""The trading calendar: daily resets, trading-day keys, session windows, holidays, early closes.

Every wall-clock time is turned into an instant in its own IANA zone (zoneinfo), so resets and
session boundaries stay at the same local time across DST changes. A trading day is named after
the date on which it ENDS: with the default 17:00 America/Chicago reset, Monday's trading day
runs from Sunday 17:00 to Monday 17:00 (the CME convention).

All functions take and return POSIX seconds (floats) or aware UTC datetimes; nothing reads a clock.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from importlib import resources
from zoneinfo import ZoneInfo

from risk_manager.engine.config import SessionBlockOutsideConfig, SessionWindow

_DAY = timedelta(days=1)


def local_instant(day: date, at: time, zone: ZoneInfo) -> float:
    """POSIX seconds of wall-clock `at` on `day` in `zone`.

    A time that does not exist (inside a spring-forward gap) maps to the same offset from midnight
    before the change — i.e. 02:30 on a spring-forward night becomes 03:30 local. An ambiguous time
    (fall-back) is its first occurrence.
    """
    return datetime.combine(day, at, tzinfo=zone).timestamp()


def to_utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class TradingCalendar:
    """Daily resets at a wall-clock time in a zone, and the trading day each instant belongs to."""

    def __init__(self, reset_time: time, zone: ZoneInfo) -> None:
        self.reset_time = reset_time
        self.zone = zone
        self._start = 0.0
        self._end = -1.0
        self._day = date.min
        self._key = ""

    def _window(self, ts: float) -> None:
        local = datetime.fromtimestamp(ts, self.zone).date()
        day = local if ts < local_instant(local, self.reset_time, self.zone) else local + _DAY
        self._day = day
        self._key = day.isoformat()
        self._start = local_instant(day - _DAY, self.reset_time, self.zone)
        self._end = local_instant(day, self.reset_time, self.zone)

    def trading_day(self, ts: float) -> date:
        """The trading day of an instant (named after the date it ends on)."""
        if not (self._start <= ts < self._end):
            self._window(ts)
        return self._day

    def trading_day_key(self, ts: float) -> str:
        """`trading_day(ts)` as an ISO date string (the key of per-day counters)."""
        if not (self._start <= ts < self._end):
            self._window(ts)
        return self._key

    def next_reset(self, ts: float) -> float:
        """The first daily reset strictly after `ts`."""
        if not (self._start <= ts < self._end):
            self._window(ts)
        return self._end

    def day_start(self, ts: float) -> float:
        """The reset that began the trading day of `ts`."""
        if not (self._start <= ts < self._end):
            self._window(ts)
        return self._start


@dataclass(frozen=True, slots=True)
class ExchangeCalendar:
    """Holidays (closed all day, in `zone`) and early closes (in `early_zone`, default `zone`)."""

    zone: ZoneInfo
    holidays: frozenset[date]
    early_close: tuple[tuple[date, time], ...]
    early_zone: ZoneInfo | None = None


@lru_cache(maxsize=1)
def shipped_exchange_calendar() -> ExchangeCalendar:
    """The CME holiday and early-close data shipped in `risk_manager/data/cme_holidays.json`."""
    text = resources.files("risk_manager.data").joinpath("cme_holidays.json").read_text(encoding="utf-8")
    data = json.loads(text)
    return ExchangeCalendar(
        zone=ZoneInfo(data["timezone"]),
        holidays=frozenset(date.fromisoformat(d) for d in data["holidays"]),
        early_close=tuple((date.fromisoformat(e["date"]), time.fromisoformat(e["time"])) for e in data["early_close"]),
    )


def exchange_calendar_for(config: SessionBlockOutsideConfig, zone: ZoneInfo) -> ExchangeCalendar:
    """The config's holidays/early closes, each list falling back to the shipped CME data when absent."""
    # The shipped data is in Chicago time; user entries are in the config's top-level zone.
    shipped = shipped_exchange_calendar()
    if config.holidays is None:
        holidays, holiday_zone = shipped.holidays, shipped.zone
    else:
        holidays, holiday_zone = frozenset(config.holidays), zone
    if config.early_close is None:
        early, early_zone = shipped.early_close, shipped.zone
    else:
        early, early_zone = tuple((e.date, e.time) for e in config.early_close), zone
    return ExchangeCalendar(zone=holiday_zone, holidays=holidays, early_close=early, early_zone=early_zone)


class SessionSchedule:
    """Allowed trading windows minus holidays and early closes, as sorted disjoint instants."""

    _BEHIND = 3 * 86400.0
    _AHEAD = 16 * 86400.0

    def __init__(self, windows: Sequence[SessionWindow], default_zone: ZoneInfo, exchange: ExchangeCalendar) -> None:
        self.windows = tuple(windows)
        self.default_zone = default_zone
        self.exchange = exchange
        self._from = 0.0
        self._to = -1.0
        self._starts: list[float] = []
        self._ends: list[float] = []

    def _build(self, ts: float, ahead: float) -> None:
        first = datetime.fromtimestamp(ts - self._BEHIND, UTC).date() - _DAY
        last = datetime.fromtimestamp(ts + ahead, UTC).date() + _DAY
        raw: list[tuple[float, float]] = []
        day = first
        while day <= last:
            for w in self.windows:
                if day.weekday() not in {d.number for d in w.days}:
                    continue
                zone = ZoneInfo(w.timezone) if w.timezone else self.default_zone
                start = local_instant(day, w.start, zone)
                end = local_instant(day if w.end > w.start else day + _DAY, w.end, zone)
                raw.append((start, end))
            day += _DAY
        cuts: list[tuple[float, float]] = []
        ez = self.exchange.zone
        for h in self.exchange.holidays:
            if first - _DAY <= h <= last + _DAY:
                cuts.append((local_instant(h, time(0), ez), local_instant(h + _DAY, time(0), ez)))
        early_zone = self.exchange.early_zone or ez
        for d, at in self.exchange.early_close:
            if first - _DAY <= d <= last + _DAY:
                cuts.append((local_instant(d, at, early_zone), local_instant(d + _DAY, time(0), early_zone)))
        intervals = _merge(_subtract(raw, cuts))
        self._starts = [s for s, _ in intervals]
        self._ends = [e for _, e in intervals]
        self._from = ts - self._BEHIND + 86400.0
        self._to = ts + ahead - 86400.0

    def _ensure(self, ts: float) -> None:
        if not (self._from <= ts <= self._to):
            self._build(ts, self._AHEAD)

    def is_open(self, ts: float) -> bool:
        self._ensure(ts)
        i = bisect.bisect_right(self._starts, ts) - 1
        return i >= 0 and ts < self._ends[i]

    def current_end(self, ts: float) -> float | None:
        """The end of the window `ts` is in; None when closed."""
        self._ensure(ts)
        i = bisect.bisect_right(self._starts, ts) - 1
        return self._ends[i] if i >= 0 and ts < self._ends[i] else None

    def next_start(self, ts: float) -> float | None:
        """The first window start strictly after `ts` (None if no window opens within a year)."""
        return self._search(ts, starts=True)

    def next_end(self, ts: float) -> float | None:
        """The first window end strictly after `ts`."""
        return self._search(ts, starts=False)

    def _search(self, ts: float, starts: bool) -> float | None:
        self._ensure(ts)
        ahead = self._AHEAD
        while True:
            values = self._starts if starts else self._ends
            i = bisect.bisect_right(values, ts)
            if i < len(values) and values[i] <= self._to + 86400.0:
                return values[i]
            if ahead > 400 * 86400.0:
                return None
            ahead *= 4
            self._build(ts, ahead)


def _subtract(intervals: Iterable[tuple[float, float]],
              cuts: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    out = list(intervals)
    for cs, ce in cuts:
        nxt: list[tuple[float, float]] = []
        for s, e in out:
            if ce <= s or cs >= e:
                nxt.append((s, e))
                continue
            if s < cs:
                nxt.append((s, cs))
            if ce < e:
                nxt.append((ce, e))
        out = nxt
    return out


def _merge(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1]:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


class SessionBook:
    """The default schedule plus one per symbol with its own windows (RULE-009)."""

    def __init__(self, config: SessionBlockOutsideConfig, zone: ZoneInfo) -> None:
        exchange = exchange_calendar_for(config, zone)
        self.default = SessionSchedule(config.sessions, zone, exchange)
        self.by_symbol = {s: SessionSchedule(w, zone, exchange) for s, w in config.symbol_sessions.items()}

    def for_symbol(self, symbol: str | None) -> SessionSchedule:
        if symbol is not None:
            schedule = self.by_symbol.get(symbol.upper())
            if schedule is not None:
                return schedule
        return self.default

    def scopes(self) -> list[tuple[str | None, SessionSchedule]]:
        """(None, default) then (symbol, schedule) for each override."""
        return [(None, self.default), *sorted(self.by_symbol.items())]
