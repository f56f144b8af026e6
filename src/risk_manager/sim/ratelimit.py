"""Sliding-window request limits on the simulator's clock (gateway-protocol.md §6).

Written by hand rather than taken from a library (e.g. `limits`, `aiolimiter`) because the window
must be measured on the simulator's own clock — a `VirtualClock` in scenario replays — and the
count must be exact (the 201st request in 60 s is refused, not "about" then). A refused request
is not counted in the window.
"""

from __future__ import annotations

from collections import deque

from risk_manager.domain import Clock


class SlidingWindowLimiter:
    def __init__(self, clock: Clock, limit: int, window_seconds: float) -> None:
        if limit < 1 or window_seconds <= 0:
            raise ValueError(f"a rate limit needs limit >= 1 and a positive window, got {limit}/{window_seconds}s")
        self._clock = clock
        self.limit = limit
        self.window = window_seconds
        self._hits: dict[str, deque[float]] = {}

    def allow(self, key: str) -> bool:
        """Count one request for `key`; False (and not counted) when the window is already full."""
        now = self._clock.timestamp()
        hits = self._hits.setdefault(key, deque())
        horizon = now - self.window
        while hits and hits[0] <= horizon:
            hits.popleft()
        if len(hits) >= self.limit:
            return False
        hits.append(now)
        return True

    def reset(self) -> None:
        self._hits.clear()
