"""The daemon end to end over loopback: breach → enforcement request, locked order → cancel, start-up,
memory with 10 accounts, idle CPU (connected, no events) and CPU with the Gateway gone.

Latencies are measured by the simulator's own recorder on one clock (`time.perf_counter_ns`):
from the moment its hub writer sent the event that makes the breach (`recorder.hub_sent[..].sent_ns`)
to the moment the daemon's enforcement request arrived (`recorder.intents[..].received_ns`). The
simulator and the daemon share one process and one event loop here (as in `risk-manager demo`), so
the figures include the simulator's own work on the same core. Memory and idle CPU are measured on
a `risk-manager run` subprocess (the daemon alone) protecting 10 accounts.
"""

from __future__ import annotations

import asyncio
import functools
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence, Sized
from pathlib import Path
from typing import BinaryIO

from risk_manager.benchkit import Figure, Progress, median, percentile
from risk_manager.daemon.config_dir import AccountSpec, Credential
from risk_manager.daemon.daemon import Daemon, DaemonOptions
from risk_manager.domain import default_catalogue
from risk_manager.engine import parse_rules_block
from risk_manager.gateway import GatewayConfig, MemoryTokenStore
from risk_manager.logs import configure_logging
from risk_manager.sim import RecordedIntent, SimAccount, SimConfig, Simulator

DESCRIPTION = ("daemon: breach → enforcement request and locked order → cancel (p50/p95/p99/max over 1,000), "
               "start-up to protecting, RSS with 10 accounts, idle CPU over 30 s")

BREACHES = 1_000
LOCKED_ORDERS = 1_000
STARTS = 10
IDLE_SECONDS = 30.0   # quality.md: idle CPU over 30 s
ACCOUNT = 1001
MNQ = default_catalogue().get("MNQ").contract.id


# 1,000 breaches in a row need ~4,000 requests in a few seconds: the Gateway's 200/60 s limit (client and
# simulator) is lifted for the bench; the latency measured is the event path's, not the limiter's queue.
BIG_LIMIT = (1_000_000, 60.0)


def _gateway(sim: Simulator) -> GatewayConfig:
    return GatewayConfig.for_server(sim.base_url, {
        "authentication": {"storage": {"type": "memory"}},
        "errorHandling": {"rateLimit": {"general": {"requests": BIG_LIMIT[0], "windowSeconds": BIG_LIMIT[1]}}}})


def _sim(accounts: list[SimAccount], feed: str = "scripted") -> Simulator:
    return Simulator(SimConfig(accounts=accounts, quote_feed=feed, fees=False,  # type: ignore[arg-type]
                               rate_limit_general=BIG_LIMIT))


def _daemon(sim: Simulator, workdir: Path, rules: dict[str, object], accounts: list[int] | None = None) -> Daemon:
    credential = Credential("bench", "bench", "bench-api-key")
    risk = parse_rules_block(rules, "bench")
    specs = tuple(AccountSpec(a, None, credential, risk) for a in (accounts or [ACCOUNT]))
    return Daemon(DaemonOptions(gateway=_gateway(sim), accounts=specs, database_path=workdir / "risk.db",
                                durable_fsync=False, token_store=MemoryTokenStore))


async def _wait(condition: object, what: str, timeout: float = 5.0) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError(f"bench: timed out waiting for {what}")
        await asyncio.sleep(0)


def _more_than(items: Sized, count: int) -> bool:
    return len(items) > count


def _cancel_after(intents: Sequence[RecordedIntent], index: int) -> bool:
    return any(x.kind == "cancel" for x in list(intents)[index:])


def _start_run(config: Path, url: str, log: BinaryIO, data_dir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "risk_manager", "run", "--config", str(config), "--gateway", url,
                             "--log-level", "INFO"], stdout=log, stderr=log,
                            env={**os.environ, "RISK_MANAGER_DATA_DIR": str(data_dir)})


