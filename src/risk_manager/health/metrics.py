"""Prometheus metrics of one daemon, with their own `CollectorRegistry` (never the process-global one,
so tests and several daemons in one process do not collide).

The daemon-facing methods are cheap on the hot path: the labelled child of each counter is looked
up once and cached in a dict, after which a call is a dict lookup and a counter increment
(a histogram observation adds a bucket search). Label values come from small fixed sets (event
kinds, action kinds, rule ids, hub names), so the number of series stays bounded.

| metric | type | labels |
| --- | --- | --- |
| `risk_manager_events_total` | counter | `kind` (account, order, position, trade, quote, ...) |
| `risk_manager_enforcement_actions_total` | counter | `action`, `status` |
| `risk_manager_enforcement_duration_seconds` | histogram | `action` |
| `risk_manager_latency_seconds` | histogram | `name` (e.g. `event_to_decision`) |
| `risk_manager_reconnects_total` | counter | `hub` |
| `risk_manager_http_429_total` | counter | |
| `risk_manager_rule_breaches_total` | counter | `rule` |
| `risk_manager_connected_hubs` | gauge | |
| `risk_manager_stale_accounts` | gauge | |
| `risk_manager_active_locks` | gauge | |
| `risk_manager_build_info` | gauge (1) | `version` |
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from risk_manager import __version__

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Histogram

# Seconds: from a sub-millisecond decision up to a slow REST round trip.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def content_type() -> str:
    """The Content-Type of `exposition()` (prometheus_client's text format)."""
    from prometheus_client import CONTENT_TYPE_LATEST

    return CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        # prometheus_client is imported only by a daemon that serves /metrics (≈ 1.7 MB resident);
        # with metrics off the daemon uses `DisabledMetrics`.
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self._events = Counter("risk_manager_events", "Gateway events processed, by kind.", ["kind"], registry=r)
        self._actions = Counter("risk_manager_enforcement_actions", "Enforcement actions finished, by action "
                                "and outcome.", ["action", "status"], registry=r)
        self._action_seconds = Histogram("risk_manager_enforcement_duration_seconds", "Time from an action's "
                                         "decision to its verified outcome.", ["action"], registry=r,
                                         buckets=LATENCY_BUCKETS)
        self._latency = Histogram("risk_manager_latency_seconds", "Latencies on the event path, by name.",
                                  ["name"], registry=r, buckets=LATENCY_BUCKETS)
        self._reconnects = Counter("risk_manager_reconnects", "Hub reconnections.", ["hub"], registry=r)
        self._http_429 = Counter("risk_manager_http_429", "HTTP 429 (rate limited) answers from the Gateway.",
                                 registry=r)
        self._breaches = Counter("risk_manager_rule_breaches", "Rule breaches, by rule id.", ["rule"], registry=r)
        self._connected_hubs = Gauge("risk_manager_connected_hubs", "Hubs connected now.", registry=r)
        self._stale_accounts = Gauge("risk_manager_stale_accounts", "Accounts whose state is not fresh now.",
                                     registry=r)
        self._active_locks = Gauge("risk_manager_active_locks", "Accounts locked now.", registry=r)
        Gauge("risk_manager_build_info", "The running version.", ["version"], registry=r).labels(__version__).set(1)
        # Cached label children: the hot path never goes through `labels()` (a lock and a tuple) twice.
        self._event_children: dict[str, Counter] = {}
        self._action_children: dict[tuple[str, str], Counter] = {}
        self._action_seconds_children: dict[str, Histogram] = {}
        self._latency_children: dict[str, Histogram] = {}
        self._reconnect_children: dict[str, Counter] = {}
        self._breach_children: dict[str, Counter] = {}

    # --- the daemon's hot path ---------------------------------------------------------------------

    def event(self, kind: str) -> None:
        child = self._event_children.get(kind)
        if child is None:
            child = self._event_children[kind] = self._events.labels(kind)
        child.inc()

    def enforcement(self, action: str, status: str, duration_s: float) -> None:
        key = (action, status)
        counter = self._action_children.get(key)
        if counter is None:
            counter = self._action_children[key] = self._actions.labels(action, status)
        counter.inc()
        histogram = self._action_seconds_children.get(action)
        if histogram is None:
            histogram = self._action_seconds_children[action] = self._action_seconds.labels(action)
        histogram.observe(duration_s)

    def latency(self, name: str, seconds: float) -> None:
        child = self._latency_children.get(name)
        if child is None:
            child = self._latency_children[name] = self._latency.labels(name)
        child.observe(seconds)

    def reconnect(self, hub: str) -> None:
        child = self._reconnect_children.get(hub)
        if child is None:
            child = self._reconnect_children[hub] = self._reconnects.labels(hub)
        child.inc()

    def http_429(self) -> None:
        self._http_429.inc()

    def breach(self, rule: str) -> None:
        child = self._breach_children.get(rule)
        if child is None:
            child = self._breach_children[rule] = self._breaches.labels(rule)
        child.inc()

    # --- gauges ------------------------------------------------------------------------------------

    def set_connected_hubs(self, count: int) -> None:
        self._connected_hubs.set(count)

    def set_stale_accounts(self, count: int) -> None:
        self._stale_accounts.set(count)

    def set_active_locks(self, count: int) -> None:
        self._active_locks.set(count)

    # --- exposition --------------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The registry in Prometheus text format (what `GET /metrics` answers)."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class DisabledMetrics(Metrics):
    """What a daemon with `health.metrics: false` (the default) feeds: every call does nothing, and
    prometheus_client is never loaded. Nothing serves it (`/metrics` is off)."""

    def __init__(self) -> None:   # no registry, no collectors: deliberately not Metrics.__init__
        pass

    def event(self, kind: str) -> None:
        pass

    def enforcement(self, action: str, status: str, duration_s: float) -> None:
        pass

    def latency(self, name: str, seconds: float) -> None:
        pass

    def reconnect(self, hub: str) -> None:
        pass

    def http_429(self) -> None:
        pass

    def breach(self, rule: str) -> None:
        pass

    def set_connected_hubs(self, count: int) -> None:
        pass

    def set_stale_accounts(self, count: int) -> None:
        pass

    def set_active_locks(self, count: int) -> None:
        pass

    def exposition(self) -> bytes:
        raise RuntimeError("metrics are disabled (health.metrics: false): there is nothing to expose")
