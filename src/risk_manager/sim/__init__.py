"""The ProjectX Gateway simulator: REST + SignalR hubs on loopback, a matching engine, a market feed,
faults, a recorder and a virtual-clock mode. Full documentation: docs/simulator.md.

```python
from risk_manager.sim import Simulator, SimConfig, SimAccount, SimUser
cfg = SimConfig(
    accounts=[SimAccount(id=1001, name="SIM-1001", balance=50_000.0, can_trade=True)],  # the default
    users=[],                 # SimUser(user_name, api_key, account_ids); empty = any user, apiKey >= 8 chars
    seed=1, token_lifetime=timedelta(hours=24),
    wrap_user_events=True,    # False: user events carry the entity unwrapped
    quote_feed="random",      # or "scripted": only set_quote moves prices (last quote re-sent every ~20 s)
    fees=True, clock=None,    # clock: a risk_manager.domain.Clock; None = SystemClock (auto-polling)
    catalogue=None,           # default_catalogue()
)
async with Simulator(cfg) as sim:            # or: sim = Simulator(cfg); await sim.start(host, port); await sim.stop()
    sim.base_url, sim.api_url, sim.user_hub_url, sim.market_hub_url
    await sim.poll()                          # time-based behaviour now (with a VirtualClock: after advancing it)
    await sim.wait_quiet(timeout=5.0)         # no REST request in flight, no hub message queued/unsent
    sim.busy                                  # the same condition, now (also: sim.rest.in_flight, sim.hubs.busy)

    sim.trader.place_order(account_id, "MNQ", side="buy", size=1, type="market", limit_price=None,
                           stop_price=None, trail_ticks=None, tag=None, fill=None) -> Order
    sim.trader.cancel_order(account_id, order_id=None, tag=None) -> Order
    sim.trader.close_position(account_id, "MNQ") -> None
    sim.market.set_quote("MNQ", price, bid=None, ask=None) -> Quote
    sim.set_account(account_id, can_trade=None, balance=None) -> Account
    sim.add_account(SimAccount(...)) -> Account
    sim.broker.account(id) / positions(id) / open_orders(id) / orders(id) / trades(id) / contract(key)
    sim.broker.realized_pnl(id) / fees(id)
    sim.broker.place(account_id, contract_id, OrderType, OrderSide, size, *, limit_price=, stop_price=,
                     trail_price=, trail_ticks=, custom_tag=, stop_loss=Bracket(ticks, type), take_profit=,
                     fill_plan=) -> Order        # the engine itself; refusals raise BrokerReject(reason, message)
    sim.broker.step()                         # one matching step (partial fills) without the rest of poll()
    sim.faults.cut("user_hub"|"market_hub"|"rest", seconds); latency(rest_ms, hub_ms); http_errors(status, count)
    sim.faults.expire_tokens(); lose_responses(count); drop_events(hub, count); clear(); apply({...scenario fault})
    sim.faults.is_cut("user_hub"|"market_hub"|"rest") -> bool; sim.faults.state() -> dict
    sim.add_user_listener(callback)           # every user event the broker emits, synchronously
    sim.recorder.requests / intents / hub_sent (bounded deques) / duplicate_orders (list) / http_429 (int)
    sim.state() -> dict     # the same JSON as GET /_sim/state
```
"""

from risk_manager.sim.broker import Bracket, BrokerReject
from risk_manager.sim.config import (
    SimAccount,
    SimConfig,
    SimConfigError,
    SimUser,
    load_accounts_file,
    parse_accounts,
    parse_duration,
)
from risk_manager.sim.faults import Faults
from risk_manager.sim.recorder import HubSent, RecordedIntent, RecordedRequest, Recorder
from risk_manager.sim.server import Simulator, SimulatorNotStarted
from risk_manager.sim.trader import ScriptedTrader, TraderError

__all__ = [
    "Bracket",
    "BrokerReject",
    "Faults",
    "HubSent",
    "RecordedIntent",
    "RecordedRequest",
    "Recorder",
    "ScriptedTrader",
    "SimAccount",
    "SimConfig",
    "SimConfigError",
    "SimUser",
    "Simulator",
    "SimulatorNotStarted",
    "TraderError",
    "load_accounts_file",
    "parse_accounts",
    "parse_duration",
]