async def _breach_latencies(workdir: Path, progress: Progress) -> list[float]:
    """RULE-004 closes a position whose open loss reaches $100: each breach is one quote."""
    sim = _sim([SimAccount(ACCOUNT, "BENCH", balance=1e9)])   # each breach loses $200
    await sim.start()
    daemon = _daemon(sim, workdir, {"daily_unrealized_loss": {"enabled": True, "loss_limit": 100}})
    samples: list[float] = []
    try:
        sim.market.set_quote("MNQ", 20000.0)
        await daemon.start()
        mirror = daemon.accounts[ACCOUNT].mirror
        recorder = sim.recorder
        for i in range(BREACHES):
            sim.market.set_quote("MNQ", 20000.0)
            sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=1, type="market")
            await _wait(lambda: MNQ in mirror.positions, "the position")
            await daemon.idle()
            sent_before = len(recorder.hub_sent)
            intents_before = len(recorder.intents)
            sim.market.set_quote("MNQ", 19900.0 - (i % 7) * 0.25)   # -$200 open: breach
            await _wait(functools.partial(_more_than, recorder.intents, intents_before),
                        f"the close request (breach {i}; daemon {daemon.stats}; last {list(daemon.outcomes)[-1:]})")
            intent = recorder.intents[intents_before]
            sent = next(h for h in list(recorder.hub_sent)[sent_before:] if h.hub == "market")
            samples.append((intent.received_ns - sent.sent_ns) / 1e6)
            await _wait(lambda: MNQ not in mirror.positions, "the close")
            await daemon.idle()
            if i % 200 == 199:
                progress(f"breach → request: {i + 1}/{BREACHES}")
    finally:
        await daemon.aclose()
        await sim.stop()
    return samples


async def _locked_order_latencies(workdir: Path, progress: Progress) -> list[float]:
    """An account locked by RULE-003; each resting order the trader places is cancelled."""
    sim = _sim([SimAccount(ACCOUNT, "BENCH")])
    await sim.start()
    daemon = _daemon(sim, workdir, {"daily_realized_loss": {"enabled": True, "loss_limit": 100}})
    samples: list[float] = []
    try:
        sim.market.set_quote("MNQ", 20000.0)
        await daemon.start()
        sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=1, type="market")
        await asyncio.sleep(0.05)
        sim.market.set_quote("MNQ", 19900.0)
        await _wait(lambda: bool(daemon.accounts[ACCOUNT].engine.locks(ACCOUNT)), "the lock")
        await _wait(lambda: not sim.broker.positions(ACCOUNT), "the flatten")
        await daemon.idle()
        recorder = sim.recorder
        for i in range(LOCKED_ORDERS):
            sent_before = len(recorder.hub_sent)
            intents_before = len(recorder.intents)
            sim.trader.place_order(ACCOUNT, "MNQ", side="buy", size=1, type="limit", limit_price=19000.0)
            await _wait(functools.partial(_cancel_after, recorder.intents, intents_before), "the cancel request")
            cancel = next(x for x in list(recorder.intents)[intents_before:] if x.kind == "cancel")
            sent = next(h for h in list(recorder.hub_sent)[sent_before:]
                        if h.hub == "user" and h.target == "GatewayUserOrder")
            samples.append((cancel.received_ns - sent.sent_ns) / 1e6)
            await _wait(lambda: not sim.broker.open_orders(ACCOUNT), "the order gone")
            await daemon.idle()
            if i % 200 == 199:
                progress(f"locked order → cancel: {i + 1}/{LOCKED_ORDERS}")
    finally:
        await daemon.aclose()
        await sim.stop()
    return samples


async def _startups(workdir: Path) -> list[float]:
    sim = _sim([SimAccount(ACCOUNT, "BENCH")])
    await sim.start()
    samples = []
    try:
        for i in range(STARTS):
            daemon = _daemon(sim, workdir / f"start{i}", {"daily_realized_loss": {"enabled": True, "loss_limit": 500}})
            (workdir / f"start{i}").mkdir()
            await daemon.start()
            samples.append((daemon.protecting_after_s or 0.0) * 1000)
            await daemon.aclose()
    finally:
        await sim.stop()
    return samples


def _proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _cpu_percent(pid: int) -> float:
    """CPU of a process over IDLE_SECONDS, in % of a core (after 1 s for what was under way to end)."""
    await asyncio.sleep(1.0)
    before = _proc_cpu_s(pid)
    await asyncio.sleep(IDLE_SECONDS)
    return (_proc_cpu_s(pid) - before) / IDLE_SECONDS * 100


