"""Injected faults (the `fault` kinds of scenarios.md). They hit only the Gateway's wire side —
REST requests and hub connections — never the scripted trader. Durations run on the simulator clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from risk_manager.domain import Clock
from risk_manager.logs import log_event
from risk_manager.sim.config import parse_duration

log = logging.getLogger("risk_manager.sim")

CutTarget = Literal["user_hub", "market_hub", "rest"]
CUT_TARGETS: tuple[CutTarget, ...] = ("user_hub", "market_hub", "rest")
HTTP_ERROR_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(slots=True)
class _State:
    cut_until: dict[str, datetime]
    rest_ms: int = 0
    hub_ms: int = 0
    http_error_status: int = 0
    http_error_count: int = 0
    lose_count: int = 0
    drop_user: int = 0
    drop_market: int = 0


class Faults:
    """Run-time switchable faults. `on_cut(target)` closes the current connections of that kind and
    `on_expire_tokens()` expires every issued token (both wired by the `Simulator`)."""

    def __init__(self, clock: Clock, on_cut: Callable[[CutTarget], None],
                 on_expire_tokens: Callable[[], int]) -> None:
        self._clock = clock
        self._on_cut = on_cut
        self._on_expire_tokens = on_expire_tokens
        self._s = _State(cut_until={})

    # -- switching faults on -------------------------------------------------------------------
    def cut(self, target: CutTarget, seconds: float | timedelta) -> None:
        if target not in CUT_TARGETS:
            raise ValueError(f"cut target must be one of {', '.join(CUT_TARGETS)}, got {target!r}")
        span = seconds if isinstance(seconds, timedelta) else timedelta(seconds=seconds)
        if span <= timedelta(0):
            raise ValueError(f"cut duration must be positive, got {span}")
        self._s.cut_until[target] = self._clock.now() + span
        log_event(log, "sim_fault", kind="cut", target=target, seconds=span.total_seconds())
        self._on_cut(target)

    def latency(self, rest_ms: int = 0, hub_ms: int = 0) -> None:
        if rest_ms < 0 or hub_ms < 0:
            raise ValueError(f"latency must not be negative, got rest_ms={rest_ms} hub_ms={hub_ms}")
        self._s.rest_ms, self._s.hub_ms = int(rest_ms), int(hub_ms)
        log_event(log, "sim_fault", kind="latency", rest_ms=rest_ms, hub_ms=hub_ms)

    def http_errors(self, status: int, count: int) -> None:
        if status not in HTTP_ERROR_STATUSES:
            raise ValueError(f"http_errors status must be one of {sorted(HTTP_ERROR_STATUSES)}, got {status}")
        if count < 0:
            raise ValueError(f"http_errors count must not be negative, got {count}")
        self._s.http_error_status, self._s.http_error_count = status, count
        log_event(log, "sim_fault", kind="http_errors", status=status, count=count)

    def expire_tokens(self) -> None:
        n = self._on_expire_tokens()
        log_event(log, "sim_fault", kind="expire_tokens", tokens=n)

    def lose_responses(self, count: int) -> None:
        if count < 0:
            raise ValueError(f"lose_responses count must not be negative, got {count}")
        self._s.lose_count = count
        log_event(log, "sim_fault", kind="lose_responses", count=count)

    def drop_events(self, hub: Literal["user", "market"], count: int) -> None:
        if hub not in ("user", "market"):
            raise ValueError(f"drop_events hub must be 'user' or 'market', got {hub!r}")
        if count < 0:
            raise ValueError(f"drop_events count must not be negative, got {count}")
        if hub == "user":
            self._s.drop_user = count
        else:
            self._s.drop_market = count
        log_event(log, "sim_fault", kind="drop_events", hub=hub, count=count)

    def clear(self) -> None:
        self._s = _State(cut_until={})
        log_event(log, "sim_fault", kind="clear")

    def apply(self, spec: dict[str, Any]) -> None:
        """Apply one fault written as in a scenario step (`{"cut": "user_hub", "for": "5s"}`, ...)."""
        if not isinstance(spec, dict) or not spec:
            raise ValueError("a fault is an object with one of: cut, latency, http_errors, expire_token, "
                             "lose_response, drop_events, clear")
        if "cut" in spec:
            self.cut(spec["cut"], parse_duration(spec.get("for", 0), "fault.for"))
        elif "latency" in spec:
            lat = _mapping(spec["latency"], "latency")
            self.latency(rest_ms=_int(lat.get("rest_ms", 0), "latency.rest_ms"),
                         hub_ms=_int(lat.get("hub_ms", 0), "latency.hub_ms"))
        elif "http_errors" in spec:
            he = _mapping(spec["http_errors"], "http_errors")
            self.http_errors(_int(he.get("status"), "http_errors.status"),
                             _int(he.get("count", 1), "http_errors.count"))
        elif "expire_token" in spec or "expire_tokens" in spec:
            self.expire_tokens()
        elif "lose_response" in spec:
            lr = _mapping(spec["lose_response"], "lose_response")
            self.lose_responses(_int(lr.get("count", 1), "lose_response.count"))
        elif "drop_events" in spec:
            de = _mapping(spec["drop_events"], "drop_events")
            self.drop_events(de.get("hub", "user"), _int(de.get("count", 1), "drop_events.count"))
        elif "clear" in spec:
            self.clear()
        else:
            raise ValueError(f"unknown fault {sorted(spec)}; allowed: cut, latency, http_errors, expire_token, "
                             "lose_response, drop_events, clear")

    # -- consulted by the servers ---------------------------------------------------------------
    def is_cut(self, target: CutTarget) -> bool:
        until = self._s.cut_until.get(target)
        if until is None:
            return False
        if self._clock.now() >= until:
            del self._s.cut_until[target]
            log_event(log, "sim_fault_ended", kind="cut", target=target)
            return False
        return True

    @property
    def rest_delay(self) -> float:
        return self._s.rest_ms / 1000.0

    @property
    def hub_delay(self) -> float:
        return self._s.hub_ms / 1000.0

    def take_http_error(self) -> int | None:
        if self._s.http_error_count > 0:
            self._s.http_error_count -= 1
            return self._s.http_error_status
        return None

    def take_lost_response(self) -> bool:
        if self._s.lose_count > 0:
            self._s.lose_count -= 1
            return True
        return False

    def take_dropped_event(self, hub: Literal["user", "market"]) -> bool:
        if hub == "user" and self._s.drop_user > 0:
            self._s.drop_user -= 1
            return True
        if hub == "market" and self._s.drop_market > 0:
            self._s.drop_market -= 1
            return True
        return False

    def expire_due(self) -> None:
        for target in list(self._s.cut_until):
            self.is_cut(target)  # type: ignore[arg-type]

    def state(self) -> dict[str, Any]:
        return {
            "cut_until": {k: v.isoformat() for k, v in self._s.cut_until.items()},
            "latency": {"rest_ms": self._s.rest_ms, "hub_ms": self._s.hub_ms},
            "http_errors": {"status": self._s.http_error_status, "count": self._s.http_error_count},
            "lose_responses": self._s.lose_count,
            "drop_events": {"user": self._s.drop_user, "market": self._s.drop_market},
        }


def _mapping(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"fault {key}: expected an object, got {value!r}")
    return value


def _int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"fault {key}: expected an integer, got {value!r}")
    return value
