"""Clocks. Nothing in the engine reads the system time: it is given a `Clock`.

`SystemClock` is wall time; `VirtualClock` is advanced by its owner (scenario replays and tests
run a whole trading day in seconds with it). Both return aware UTC datetimes.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, an aware UTC datetime."""
        ...

    def timestamp(self) -> float:
        """The current time as POSIX seconds (cheaper than `now()` on hot paths)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def timestamp(self) -> float:
        return time.time()


class VirtualClock:
    """A clock that only moves when told to. Time never goes backwards."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("VirtualClock needs an aware datetime (UTC)")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def timestamp(self) -> float:
        return self._now.timestamp()

    def advance(self, delta: timedelta | float) -> datetime:
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        if step < timedelta(0):
            raise ValueError(f"a clock cannot go backwards (advance by {step})")
        self._now += step
        return self._now

    def set(self, when: datetime) -> datetime:
        if when.tzinfo is None:
            raise ValueError("VirtualClock.set needs an aware datetime (UTC)")
        when = when.astimezone(UTC)
        if when < self._now:
            raise ValueError(f"a clock cannot go backwards ({self._now.isoformat()} → {when.isoformat()})")
        self._now = when
        return self._now
