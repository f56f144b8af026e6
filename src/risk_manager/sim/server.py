"""`Simulator`: the Gateway simulator — REST, hubs, matching engine, market, faults, recorder — on
one aiohttp server (HTTP and WebSocket on the same port)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from risk_manager.domain import Account, Clock, SystemClock, UserEvent, default_catalogue
from risk_manager.logs import log_event
from risk_manager.sim.broker import Broker
from risk_manager.sim.config import SimAccount, SimConfig
from risk_manager.sim.control import ControlApi
from risk_manager.sim.faults import CutTarget, Faults
from risk_manager.sim.hubs import Hubs
from risk_manager.sim.market import Market, MarketUpdate
from risk_manager.sim.recorder import Recorder
from risk_manager.sim.rest import RestApi
from risk_manager.sim.tokens import TokenIssuer
from risk_manager.sim.trader import ScriptedTrader

log = logging.getLogger("risk_manager.sim")

_HUB_PATHS = {"/hubs/user": "user", "/hubs/market": "market"}


class SimulatorNotStarted(RuntimeError):
    pass


class Simulator:
    """The ProjectX Gateway simulator. See the module docstring of `risk_manager.sim` for the API."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        cfg = self.config
        self._user_listeners: list[Callable[[UserEvent], None]] = []
        self.clock: Clock = cfg.clock or SystemClock()
        self._auto_poll = cfg.clock is None or isinstance(cfg.clock, SystemClock)
        self.catalogue = cfg.catalogue or default_catalogue()
        self.recorder = Recorder(cfg.record_limit)
        self.tokens = TokenIssuer(self.clock, cfg.token_lifetime)
        self.faults = Faults(self.clock, self._cut, self.tokens.expire_all)
        self.market = Market(self.catalogue, self.clock, cfg.seed, self._on_market, cfg.partial_quotes,
                             wants_depth=lambda contract_id: self.hubs.has_subscribers("market", "depth", contract_id))
        self.hubs = Hubs(self.tokens, self.faults, self.recorder, cfg.keepalive_interval, cfg.wrap_user_events,
                         visible_accounts=self._visible_accounts, contract_id_of=self._contract_id_of,
                         snapshot_quote=self._snapshot_quote)
        self.broker = Broker(cfg.accounts, self.market, self.clock, cfg.fees, self._on_user_event)
        self.trader = ScriptedTrader(self.broker)
        self.rest = RestApi(clock=self.clock, tokens=self.tokens, broker=self.broker, market=self.market,
                            faults=self.faults, recorder=self.recorder, users=list(cfg.users),
                            general_limit=cfg.rate_limit_general, history_limit=cfg.rate_limit_history)
        self.control = ControlApi(self)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._poller: asyncio.Task[None] | None = None
        self._last_walk: datetime | None = None
        self.host = "127.0.0.1"
        self.port = 0

    # -- wiring --------------------------------------------------------------------------------
    def _on_user_event(self, event: UserEvent) -> None:
        self.hubs.publish_user(event)
        for listener in self._user_listeners:
            listener(event)

    def add_user_listener(self, listener: Callable[[UserEvent], None]) -> None:
        """Call `listener` synchronously with every user event the broker emits (before hub faults)."""
        self._user_listeners.append(listener)

    def _on_market(self, update: MarketUpdate) -> None:
        self.hubs.publish_market(update)
        if update.trade is not None:  # a real price change (not a re-send)
            self.broker.on_quote(update.contract_id)

    def _visible_accounts(self, user: str) -> list[int]:
        return self.rest.visible_accounts(user)

    def _contract_id_of(self, key: str) -> str | None:
        """The contract id named by a hub subscription: an exact id in any case, never a symbol."""
        entry = self.catalogue.find(key)
        return entry.contract.id if entry is not None and entry.contract.id.lower() == key.lower() else None

    def _snapshot_quote(self, contract_id: str) -> MarketUpdate:
        return MarketUpdate(contract_id, self.market.state(contract_id).to_quote(), None, ())

    def _cut(self, target: CutTarget) -> None:
        if target == "user_hub":
            self.hubs.cut("user")
        elif target == "market_hub":
            self.hubs.cut("market")
        # REST: requests in flight are dropped by the pipeline when they next check; new ones refused.

    # -- life cycle ----------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, host, port)
        await self._site.start()
        self.host = host
        self.port = int(self._runner.addresses[0][1]) if self._runner.addresses else port
        if self._auto_poll:
            self._poller = asyncio.create_task(self._poll_loop(), name="sim-poller")
        log_event(log, "sim_started", rest=self.api_url, user_hub=self.user_hub_url, market_hub=self.market_hub_url,
                  clock="system" if self._auto_poll else "virtual", feed=self.config.quote_feed)

    async def pause(self) -> None:
        """Stop time-based behaviour (the quote feed, partial fills, expiring faults) while REST and the
        hubs keep answering: a connected, quiet market (the bench's idle CPU). `poll()` still works."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None

    async def stop(self) -> None:
        await self.pause()
        await self.hubs.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            log_event(log, "sim_stopped", port=self.port)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        if self._runner is None:
            raise SimulatorNotStarted("the simulator is not started: await sim.start() first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def api_url(self) -> str:
        return self.base_url + "/api"

    @property
    def user_hub_url(self) -> str:
        return self.base_url + "/hubs/user"

    @property
    def market_hub_url(self) -> str:
        return self.base_url + "/hubs/market"

    # -- time-based behaviour ------------------------------------------------------------------
    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.poll_interval)
            try:
                self.poll_now()
            except Exception:
                log.exception("sim_poll_failed")

    async def poll(self) -> None:
        """Run time-based behaviour now: expired faults, the feed, partial-fill steps, matching."""
        self.poll_now()
        await asyncio.sleep(0)

    def poll_now(self) -> None:
        now = self.clock.now()
        self.faults.expire_due()
        if self.config.quote_feed == "random":
            if self._last_walk is None or now - self._last_walk >= timedelta(seconds=self.config.feed_interval):
                self._last_walk = now
                self.market.walk()
        else:
            self.market.resend_stale(timedelta(seconds=self.config.scripted_resend_interval),
                                     self.hubs.subscribed_contracts())
        self.broker.step()

    @property
    def busy(self) -> bool:
        """True while a REST request is in flight or a hub record is queued or being written."""
        return bool(self.rest.in_flight) or self.hubs.busy

    async def wait_quiet(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 - the brief's API
        """Return once no REST request is in flight and no hub message is queued or being written."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        calm = 0
        while calm < 3:  # quiet on three consecutive loop turns: nothing was about to start
            if self.busy:
                calm = 0
                if loop.time() >= deadline:
                    raise TimeoutError(f"simulator not quiet after {timeout}s: {self.rest.in_flight} request(s) in "
                                       f"flight, hub queues busy={self.hubs.busy}")
                await asyncio.sleep(0.001)
            else:
                calm += 1
                await asyncio.sleep(0)

    # -- the broker's hand ---------------------------------------------------------------------
    def set_account(self, account_id: int, can_trade: bool | None = None, balance: float | None = None) -> Account:
        account = self.broker.set_account(account_id, can_trade=can_trade, balance=balance)
        log_event(log, "sim_account_set", account=account_id, can_trade=account.can_trade, balance=account.balance)
        return account

    def add_account(self, account: SimAccount) -> Account:
        return self.broker.add_account(account)

    def state(self) -> dict[str, Any]:
        accounts = {}
        for account in self.broker.accounts():
            accounts[str(account.id)] = {
                "account": account.to_wire(),
                "positions": [p.to_wire() for p in self.broker.positions(account.id)],
                "open_orders": [o.to_wire() for o in self.broker.open_orders(account.id)],
                "realized_pnl": self.broker.realized_pnl(account.id),
                "fees": self.broker.fees(account.id),
            }
        quotes = {cid: s.to_quote().to_wire() for cid, s in self.market.quotes().items()}
        return {"clock": self.clock.now().isoformat(), "accounts": accounts, "quotes": quotes,
                "faults": self.faults.state(), "hub_connections": len(self.hubs.connections),
                "record": self.recorder.summary()}

    # -- HTTP dispatch -------------------------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/").lower() or "/"
        if path.startswith("/_sim/"):
            return await self.control.handle(request)
        for prefix, hub in _HUB_PATHS.items():
            if path == prefix or path == prefix + "/negotiate":
                target: CutTarget = "user_hub" if hub == "user" else "market_hub"
                if self.faults.is_cut(target):
                    log_event(log, "sim_hub_rejected", hub=hub, stage="connect", reason="hub cut fault")
                    return _drop(request)
                if path.endswith("/negotiate"):
                    if request.method.upper() != "POST":
                        return web.Response(status=405, headers={"Allow": "POST"})
                    return await self.hubs.negotiate(request, "user" if hub == "user" else "market")
                return await self.hubs.connect(request, "user" if hub == "user" else "market")
        return await self.rest.handle(request, _drop)


def _drop(request: web.Request) -> web.StreamResponse:
    """Close the connection without an answer (a network cut or a lost response)."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=503)


