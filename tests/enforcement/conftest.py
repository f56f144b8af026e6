"""Fixtures: the project's simulator on 127.0.0.1 (ephemeral port), a real store in tmp_path, a client
with short delays, and `Rig` — an enforcer wired to them that collects outcomes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest

from risk_manager.domain import SystemClock
from risk_manager.enforcement import ActionOutcome, Enforcer
from risk_manager.engine.actions import Action, ActionKind
from risk_manager.gateway import GatewayClient
from risk_manager.sim import SimAccount, SimConfig, Simulator
from risk_manager.store import Store
from tests.gateway.conftest import fast_config

ACCOUNT = 1001
OTHER = 1002
MNQ = "CON.F.US.MNQ.Z26"
ES = "CON.F.US.EP.Z26"
CL = "CON.F.US.CLE.F27"


def action(kind: ActionKind, key: str, account_id: int = ACCOUNT, **fields: Any) -> Action:
    return Action(kind, account_id, ("test_rule",), key, **fields)


class Rig:
    """An enforcer on the simulator and a store, with the daemon's view given as plain dicts."""

    def __init__(self, sim: Simulator, client: GatewayClient, store: Store, **options: Any) -> None:
        self.sim = sim
        self.client = client
        self.store = store
        self.positions: dict[int, dict[str, int]] = {}
        self.orders: dict[int, list[int | tuple[int, str]]] = {}
        options.setdefault("verify_timeout_s", 0.6)
        self.enforcer = Enforcer(client, store, SystemClock(), positions_hint=self._positions_hint,
                                 orders_hint=self._orders_hint, **options)
        self.outcomes: list[ActionOutcome] = []
        self.enforcer.on_outcome(self.outcomes.append)

    def _positions_hint(self, account_id: int) -> Iterable[tuple[str, int]]:
        return list(self.positions.get(account_id, {}).items())

    def _orders_hint(self, account_id: int) -> Iterable[int | tuple[int, str]]:
        return list(self.orders.get(account_id, []))

    async def run(self, *actions: Action) -> list[ActionOutcome]:
        before = len(self.outcomes)
        for item in actions:
            self.enforcer.submit(item)
        await self.enforcer.idle()
        return self.outcomes[before:]

    async def one(self, item: Action) -> ActionOutcome:
        [outcome] = await self.run(item)
        return outcome

    def intents(self, kind: str) -> list[Any]:
        return [i for i in self.sim.recorder.intents if i.kind == kind]

    def position_sizes(self, account_id: int = ACCOUNT) -> dict[str, int]:
        return {p.contract_id: p.signed_size for p in self.sim.broker.positions(account_id)}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    accounts = [SimAccount(id=ACCOUNT, name="SIM-1001"), SimAccount(id=OTHER, name="SIM-1002")]
    simulator = Simulator(SimConfig(accounts=accounts, seed=1, quote_feed="scripted", poll_interval=0.02))
    await simulator.start(host="127.0.0.1", port=0)
    try:
        yield simulator
    finally:
        await simulator.stop()


def make_client(sim: Simulator, **sections: dict[str, Any]) -> GatewayClient:
    return GatewayClient(fast_config(sim.base_url, **sections), "demo", "demo-key-123")


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[GatewayClient]:
    gateway = make_client(sim)
    await gateway.start(connect_hubs=False)
    try:
        yield gateway
    finally:
        await gateway.aclose()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "risk.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(db_path, SystemClock())
    try:
        yield opened
    finally:
        await opened.close()  # idempotent: tests that simulate a restart close it themselves


@pytest.fixture
async def rig(sim: Simulator, client: GatewayClient, store: Store) -> AsyncIterator[Rig]:
    made = Rig(sim, client, store)
    await made.enforcer.start()
    try:
        yield made
    finally:
        await made.enforcer.aclose()
