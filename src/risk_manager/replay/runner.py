"""`risk-manager replay`: a scenario against the real daemon and the real simulator, on a virtual clock.

The simulator runs in-process on 127.0.0.1 (port 0); the daemon talks to it over the real protocol
(REST + SignalR). Both read one `VirtualClock`. For every step the runner:

1. advances the clock through every deadline before the step — the engines' timers and the
   daemon's retries (`daemon.next_deadline()`), the end of every cut — so each fires at its exact
   virtual time, letting the system go quiet after each;
2. sets the clock to the step's time, lets the simulator run what is due (`sim.poll()`) and the
   daemon its timers (`daemon.on_clock_advanced()`);
3. performs the step on the simulator (the scripted trader acts on the broker directly, never
   through the daemon; faults hit only the daemon's connections);
4. waits until quiet: the simulator has nothing in flight (`sim.wait_quiet`), every hub event it
   sent has reached the daemon, the daemon has processed every event it received and nothing is
   being enforced (`daemon.idle()`), and — unless a cut is in force — the user hub is connected and
   the state reconciled (unless the circuit breaker refuses even urgent calls: then the
   reconciliation waits for the breaker's next probe, one of `daemon.next_deadline()`, which step 1
   reaches).

The runner talks to the daemon through a `DaemonHandle`: `LocalDaemon` (the daemon in this process,
on the runner's own clock — what `risk-manager replay` uses) or, for `chaos --kill`, a daemon in a
child process that can be killed with SIGKILL (`risk_manager.chaos.daemon_process.ProcessDaemon`),
whose clock the runner sets through its control channel (`set_time`). The daemon's side of "quiet"
(`settle`) is written once, in `LocalDaemon`; the child process runs a `LocalDaemon` too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from risk_manager.daemon.config_dir import AccountSpec, Credential
from risk_manager.daemon.daemon import Daemon, DaemonOptions
from risk_manager.domain import Catalogue, CatalogueEntry, Contract, VirtualClock, default_catalogue
from risk_manager.engine import ConfigError, RiskConfig, load_risk_config, parse_risk_config, parse_rules_block
from risk_manager.gateway import GatewayClient, GatewayConfig, HubState, MemoryTokenStore, Reconciler
from risk_manager.logs import log_event
from risk_manager.replay.report import build_report, lock_row, order_row, position_row
from risk_manager.replay.scenario import Scenario, ScenarioError, Step
from risk_manager.sim import SimAccount, SimConfig, Simulator, TraderError

log = logging.getLogger("risk_manager.replay")

# The daemon's Gateway settings under replay: the same client, with wall-clock waits shortened
# (reconnect backoff, read retries) because the virtual clock stands still while the runner waits.
REPLAY_GATEWAY_OVERRIDES: dict[str, Any] = {
    "authentication": {"storage": {"type": "memory"}},
    "signalr": {"reconnection": {"maxAttempts": 1000, "delays": [0, 20, 50, 100], "maxDelayMs": 100,
                                 "jitter": 0}},
    "errorHandling": {"retries": {"maxAttempts": 3, "backoffBase": 20, "maxBackoffMs": 100, "jitter": 0}},
    "stateReconciliation": {"minInterval": 0},
}
QUIET_TIMEOUT_S = 20.0
MAX_DEADLINES_PER_STEP = 10_000


class ReplayError(RuntimeError):
    """The replay could not run to the end (an internal problem, exit code 1)."""


# What `DaemonHandle.settle` found: nothing left to do on the daemon's side, still busy, or a market
# hub that had to reconnect (the runner then starts its count of calm rounds again).
Settled = Literal["calm", "busy", "reconnected"]


class DaemonHandle(Protocol):
    """What the runner asks of the daemon under test (in this process or in a child process)."""

    async def start(self) -> None:
        """Start the daemon; returns once it protects (raises `DaemonStartError` otherwise)."""

    async def aclose(self) -> None:
        """Stop the daemon (graceful shutdown: flush, close)."""

    async def set_time(self, now: datetime) -> None:
        """The virtual clock moved to `now` (the daemon's clock must read it before the next event)."""

    async def next_deadline(self) -> datetime | None:
        """`Daemon.next_deadline()`."""

    async def on_clock_advanced(self) -> None:
        """`Daemon.on_clock_advanced()`: run what is due at the clock's time."""

    async def settle(self, hub_sent: int, *, reconcile: bool, market: bool, timeout_s: float) -> Settled:
        """The daemon's part of one round of `ReplayRunner.quiet` (see `LocalDaemon.settle`)."""

    async def locks(self) -> list[str]:
        """The locks in force now, one sorted JSON row (`lock_row`) each."""

    async def report(self) -> dict[str, Any]:
        """`actions`, `locks`, `alerts` rows of the replay report and `locked` (account id → bool)."""


class LocalDaemon:
    """The daemon in this process, on the runner's clock (`set_time` has nothing to do)."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    async def start(self) -> None:
        await self.daemon.start()

    async def aclose(self) -> None:
        await self.daemon.aclose()

    async def set_time(self, now: datetime) -> None:
        clock = self.daemon.clock
        if isinstance(clock, VirtualClock) and clock.now() != now:
            clock.set(now)

    async def next_deadline(self) -> datetime | None:
        return self.daemon.next_deadline()

    async def on_clock_advanced(self) -> None:
        await self.daemon.on_clock_advanced()

    def hub_received(self) -> int:
        total = 0
        for connection in self.daemon.connections:
            for hub in (connection.client.user_hub, connection.client.market_hub):
                total += hub.stats.events + hub.stats.malformed + hub.stats.unknown_targets
        return total

    async def settle(self, hub_sent: int, *, reconcile: bool, market: bool, timeout_s: float) -> Settled:
        """Every hub record the simulator sent (`hub_sent` of them) received (bounded: records lost in a cut
        never arrive), every event processed and nothing enforced (`idle`); with `reconcile` every
        connection reconciled, with `market` every market hub connected — within `timeout_s`."""
        daemon = self.daemon
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        delivered = loop.time() + 0.5   # hub records lost in a cut never arrive: wait a bounded time
        # Counters of two components (no event to wait on); the loop is bounded.
        while self.hub_received() < hub_sent and loop.time() < delivered:  # noqa: ASYNC110
            await asyncio.sleep(0.001)
        await daemon.idle()
        if reconcile:
            for connection in daemon.connections:
                if connection.reconciler is not None and not connection.fresh:
                    await self._wait_fresh(connection.reconciler, connection.client, deadline)
                    await daemon.idle()
        if market:
            for connection in daemon.connections:
                hub = connection.client.market_hub
                if hub.state is not HubState.CONNECTED:
                    try:
                        await hub.wait_connected(max(0.01, deadline - loop.time()))
                    except TimeoutError:
                        raise ReplayError("the daemon's market hub did not reconnect after the cut") from None
                    return "reconnected"
        return "busy" if daemon.busy else "calm"

    async def _wait_fresh(self, reconciler: Reconciler, client: GatewayClient, deadline: float) -> None:
        """Until reconciled — or until the circuit breaker refuses even urgent calls: then the
        reconciliation waits for clock time (the breaker's next probe, one of `daemon.next_deadline()`),
        which only `ReplayRunner._advance_to` moves."""
        loop = asyncio.get_running_loop()
        while not reconciler.fresh and client.breaker.admits(urgent=True):
            if loop.time() > deadline:
                raise ReplayError("the daemon did not reconcile after the connection came back "
                                  f"(user hub {client.user_hub.state.value}, breaker {client.breaker.state.value})")
            with contextlib.suppress(TimeoutError):
                await reconciler.wait_fresh(0.02)

    async def locks(self) -> list[str]:
        now = self.daemon.clock.now()
        rows = []
        for account_id, protected in self.daemon.accounts.items():
            for lock in protected.engine.locks(account_id):
                if lock.until is None or lock.until > now:
                    rows.append(json.dumps(lock_row(lock), sort_keys=True))
        return sorted(rows)

    async def report(self) -> dict[str, Any]:
        daemon = self.daemon
        rows = build_report("", daemon.outcomes, daemon.alerts, {}, {})
        locked = {str(i): bool(p.engine.locks(i)) for i, p in daemon.accounts.items()}
        return {"actions": rows["actions"], "locks": rows["locks"], "alerts": rows["alerts"], "locked": locked}


@dataclass(frozen=True, slots=True)
class ReplayResult:
    report: dict[str, Any]
    problems: list[str]          # `expect:` mismatches (only with check=True)
    wall_s: float


def scenario_risk(scenario: Scenario, rules_file: Path | None = None) -> RiskConfig:
    """The risk config of a scenario: --rules overrides `rules:` / `risk:` / `rules_file:`."""
    source = "--rules" if rules_file is not None else "scenario"
    try:
        if rules_file is not None:
            return load_risk_config(rules_file)
        if scenario.rules is not None:
            return parse_rules_block(scenario.rules, "scenario")
        if scenario.risk is not None:
            return parse_risk_config(scenario.risk, "scenario")
        if scenario.rules_file is not None:
            return load_risk_config(scenario.rules_file)
        return parse_rules_block({}, "scenario")
    except ConfigError as exc:
        where = exc.key_path if scenario.risk is None or rules_file is not None else f"risk.{exc.key_path}"
        raise ScenarioError(exc.file or source, where, exc.message) from None


def _catalogue(scenario: Scenario) -> Catalogue:
    catalogue = default_catalogue()
    for extra in scenario.contracts:
        contract = Contract(id=extra.id, name=extra.name, description=extra.description, tick_size=extra.tick_size,
                            tick_value=extra.tick_value, active_contract=True, symbol_id=extra.symbol_id)
        catalogue.add(CatalogueEntry(contract, (extra.symbol or contract.symbol).upper(), extra.fee,
                                     extra.reference_price))
    return catalogue


class ReplayRunner:
    def __init__(self, scenario: Scenario, risk: RiskConfig, workdir: Path, source: str = "<scenario>") -> None:
        self.scenario = scenario
        self.risk = risk
        self.workdir = workdir
        self.source = source
        self.clock = VirtualClock(scenario.start)
        self.sim = Simulator(SimConfig(
            accounts=[SimAccount(a.id, a.display_name, a.balance, a.can_trade) for a in scenario.accounts],
            quote_feed="scripted", fees=scenario.fees, clock=self.clock, catalogue=_catalogue(scenario)))
        self.daemon: DaemonHandle | None = None
        self.options: DaemonOptions | None = None
        self._cut_ends: list[datetime] = []

    def new_daemon(self, options: DaemonOptions) -> DaemonHandle:
        """The daemon under test for `options` (not started): here, in this process."""
        return LocalDaemon(Daemon(options))

    async def run(self) -> dict[str, Any]:
        await self.sim.start("127.0.0.1", 0)
        try:
            gateway = GatewayConfig.for_server(self.sim.base_url, REPLAY_GATEWAY_OVERRIDES)
            credential = Credential("replay", "replay", "replay-api-key")
            accounts = tuple(AccountSpec(a.id, None, credential, self.risk) for a in self.scenario.accounts)
            self.options = DaemonOptions(
                gateway=gateway, accounts=accounts, database_path=self.workdir / "risk.db", clock=self.clock,
                run_timers=False, durable_fsync=False, token_store=MemoryTokenStore)
            self.daemon = self.new_daemon(self.options)
            await self.daemon.start()
            await self.quiet()
            for index, step in enumerate(self.scenario.steps):
                await self._advance_to(self.scenario.at(step))
                await self._perform(index, step)
                await self.quiet()
            return await self._report()
        finally:
            if self.daemon is not None:
                await self.daemon.aclose()
            await self.sim.stop()

    # ------------------------------------------------------------------------------------ time
    async def _advance_to(self, target: datetime) -> None:
        daemon = self.daemon
        assert daemon is not None
        for _ in range(MAX_DEADLINES_PER_STEP):
            now = self.clock.now()
            candidates = [d for d in (await daemon.next_deadline(), *self._cut_ends)
                          if d is not None and now < d <= target]
            if not candidates:
                break
            await self._tick(min(candidates))
        else:
            raise ReplayError(f"more than {MAX_DEADLINES_PER_STEP} deadlines before {target.isoformat()}")
        if target > self.clock.now() or self.clock.now() == self.scenario.start:
            await self._tick(target)

    async def _tick(self, when: datetime) -> None:
        assert self.daemon is not None
        self.clock.set(when)
        await self.daemon.set_time(when)
        await self.sim.poll()
        await self.daemon.on_clock_advanced()
        await self.quiet()

    # ------------------------------------------------------------------------------------ steps
    async def _perform(self, index: int, step: Step) -> None:
        sim = self.sim
        kind = step.kind
        try:
            if step.quote is not None:
                q = step.quote
                sim.market.set_quote(q.instrument, q.price, bid=q.bid, ask=q.ask)
            elif step.order is not None:
                o = step.order
                sim.trader.place_order(o.account, o.instrument, side=o.side, size=o.size, type=o.type,
                                       limit_price=o.limit_price, stop_price=o.stop_price, trail_ticks=o.trail_ticks,
                                       tag=o.tag, fill=list(o.fill) if o.fill else None)
                for _ in range(len(o.fill or ()) - 1):   # one partial fill per matching step
                    await self.quiet()
                    await sim.poll()
            elif step.cancel is not None:
                c = step.cancel
                sim.trader.cancel_order(c.account, order_id=c.order_id, tag=c.tag)
            elif step.close is not None:
                sim.trader.close_position(step.close.account, step.close.instrument)
            elif step.account is not None:
                a = step.account
                sim.set_account(a.id, can_trade=a.can_trade, balance=a.balance)
            elif step.fault is not None:
                self._fault(step)
        except (TraderError, KeyError, ValueError) as exc:
            message = exc.args[0] if exc.args else str(exc)
            raise ScenarioError(self.source, f"steps[{index}].{kind}", str(message)) from None
        log_event(log, "replay_step", index=index, at=self.clock.now().isoformat(), kind=kind)

    def _fault(self, step: Step) -> None:
        fault = step.fault
        assert fault is not None
        faults = self.sim.faults
        if fault.cut is not None and fault.for_ is not None:
            faults.cut(fault.cut, fault.for_)
            self._cut_ends.append(self.clock.now() + fault.for_)
        elif fault.latency is not None:
            faults.latency(rest_ms=int(fault.latency.rest_ms), hub_ms=int(fault.latency.hub_ms))
        elif fault.http_errors is not None:
            faults.http_errors(fault.http_errors.status, fault.http_errors.count)
        elif fault.expire_token:
            faults.expire_tokens()
        elif fault.lose_response is not None:
            faults.lose_responses(fault.lose_response.count)
        elif fault.drop_events is not None:
            faults.drop_events(fault.drop_events.hub, fault.drop_events.count)

    # ------------------------------------------------------------------------------------ quiet
    def hub_target(self) -> int:
        """How many hub records the daemon must have received: every one the simulator sent."""
        sent = self.sim.recorder.hub_sent
        return sent[-1].seq if sent else 0

    def _cut_active(self, target: str) -> bool:
        return self.sim.faults.is_cut(target)  # type: ignore[arg-type]

    async def quiet(self) -> None:
        """Until nothing is in flight anywhere (see the module docstring)."""
        daemon = self.daemon
        assert daemon is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + QUIET_TIMEOUT_S
        calm = 0
        while calm < 2:
            await self.sim.wait_quiet(timeout=QUIET_TIMEOUT_S)
            settled = await daemon.settle(
                self.hub_target(), reconcile=not self._cut_active("user_hub") and not self._cut_active("rest"),
                market=not self._cut_active("market_hub"), timeout_s=deadline - loop.time())
            if settled == "reconnected":
                calm = 0
                continue
            busy = settled == "busy" or self.sim.rest.in_flight or self.sim.hubs.busy
            calm = 0 if busy else calm + 1
            if loop.time() > deadline:
                raise ReplayError(f"the system did not go quiet within {QUIET_TIMEOUT_S:g} s")
            await asyncio.sleep(0)

    # ------------------------------------------------------------------------------------ report
    async def _report(self) -> dict[str, Any]:
        daemon = self.daemon
        assert daemon is not None
        rows = await self.daemon_rows()
        broker = self.sim.broker
        final: dict[str, dict[str, Any]] = {}
        for account in self.scenario.accounts:
            snapshot = broker.account(account.id)
            final[str(account.id)] = {
                "positions": [position_row(p) for p in broker.positions(account.id) if p.size > 0],
                "open_orders": [order_row(o) for o in broker.open_orders(account.id)],
                "realized_pnl": round(broker.realized_pnl(account.id), 2),
                "fees": round(broker.fees(account.id), 2),
                "balance": round(snapshot.balance, 2),
                "locked": bool(rows["locked"].get(str(account.id), False)),
                "can_trade": snapshot.can_trade,
            }
        recorder = self.sim.recorder
        counters = {
            "orders_placed_by_daemon": sum(1 for i in recorder.intents if i.kind == "place"),
            "duplicate_orders": len(recorder.duplicate_orders),
            "requests": len(recorder.requests),
            "http_429": recorder.http_429,
        }
        report = build_report(self.scenario.name, (), (), final, counters)
        report.update(actions=rows["actions"], locks=rows["locks"], alerts=rows["alerts"])
        return report

    async def daemon_rows(self) -> dict[str, Any]:
        """The daemon's `report()` rows (a runner that restarts the daemon adds the earlier daemons')."""
        assert self.daemon is not None
        return await self.daemon.report()


async def replay(scenario: Scenario, rules_file: Path | None = None, *, source: str = "<scenario>",
                 check: bool = False) -> ReplayResult:
    """Run `scenario`; with `check`, compare the report with its `expect:` block."""
    from risk_manager.replay.expect import check_expectations

    risk = scenario_risk(scenario, rules_file)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="risk-manager-replay-") as tmp:
        report = await ReplayRunner(scenario, risk, Path(tmp), source).run()
    problems: list[str] = []
    if check:
        if scenario.expect is None:
            problems = ["the scenario has no `expect:` block to check"]
        else:
            problems = check_expectations(scenario.expect, report)
    return ReplayResult(report, problems, time.perf_counter() - started)
