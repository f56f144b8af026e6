"""`risk-manager demo`: the simulator and the daemon in one process, and a trader who breaks the rules.

Over about a minute of wall time (`speed` divides every wait) the scripted trader:

1. buys 8 MNQ where the limit is 5 per instrument          → the daemon reduces the position to 5 (RULE-002);
2. buys 1 MES and never places a stop (grace 10 s)          → the daemon closes it (RULE-008);
3. holds 5 MNQ while the market falls through -$500          → alert at 80 %, then lock until the reset,
                                                              flatten, cancel orders (RULE-003);
4. trades while locked: a market buy and a resting limit     → closed and cancelled at once (the lock).

Every line of the live log is an event: the trader's acts, the broker's fills, the daemon's alerts and
enforcement outcomes. At the end each scripted breach is checked against what the daemon did; the
demo exits 0 only when every one was enforced.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from risk_manager.daemon.config_dir import AccountSpec, Credential
from risk_manager.daemon.daemon import AlertRecord, Daemon, DaemonOptions
from risk_manager.domain import OrderSide, TradeEvent, UserEvent
from risk_manager.enforcement import ActionOutcome
from risk_manager.engine import ActionKind, parse_rules_block
from risk_manager.gateway import GatewayConfig, MemoryTokenStore
from risk_manager.sim import SimAccount, SimConfig, Simulator

ACCOUNT = 1001
DEMO_RULES = {
    "max_contracts_per_instrument": {"enabled": True, "limits": {"MNQ": 5}, "default_limit": 2},
    "daily_realized_loss": {"enabled": True, "loss_limit": 500, "warn_at": 0.8},
}
GRACE_S = 10.0   # RULE-008's grace at speed 1 (divided by --speed: the daemon runs on the wall clock)


@dataclass(slots=True)
class DemoLog:
    out: TextIO
    started: float = field(default_factory=time.perf_counter)

    def line(self, who: str, text: str) -> None:
        self.out.write(f"{time.perf_counter() - self.started:7.1f}s  {who:<7} {text}\n")
        self.out.flush()


def _describe_outcome(outcome: ActionOutcome) -> str:
    action = outcome.action
    what = action.kind.value
    if action.contract_id:
        what += f" {action.contract_id}"
    if action.kind is ActionKind.REDUCE_POSITION and action.size is not None:
        what += f" to {action.size}"
    if action.kind is ActionKind.LOCK and action.lock is not None:
        lock = action.lock
        what += f" {lock.kind.value}" + (f" until {lock.until:%H:%M} UTC" if lock.until else "")
    status = str(outcome.status).upper()
    reason = f" ({outcome.reason})" if outcome.reason else ""
    return f"{'+'.join(action.rules)}: {what} → {status} in {outcome.duration_ms:.1f} ms{reason}"


class Demo:
    def __init__(self, out: TextIO, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError(f"--speed must be greater than 0, got {speed}")
        self.speed = speed
        self.log = DemoLog(out)
        self.sim = Simulator(SimConfig(accounts=[SimAccount(ACCOUNT, "DEMO-1001")], quote_feed="scripted"))
        self.daemon: Daemon | None = None
        self.outcomes: list[tuple[float, ActionOutcome]] = []

    async def _at(self, second: float) -> None:
        delay = second / self.speed - (time.perf_counter() - self.log.started)
        if delay > 0:
            await asyncio.sleep(delay)

    def _on_fill(self, event: UserEvent) -> None:
        if isinstance(event, TradeEvent) and event.account_id == ACCOUNT:
            t = event.trade
            side = "buy" if t.side == OrderSide.BID else "sell"
            pnl = "" if t.profit_and_loss is None else f", P&L {t.profit_and_loss:+.2f}"
            self.log.line("BROKER", f"fill: {side} {t.size} {t.contract_id} @ {t.price:.2f}{pnl}")

    def _on_activity(self, item: ActionOutcome | AlertRecord) -> None:
        if isinstance(item, AlertRecord):
            self.log.line("ALERT", f"{'+'.join(item.rules)} [{item.level}] {item.message}")
        else:
            self.outcomes.append((time.perf_counter() - self.log.started, item))
            self.log.line("DAEMON", _describe_outcome(item))

    def _trader(self, text: str, act: Callable[[], object]) -> None:
        self.log.line("TRADER", text)
        act()

    def _price(self, price: float) -> None:
        self.sim.market.set_quote("MNQ", price)
        self.log.line("MARKET", f"MNQ {price:.2f}")

    async def run(self, keep_running: Callable[[], Awaitable[None]] | None = None) -> bool:
        await self.sim.start("127.0.0.1", 0)
        self.sim.add_user_listener(self._on_fill)
        try:
            with tempfile.TemporaryDirectory(prefix="risk-manager-demo-") as tmp:
                return await self._run(Path(tmp), keep_running)
        finally:
            await self.sim.stop()

    async def _run(self, workdir: Path, keep_running: Callable[[], Awaitable[None]] | None) -> bool:
        log = self.log
        trader = self.sim.trader
        rules = {**DEMO_RULES, "no_stop_loss_grace": {"enabled": True, "grace": f"{GRACE_S / self.speed:g}s"}}
        risk = parse_rules_block(rules, "demo")
        log.line("DEMO", f"simulator on {self.sim.base_url}; rules: MNQ ≤ 5 contracts (RULE-002), daily loss "
                         "$500 with an alert at 80 % (RULE-003), a stop within 10 s (RULE-008)")
        self._price(20000.0)
        self.sim.market.set_quote("MES", 5900.0)
        gateway = GatewayConfig.for_server(self.sim.base_url, {"authentication": {"storage": {"type": "memory"}}})
        self.daemon = daemon = Daemon(DaemonOptions(
            gateway=gateway, accounts=(AccountSpec(ACCOUNT, None, Credential("demo", "demo", "demo-api-key"), risk),),
            database_path=workdir / "risk.db", durable_fsync=False, token_store=MemoryTokenStore))
        daemon.subscribe_activity(self._on_activity)
        try:
            await daemon.start()
            ready_ms = (daemon.protecting_after_s or 0.0) * 1000
            log.line("DAEMON", f"protecting account {ACCOUNT} (ready in {ready_ms:.0f} ms)")
            breaches: list[tuple[str, float, Callable[[ActionOutcome], bool]]] = []

            await self._at(3)
            self._trader("buys 8 MNQ at market — the limit is 5 per instrument",
                         lambda: trader.place_order(ACCOUNT, "MNQ", side="buy", size=8, type="market"))
            breaches.append(("oversize: 8 MNQ reduced to 5", 3 / self.speed,
                             lambda o: o.action.kind is ActionKind.REDUCE_POSITION and "RULE-002" in o.action.rules))
            await self._at(6)
            self._trader("protects the MNQ position: sell stop 5 @ 19900.00",
                         lambda: trader.place_order(ACCOUNT, "MNQ", side="sell", size=5, type="stop",
                                                    stop_price=19900.0, tag="mnq-stop"))
            await self._at(9)
            self._trader("buys 1 MES at market and forgets the stop (grace 10 s)",
                         lambda: trader.place_order(ACCOUNT, "MES", side="buy", size=1, type="market"))
            breaches.append(("no stop: MES closed after the grace period", 9 / self.speed,
                             lambda o: o.action.kind is ActionKind.CLOSE_POSITION and "RULE-008" in o.action.rules))
            for second, price in ((24, 19985.0), (29, 19965.0), (34, 19955.0), (38, 19940.0)):
                await self._at(second)
                self._price(price)
            breaches.append(("daily loss: locked until the reset and flattened", 38 / self.speed,
                             lambda o: o.action.kind is ActionKind.FLATTEN_ACCOUNT and "RULE-003" in o.action.rules))
            await self._at(45)
            self._trader("trades while locked: buys 2 MNQ at market",
                         lambda: trader.place_order(ACCOUNT, "MNQ", side="buy", size=2, type="market"))
            breaches.append(("trade while locked: position closed at once", 45 / self.speed,
                             lambda o: o.action.kind in (ActionKind.CLOSE_POSITION, ActionKind.FLATTEN_ACCOUNT)))
            await self._at(50)
            self._trader("trades while locked: rests a buy limit 1 MNQ @ 19800.00",
                         lambda: trader.place_order(ACCOUNT, "MNQ", side="buy", size=1, type="limit",
                                                    limit_price=19800.0))
            breaches.append(("order while locked: cancelled at once", 50 / self.speed,
                             lambda o: o.action.kind is ActionKind.CANCEL_ORDERS))
            await self._at(56)
            await daemon.idle()
            return self._summary(breaches, keep_running)
        finally:
            if keep_running is not None and daemon.started_at is not None:
                await keep_running()
            await daemon.aclose()

    def _summary(self, breaches: list[tuple[str, float, Callable[[ActionOutcome], bool]]],
                 keep_running: Callable[[], Awaitable[None]] | None) -> bool:
        log = self.log
        broker = self.sim.broker
        ok = True
        log.line("DEMO", "— summary —")
        for title, after, matches in breaches:
            hit = next((o for at, o in self.outcomes if at >= after and matches(o) and str(o.status) == "done"), None)
            ok = ok and hit is not None
            mark = "ENFORCED" if hit is not None else "NOT ENFORCED"
            log.line("DEMO", f"{mark:<12} {title}")
        positions = [f"{p.size} {p.contract_id}" for p in broker.positions(ACCOUNT) if p.size > 0]
        daemon = self.daemon
        locked = daemon is not None and bool(daemon.accounts[ACCOUNT].engine.locks(ACCOUNT))
        log.line("DEMO", f"broker: positions {', '.join(positions) or 'flat'}, open orders "
                         f"{len(broker.open_orders(ACCOUNT))}, realized {broker.realized_pnl(ACCOUNT):+.2f}, "
                         f"fees {broker.fees(ACCOUNT):.2f}; account locked: {locked}; duplicate orders: "
                         f"{len(self.sim.recorder.duplicate_orders)}")
        log.line("DEMO", "every scripted breach was enforced" if ok else "SOME BREACHES WERE NOT ENFORCED")
        if keep_running is not None:
            log.line("DEMO", "the daemon keeps protecting; Ctrl-C to stop")
        return ok
