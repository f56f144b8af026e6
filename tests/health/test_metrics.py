"""Metrics: each daemon-facing method shows up in the exposition; registries are independent."""

from __future__ import annotations

import subprocess
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families

from risk_manager import __version__
from risk_manager.health import DisabledMetrics, Metrics, ReadinessBoard


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.exposition().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_every_method_is_exposed() -> None:
    m = Metrics()
    for kind in ("trade", "trade", "order"):
        m.event(kind)
    m.enforcement("flatten", "done", 0.120)
    m.enforcement("flatten", "failed", 3.0)
    m.latency("event_to_decision", 0.0004)
    m.latency("event_to_decision", 0.002)
    m.reconnect("user hub")
    m.http_429()
    m.http_429()
    m.breach("daily_realized_loss")
    m.set_connected_hubs(2)
    m.set_stale_accounts(1)
    m.set_active_locks(3)
    s = samples(m)
    assert s[("risk_manager_events_total", (("kind", "trade"),))] == 2
    assert s[("risk_manager_events_total", (("kind", "order"),))] == 1
    assert s[("risk_manager_enforcement_actions_total", (("action", "flatten"), ("status", "done")))] == 1
    assert s[("risk_manager_enforcement_actions_total", (("action", "flatten"), ("status", "failed")))] == 1
    assert s[("risk_manager_enforcement_duration_seconds_count", (("action", "flatten"),))] == 2
    assert s[("risk_manager_enforcement_duration_seconds_sum", (("action", "flatten"),))] == 3.12
    assert s[("risk_manager_enforcement_duration_seconds_bucket", (("action", "flatten"), ("le", "0.25")))] == 1
    assert s[("risk_manager_latency_seconds_bucket", (("le", "0.0005"), ("name", "event_to_decision")))] == 1
    assert s[("risk_manager_latency_seconds_count", (("name", "event_to_decision"),))] == 2
    assert s[("risk_manager_reconnects_total", (("hub", "user hub"),))] == 1
    assert s[("risk_manager_http_429_total", ())] == 2
    assert s[("risk_manager_rule_breaches_total", (("rule", "daily_realized_loss"),))] == 1
    assert s[("risk_manager_connected_hubs", ())] == 2
    assert s[("risk_manager_stale_accounts", ())] == 1
    assert s[("risk_manager_active_locks", ())] == 3
    assert s[("risk_manager_build_info", (("version", __version__),))] == 1


def test_registries_are_independent() -> None:
    first, second = Metrics(), Metrics()  # the global registry would refuse the second set of names
    first.breach("max_contracts")
    assert ("risk_manager_rule_breaches_total", (("rule", "max_contracts"),)) in samples(first)
    assert not [k for k in samples(second) if k[0] == "risk_manager_rule_breaches_total"]


def test_board_keeps_the_gauges_and_counts_reconnects() -> None:
    m = Metrics()
    board = ReadinessBoard(m)
    board.set_hub("user hub", "connecting")
    board.set_hub("market hub", "connected")
    board.add_account("PRAC-1", ["user hub"])
    s = samples(m)
    assert s[("risk_manager_connected_hubs", ())] == 1 and s[("risk_manager_stale_accounts", ())] == 1
    board.set_hub("user hub", "connected")  # the first connect is not a reconnect
    board.set_fresh("PRAC-1", True)
    board.set_hub("user hub", "reconnecting")
    board.set_hub("user hub", "connected")
    s = samples(m)
    assert s[("risk_manager_connected_hubs", ())] == 2 and s[("risk_manager_stale_accounts", ())] == 0
    assert s[("risk_manager_reconnects_total", (("hub", "user hub"),))] == 1


def test_disabled_metrics_take_every_call_and_load_no_prometheus() -> None:
    code = ("import sys\n"
            "from risk_manager.health import DisabledMetrics\n"
            "m = DisabledMetrics()\n"
            "m.event('order'); m.enforcement('close_position', 'done', 0.1); m.latency('x', 0.1)\n"
            "m.reconnect('user'); m.http_429(); m.breach('RULE-001')\n"
            "m.set_connected_hubs(1); m.set_stale_accounts(0); m.set_active_locks(2)\n"
            "print('prometheus_client' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    with pytest.raises(RuntimeError, match="metrics are disabled"):
        DisabledMetrics().exposition()
    # Every method the daemon may call is its own: one inherited from Metrics would touch collectors
    # that were never made (a new Metrics method must get its no-op here).
    public = {n for n, v in vars(Metrics).items() if callable(v) and not n.startswith("_")}
    assert public and public <= set(vars(DisabledMetrics))
