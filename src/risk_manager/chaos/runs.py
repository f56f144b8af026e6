"""One chaos run (a generated scenario replayed against the real daemon and simulator, then judged by
the oracle) and many of them (`run_many`), as `risk-manager chaos` does.

The replay itself is `risk_manager.replay.runner.ReplayRunner`: the same runner, the same virtual
clock, the same wire path as `risk-manager replay`. This module only listens: a user-event listener
on the simulator records every event the broker emits with its virtual time and whether a
connected, subscribed hub connection of the daemon was there to receive it; the simulator's recorder
gives the REST requests; the scenario gives quotes and faults. That is the oracle's `History`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import random
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from risk_manager.chaos.daemon_process import ProcessDaemon
from risk_manager.chaos.generator import generate, to_yaml
from risk_manager.chaos.oracle import (
    History,
    Judgement,
    TruthEvent,
    TruthQuote,
    TruthRequest,
    Violation,
    Window,
    judge,
)
from risk_manager.daemon.daemon import DaemonOptions
from risk_manager.domain import AccountEvent, OrderEvent, PositionEvent, TradeEvent, UserEvent
from risk_manager.logs import configure_logging, log_event
from risk_manager.replay.runner import QUIET_TIMEOUT_S, ReplayError, ReplayRunner, scenario_risk
from risk_manager.replay.scenario import Scenario, Step

log = logging.getLogger("risk_manager.chaos")

MAX_KILL_DELAY_S = 0.005   # a kill lands 0–5 ms (wall time) after its step was performed
_KIND = {AccountEvent: "accounts", OrderEvent: "orders", PositionEvent: "positions", TradeEvent: "trades"}


class KillingRunner(ReplayRunner):
    """A replay whose daemon runs in a child process that is killed with SIGKILL at chosen steps and
    restarted on the same database files (docs/reliability.md, "Kill mode").

    At each chosen step the locks in force at the last quiet point (before the step) are noted, the
    step is performed, and after a random wall-clock wait of 0–`MAX_KILL_DELAY_S` (seeded: some kills
    land while the daemon is still processing or enforcing the step, some after) the child gets
    `SIGKILL`. Once it is dead and the simulator has dropped its connections and answered what it had
    already sent, a new child starts on the same files — what the kill left — against the same
    simulator; once quiet, its locks are noted for the oracle's `lost_lock` check.
    """

    def __init__(self, scenario: Scenario, workdir: Path, kill_steps: set[int], source: str,
                 seed: int = 0) -> None:
        super().__init__(scenario, scenario_risk(scenario), workdir, source)
        self.kill_steps = kill_steps
        self.kills = 0
        self.killed: list[tuple[int, int | None]] = []   # (pid, exit code) of every killed child
        self._requests_at_step = 0
        self.locks_before: list[str] = []
        self.locks_after: list[str] = []
        self._rng = random.Random(seed * 7_919 + 11)
        self._kill_pending = False
        self._sent_before_restart = 0
        self._earlier_rows: list[dict[str, Any]] = []

    def new_daemon(self, options: DaemonOptions) -> ProcessDaemon:
        return ProcessDaemon(options)

    def hub_target(self) -> int:
        # The child counts only the hub records it received itself: records sent to a killed child
        # are not for the new one (it reconciles what they carried).
        return super().hub_target() - self._sent_before_restart

    async def _perform(self, index: int, step: Step) -> None:
        self._kill_pending = self._kill_pending or index in self.kill_steps
        if self._kill_pending:   # the last quiet point before the kill: what the daemon holds and reported
            assert self.daemon is not None
            before, reported = await self._locks_in_force(step), await self.daemon.report()
            self._requests_at_step = len(self.sim.recorder.requests)   # the trader's steps make none
        await super()._perform(index, step)
        # A kill during a REST cut is postponed to the first step after it: the daemon's start-up does
        # not retry a failed login (it exits with DaemonStartError and leaves the restart to the
        # service manager), which is not what this check is about.
        if self._kill_pending and not self.sim.faults.is_cut("rest"):
            self._kill_pending = False
            self._earlier_rows.append(reported)   # (outcomes after the quiet point die with the child)
            await self._kill_and_restart(before)

    async def _locks_in_force(self, step: Step) -> list[str]:
        """The locks in force now, less those the step itself may end (a `can_trade` flip back to true
        ends that account's RULE-010 lock)."""
        assert self.daemon is not None
        rows = await self.daemon.locks()
        if step.account is not None and step.account.can_trade:
            ended = (step.account.id, "until_can_trade")
            rows = [r for r in rows if (lock := json.loads(r)) and (lock["account"], lock["kind"]) != ended]
        return rows

    async def _kill_and_restart(self, before: list[str]) -> None:
        old = self.daemon
        assert isinstance(old, ProcessDaemon) and self.options is not None
        self.kills += 1
        delay = await self.wait_before_kill()
        old.kill()
        # For the log line: whether the kill landed with a request of the child or hub records for it in
        # flight, and how many requests the child had sent for the step.
        in_flight = bool(self.sim.rest.in_flight or self.sim.hubs.busy)
        requests = len(self.sim.recorder.requests) - self._requests_at_step
        await old.wait_dead()
        if old.process is not None and old.process.pid is not None:
            self.killed.append((old.process.pid, old.process.exitcode))
        await self._wait_disconnected()
        self._sent_before_restart = super().hub_target()
        options = replace(self.options, clock=self.clock)
        if self._cut_active("user_hub"):
            # The new daemon's user hub cannot connect before the virtual clock passes the cut's end,
            # which it does not during a start-up: it would start stale after its start-up timeout
            # (15 s of wall time) whatever it waits — so it starts stale at once, as it would then.
            options = replace(options, start_timeout_s=0.0)
        self.daemon = self.new_daemon(options)
        await self.daemon.start()
        await self.quiet()
        after = await self.daemon.locks()
        self.locks_before += [f"{row} (kill {self.kills})" for row in before]
        self.locks_after += [f"{row} (kill {self.kills})" for row in after]
        log_event(log, "chaos_daemon_killed", kill=self.kills, at=self.clock.now().isoformat(),
                  delay_ms=round(delay * 1000, 2), in_flight=in_flight, requests=requests, locks_before=len(before),
                  locks_after=len(after))

    async def wait_before_kill(self) -> float:
        """The wait between performing a kill step and the kill: random, 0–`MAX_KILL_DELAY_S` of wall time
        (seeded), during which the simulator (this process) goes on serving the child. Returns it, in s."""
        delay = self._rng.uniform(0.0, MAX_KILL_DELAY_S)
        await asyncio.sleep(delay)
        return delay

    async def _wait_disconnected(self) -> None:
        """Until the simulator has dropped the dead child's hub connections and answered every request it
        had received: after that, every hub record it sends is for the new child."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + QUIET_TIMEOUT_S
        # The simulator notices the closed sockets on its own loop turns; bounded.
        while self.sim.hubs.connections and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.001)
        if self.sim.hubs.connections:
            raise ReplayError("the simulator kept the killed daemon's hub connections open")
        await self.sim.wait_quiet(timeout=QUIET_TIMEOUT_S)

    async def daemon_rows(self) -> dict[str, Any]:
        rows = await super().daemon_rows()
        merged: dict[str, Any] = {"actions": [], "locks": [], "alerts": [], "locked": rows["locked"]}
        for part in (*self._earlier_rows, rows):
            merged["actions"] += part["actions"]
            merged["alerts"] += part["alerts"]
            merged["locks"] += [row for row in part["locks"] if row not in merged["locks"]]
        return merged


class _Recording:
    """Listens to the simulator of one `ReplayRunner` while it runs."""

    def __init__(self, runner: ReplayRunner) -> None:  # (a KillingRunner too: same simulator throughout)
        self.runner = runner
        self.events: list[TruthEvent] = []
        self.market_drops: list[datetime] = []
        self._dropped_user = False
        sim = runner.sim
        faults = sim.faults
        take = faults.take_dropped_event

        # The simulator counts no dropped events itself; wrapping this one method (on this instance
        # only) tells which broker event never left the hub, so the oracle knows what the daemon missed.
        def take_dropped_event(hub: Literal["user", "market"]) -> bool:
            dropped = take(hub)
            if dropped and hub == "user":
                self._dropped_user = True
            elif dropped:
                self.market_drops.append(sim.clock.now())
            return dropped

        faults.take_dropped_event = take_dropped_event  # type: ignore[method-assign]
        sim.add_user_listener(self._on_event)

    def _on_event(self, event: UserEvent) -> None:
        sim = self.runner.sim
        kind = _KIND[type(event)]
        reached = any(c.hub == "user" and not c.closed and c.subscribed(kind, event.account_id)
                      for c in sim.hubs.connections)
        delivered = reached and not self._dropped_user
        self._dropped_user = False
        self.events.append(TruthEvent(sim.clock.now(), event, delivered, len(sim.recorder.requests)))


def history_of(scenario: Scenario, recording: _Recording | None, crash: str | None) -> History:
    """The oracle's input for a finished (or crashed) run of `scenario`."""
    rules = dict(scenario.rules or {})
    h = History(rules=rules, accounts=[a.id for a in scenario.accounts], crash=crash)
    catalogue = recording.runner.sim.catalogue if recording is not None else None
    for step in scenario.steps:
        at = scenario.at(step)
        h.checkpoints.append(at)
        if step.quote is not None and catalogue is not None:
            h.quotes.append(TruthQuote(at, catalogue.get(step.quote.instrument).contract.id, step.quote.price))
        fault = step.fault
        if fault is not None and fault.cut is not None and fault.for_ is not None:
            window = Window(at, at + fault.for_)
            if fault.cut == "rest":
                h.rest_cuts.append(window)
            elif fault.cut == "market_hub":
                h.market_cuts.append(window)
        if fault is not None and fault.http_errors is not None and fault.http_errors.status == 429:
            h.injected_429 += fault.http_errors.count
    if recording is not None:
        sim = recording.runner.sim
        h.events = recording.events
        h.market_drops = recording.market_drops
        for index, r in enumerate(sim.recorder.requests):
            account = r.body.get("accountId") if isinstance(r.body, dict) else None
            ok = r.status if r.error_code in (None, 0) else -1
            h.requests.append(TruthRequest(index, r.path, account if isinstance(account, int) else None, ok, r.at))
        h.duplicate_orders = [f"{i.kind} account {i.account_id} contract {i.contract_id} tag {i.custom_tag!r} "
                              f"(request {i.seq})" for i in sim.recorder.duplicate_orders]
        h.http_429 = sim.recorder.http_429
    return h


@dataclass(slots=True)
class RunResult:
    seed: int
    scenario: Scenario
    judgement: Judgement
    wall_s: float
    report: dict[str, Any] | None = None
    kills: int = 0

    @property
    def clean(self) -> bool:
        return self.judgement.clean


def kill_steps(scenario: Scenario, seed: int, kills: int = 2) -> set[int]:
    """Random step indexes (deterministic per seed) after which the daemon is killed."""
    candidates = list(range(1, max(1, len(scenario.steps) - 1)))
    return set(random.Random(seed * 104_729 + 3).sample(candidates, min(kills, len(candidates))))


def judge_run(runner: ReplayRunner, recording: _Recording, crash: str | None = None) -> Judgement:
    """The oracle's verdict on a finished run: the simulator's record, and the locks around the kills."""
    history = history_of(runner.scenario, recording, crash)
    if isinstance(runner, KillingRunner):
        history.locks_before_kill, history.locks_after_kill = runner.locks_before, runner.locks_after
    return judge(history)


async def run_scenario(scenario: Scenario, seed: int = 0, *, kill: bool = False) -> RunResult:
    """Replay `scenario` against the daemon and judge it; with `kill`, kill and restart the daemon twice."""
    started = time.perf_counter()
    crash: str | None = None
    report: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="risk-manager-chaos-") as tmp:
        source = f"<chaos seed {seed}>"
        runner = (KillingRunner(scenario, Path(tmp), kill_steps(scenario, seed), source, seed) if kill
                  else ReplayRunner(scenario, scenario_risk(scenario), Path(tmp), source))
        recording = _Recording(runner)
        try:
            report = await runner.run()
        except Exception as exc:  # the run failed: that is the finding, with its traceback
            crash = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"
            log_event(log, "chaos_run_crashed", logging.ERROR, seed=seed, error=f"{type(exc).__name__}: {exc}")
    judgement = judge_run(runner, recording, crash)
    kills = runner.kills if isinstance(runner, KillingRunner) else 0
    return RunResult(seed, scenario, judgement, time.perf_counter() - started, report, kills)