async def _subprocess_figures(workdir: Path, progress: Progress) -> tuple[float, float, float]:
    """(RSS MB with quotes flowing, idle CPU % connected, CPU % with the Gateway gone) of `risk-manager
    run` protecting 10 accounts."""
    ids = list(range(2001, 2011))
    sim = Simulator(SimConfig(accounts=[SimAccount(i, f"BENCH-{i}") for i in ids], quote_feed="random"))
    await sim.start()
    config = workdir / "cfg"
    config.mkdir()
    (config / "config.yaml").write_text("authentication: {storage: {type: memory}}\nlogging: {level: WARNING}\n"
                                        "health: {port: 0}\ndashboard: {port: 0}\n")  # all it serves, on free ports
    (config / "accounts.yaml").write_text("credentials: {default: {userName: bench, apiKey: bench-api-key}}\n"
                                          "accounts:\n" + "".join(f"  - {{id: {i}}}\n" for i in ids))
    (config / "risk.yaml").write_text("rules:\n  daily_realized_loss: {enabled: true, loss_limit: 500}\n"
                                      "  max_contracts: {enabled: true, limit: 5}\n")
    for file in config.iterdir():
        file.chmod(0o600)   # the daemon refuses an accounts.yaml with a key that others can read
    log = (workdir / "daemon.log").open("wb")
    process = _start_run(config, sim.base_url, log, workdir / "data")
    try:
        await _wait(lambda: "daemon_protecting" in (workdir / "daemon.log").read_text(), "the daemon", 30)
        for i in ids:   # a position per account: quotes of MNQ are evaluated for all ten
            sim.trader.place_order(i, "MNQ", side="buy", size=1, type="market")
        await asyncio.sleep(3.0)
        rss = _proc_rss_mb(process.pid)
        progress(f"RSS with 10 accounts: {rss:.1f} MB; measuring idle CPU for {IDLE_SECONDS:g} s")
        await sim.pause()   # connected, nothing more to receive: idle
        idle = await _cpu_percent(process.pid)
        progress(f"idle CPU {idle:.2f} %; with the Gateway gone (reconnecting, probing) for {IDLE_SECONDS:g} s")
        await sim.stop()
        gone = await _cpu_percent(process.pid)
        return rss, idle, gone
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        await sim.stop()


async def _all(progress: Progress) -> list[Figure]:
    configure_logging("ERROR")   # alerts logged to a terminal would be measured too
    with tempfile.TemporaryDirectory(prefix="bench-daemon-") as tmp:
        root = Path(tmp)
        for name in ("breach", "locked", "starts", "proc"):
            (root / name).mkdir()
        breach = await _breach_latencies(root / "breach", progress)
        locked = await _locked_order_latencies(root / "locked", progress)
        starts = await _startups(root / "starts")
        rss, cpu, gone = await _subprocess_figures(root / "proc", progress)
    return [
        Figure("breach → enforcement request p50", median(breach), "ms", 2.0),
        Figure("breach → enforcement request p95", percentile(breach, 95), "ms"),
        Figure("breach → enforcement request p99", percentile(breach, 99), "ms", 5.0),
        Figure("breach → enforcement request max", max(breach), "ms", note=f"of {len(breach)}"),
        Figure("locked order → cancel request p50", median(locked), "ms"),
        Figure("locked order → cancel request p95", percentile(locked, 95), "ms"),
        Figure("locked order → cancel request p99", percentile(locked, 99), "ms", 5.0),
        Figure("locked order → cancel request max", max(locked), "ms", note=f"of {len(locked)}"),
        Figure("start-up to protecting (median of 10)", median(starts), "ms", 1000.0),
        Figure("start-up to protecting (max of 10)", max(starts), "ms", 1000.0),
        Figure("resident memory, 10 accounts (risk-manager run)", rss, "MB", 60.0),
        Figure("idle CPU (risk-manager run, 10 accounts)", cpu, "% of a core", 1.0,
               note=f"connected, no events, over {IDLE_SECONDS:g} s"),
        Figure("CPU with the Gateway gone (reconnecting, probing)", gone, "% of a core",
               note=f"over {IDLE_SECONDS:g} s"),
    ]


def run(progress: Progress) -> list[Figure]:
    return asyncio.run(_all(progress))