@dataclass(slots=True)
class Summary:
    runs: int = 0
    clean: int = 0
    breaches: int = 0
    unjudged: int = 0
    actions: int = 0       # broker actions the daemon's enforcer reported done
    kills: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    failed_seeds: list[int] = field(default_factory=list)
    wall_s: float = 0.0
    run_wall_s: list[float] = field(default_factory=list)

    def add(self, result: RunResult) -> None:
        self.runs += 1
        self.breaches += result.judgement.breaches
        self.unjudged += result.judgement.unjudged
        self.run_wall_s.append(result.wall_s)
        self.kills += result.kills
        if result.report is not None:
            self.actions += sum(1 for a in result.report.get("actions", []) if a.get("status") == "done")
        if result.clean:
            self.clean += 1
        else:
            self.failed_seeds.append(result.seed)
            self.by_kind.update(v.kind for v in result.judgement.violations)

    def to_json(self) -> dict[str, Any]:
        walls = sorted(self.run_wall_s)
        return {"runs": self.runs, "clean": self.clean, "violations_by_kind": dict(self.by_kind),
                "failed_seeds": self.failed_seeds, "breaches_judged": self.breaches - self.unjudged,
                "breaches_unjudged": self.unjudged, "daemon_actions_done": self.actions, "kills": self.kills,
                "wall_s": round(self.wall_s, 2),
                "run_wall_s_median": round(walls[len(walls) // 2], 3) if walls else None,
                "run_wall_s_max": round(walls[-1], 3) if walls else None}


def judge_command(result: RunResult, path: Path) -> str:
    """The command that runs and judges a written failure again (kills land at the same steps)."""
    kill = f" --seed {result.seed} --kill" if result.kills else ""
    return f"risk-manager chaos --scenario {path}{kill}"


def write_failure(result: RunResult, out: Path) -> Path:
    """`chaos-failure-<seed>.yaml` in `out`: the scenario, with the violations as comments."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"chaos-failure-{result.seed}.yaml"
    header = [f"# chaos seed {result.seed}: {len(result.judgement.violations)} violation(s)",
              f"# judge it again: {judge_command(result, Path(path.name))}",
              f"# or just replay it: risk-manager replay {path.name}"]
    header += ["# " + line for v in result.judgement.violations for line in str(v).splitlines()]
    path.write_text("\n".join(header) + "\n" + to_yaml(result.scenario), encoding="utf-8")
    return path


def _seed_in_worker(seed: int, accounts: int | None, minutes: float, kill: bool) -> RunResult:
    """One run in a worker process of `run_many(jobs > 1)`: its own event loop, simulator and daemon."""
    return asyncio.run(run_scenario(generate(seed, accounts=accounts, minutes=minutes), seed, kill=kill))


def _init_worker(log_level: int) -> None:
    configure_logging(log_level)


def _unfinished(seed: int, accounts: int | None, minutes: float, exc: BaseException) -> RunResult:
    """A run whose worker process died or raised: judged as a crash (the finding), never dropped."""
    detail = f"the run's worker process failed: {type(exc).__name__}: {exc}"
    log_event(log, "chaos_worker_failed", logging.ERROR, seed=seed, error=detail)
    return RunResult(seed, generate(seed, accounts=accounts, minutes=minutes),
                     Judgement([Violation("crash", None, None, detail)], 0, 0), 0.0)


async def run_many(runs: int, seed: int, *, minutes: float = 1.0, accounts: int | None = None,
                   out: Path | None = None, on_result: Callable[[RunResult, Path | None], None] | None = None,
                   kill: bool = False, jobs: int = 1) -> Summary:
    """Run `runs` scenarios for seeds `seed`, `seed + 1`, …; failing runs are written to `out`.

    With `jobs > 1` the runs are spread over that many worker processes (each run is independent and
    deterministic per seed: its own simulator, daemon, virtual clock and temporary folder), and
    results arrive in completion order; `Summary.failed_seeds` is sorted either way.
    """
    summary = Summary()
    started = time.perf_counter()

    def take(result: RunResult) -> None:
        summary.add(result)
        written = write_failure(result, out) if out is not None and not result.clean else None
        if on_result is not None:
            on_result(result, written)

    if jobs <= 1:
        for s in range(seed, seed + runs):
            take(await run_scenario(generate(s, accounts=accounts, minutes=minutes), s, kill=kill))
            await asyncio.sleep(0)
    else:
        loop = asyncio.get_running_loop()
        level = logging.getLogger("risk_manager").getEffectiveLevel()
        # `spawn`: a worker must not inherit this process's running event loop (as `fork` would).
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_init_worker, initargs=(level,)) as pool:
            futures = {loop.run_in_executor(pool, _seed_in_worker, s, accounts, minutes, kill): s
                       for s in range(seed, seed + runs)}
            pending = set(futures)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for future in sorted(done, key=futures.__getitem__):
                    exc = future.exception()
                    take(future.result() if exc is None else _unfinished(futures[future], accounts, minutes, exc))
    summary.failed_seeds.sort()
    summary.wall_s = time.perf_counter() - started
    return summary


__all__ = ["KillingRunner", "RunResult", "Summary", "Violation", "history_of", "judge_command", "kill_steps",
           "run_many", "run_scenario", "write_failure"]
