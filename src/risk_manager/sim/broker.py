"""The matching engine and the broker's books: accounts, orders, positions, trades.

Everything here is synchronous and runs on the event loop thread; every state change is emitted as
a user-hub event through the `emit` callback, in the Gateway's order for a fill:
order (Filled / fillVolume) → trade(s) → position → account.

Matching rules (see docs/simulator.md):
- market orders fill at the ask (buy) / bid (sell);
- a limit order that is marketable when placed fills at once at the ask/bid (price improvement);
  a resting limit fills at its limit price when the ask falls to it (buy) / the bid rises to it (sell);
- stops trigger on the last price (buy stop: last ≥ stop; sell stop: last ≤ stop) and fill like a
  market order; a stop placed through the market is rejected;
- stop-limit: triggers like a stop, then works as a limit;
- trailing stop: the stop follows the best last price since placement at a fixed distance — from
  `trail_ticks`, or from `trailPrice` read as the initial stop price (distance = |last − trailPrice|);
- `fill=[a, b, ...]` fills an order in chunks, one chunk per matching step (`Broker.step`);
- brackets create an OCO stop + target pair once the entry is completely filled;
- one position per (account, contract) with an average price; a fill through zero closes (trade with
  `profitAndLoss`) and opens the remainder (trade with `profitAndLoss: null`) at the fill price;
  the position keeps its id while it flips, a new id is used after it was flat;
- fees: catalogue fee × size on every trade (when fees are on); balance += P&L − fees;
- an account with `canTrade: false` refuses orders that would open or grow a position.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from risk_manager.domain import (
    Account,
    AccountEvent,
    CatalogueEntry,
    Clock,
    Contract,
    Order,
    OrderEvent,
    OrderSide,
    OrderStatus,
    OrderType,
    Position,
    PositionEvent,
    PositionType,
    Trade,
    TradeEvent,
    UnknownContractError,
    UserEvent,
)
from risk_manager.domain.ticks import fill_pnl, is_on_tick, round_to_tick
from risk_manager.sim.config import SimAccount
from risk_manager.sim.market import Market, QuoteState

RejectReason = Literal[
    "account_not_found", "contract_not_found", "contract_not_active", "order_rejected", "insufficient_funds",
    "account_violation", "order_not_found", "not_working", "position_not_found", "invalid_close_size",
]

WORKING = (OrderStatus.OPEN, OrderStatus.PENDING)


class BrokerReject(Exception):
    """A domain refusal; the REST layer maps `reason` to the endpoint's errorCode."""

    def __init__(self, reason: RejectReason, message: str) -> None:
        self.reason = reason
        self.message = message
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Bracket:
    ticks: int
    type: OrderType


@dataclass(slots=True)
class _AccountState:
    id: int
    name: str
    balance: float
    can_trade: bool
    is_visible: bool
    active: bool
    realized_pnl: float = 0.0
    fees: float = 0.0

    def snapshot(self) -> Account:
        return Account(self.id, self.name, round(self.balance, 2), self.can_trade, self.is_visible, simulated=True)


@dataclass(slots=True)
class _OrderState:
    id: int
    account_id: int
    entry: CatalogueEntry
    created: datetime
    updated: datetime
    status: OrderStatus
    type: OrderType
    side: OrderSide
    size: int
    limit_price: float | None = None
    stop_price: float | None = None
    custom_tag: str | None = None
    trail_price: float | None = None
    parent_order_id: int | None = None
    linked_order_id: int | None = None
    fill_volume: int = 0
    filled_value: float = 0.0
    trail_distance: float | None = None
    trail_extreme: float | None = None
    triggered: bool = False
    fill_plan: deque[int] | None = None
    filled_in_step: int = -1
    stop_loss: Bracket | None = None
    take_profit: Bracket | None = None
    brackets_done: bool = False

    @property
    def is_buy(self) -> bool:
        return self.side == OrderSide.BID

    @property
    def remaining(self) -> int:
        return self.size - self.fill_volume

    def snapshot(self) -> Order:
        c = self.entry.contract
        filled_price = None
        if self.fill_volume:
            filled_price = round_to_tick(self.filled_value / self.fill_volume, c.tick_size / 100)
        return Order(
            id=self.id, account_id=self.account_id, contract_id=c.id, creation_timestamp=self.created,
            status=self.status, type=self.type, side=self.side, size=self.size, symbol_id=c.symbol_id,
            update_timestamp=self.updated, limit_price=self.limit_price, stop_price=self.stop_price,
            fill_volume=self.fill_volume, filled_price=filled_price, custom_tag=self.custom_tag,
            trail_price=self.trail_price, parent_order_id=self.parent_order_id,
            linked_order_id=self.linked_order_id,
        )


@dataclass(slots=True)
class _PositionState:
    id: int
    account_id: int
    entry: CatalogueEntry
    created: datetime
    signed_size: int = 0
    average_price: float = 0.0

    def snapshot(self) -> Position:
        if self.signed_size > 0:
            ptype = PositionType.LONG
        elif self.signed_size < 0:
            ptype = PositionType.SHORT
        else:
            ptype = PositionType.UNDEFINED
        return Position(self.id, self.account_id, self.entry.contract.id, self.created, ptype,
                        abs(self.signed_size), self.average_price)


@dataclass(slots=True)
class _Books:
    orders: dict[int, _OrderState] = field(default_factory=dict)
    trades: list[Trade] = field(default_factory=list)
    tags: dict[str, int] = field(default_factory=dict)
    positions: dict[str, _PositionState] = field(default_factory=dict)


class Broker:
    def __init__(self, accounts: Iterable[SimAccount], market: Market, clock: Clock, fees: bool,
                 emit: Callable[[UserEvent], None]) -> None:
        self._market = market
        self._clock = clock
        self._fees = fees
        self._emit = emit
        self._accounts: dict[int, _AccountState] = {}
        self._books: dict[int, _Books] = {}
        self._working: dict[int, _OrderState] = {}
        self._next_order = 1_000_000_001
        self._next_trade = 2_000_000_001
        self._next_position = 3_001
        self._step_no = 0
        for account in accounts:
            self.add_account(account)

    # -- accounts -------------------------------------------------------------------------------
    def add_account(self, account: SimAccount) -> Account:
        if account.id in self._accounts:
            raise ValueError(f"account {account.id} already exists")
        state = _AccountState(account.id, account.name, float(account.balance), account.can_trade,
                              account.is_visible, account.active)
        self._accounts[account.id] = state
        self._books[account.id] = _Books()
        self._emit(AccountEvent(state.snapshot()))
        return state.snapshot()

    def set_account(self, account_id: int, can_trade: bool | None = None, balance: float | None = None) -> Account:
        state = self._account(account_id)
        if can_trade is not None:
            state.can_trade = can_trade
        if balance is not None:
            state.balance = float(balance)
        snap = state.snapshot()
        self._emit(AccountEvent(snap))
        return snap

    def _account(self, account_id: int) -> _AccountState:
        state = self._accounts.get(account_id)
        if state is None:
            raise BrokerReject("account_not_found", f"account {account_id} does not exist")
        return state

    def has_account(self, account_id: int) -> bool:
        return account_id in self._accounts

    def account_ids(self) -> list[int]:
        return list(self._accounts)

    # -- read-only views (the broker's truth) ------------------------------------------------------
    def account(self, account_id: int) -> Account:
        return self._account(account_id).snapshot()

    def accounts(self) -> list[Account]:
        return [a.snapshot() for a in self._accounts.values()]

    def account_is_active(self, account_id: int) -> bool:
        return self._account(account_id).active

    def positions(self, account_id: int) -> list[Position]:
        self._account(account_id)
        return [p.snapshot() for p in self._books[account_id].positions.values() if p.signed_size != 0]

    def orders(self, account_id: int) -> list[Order]:
        self._account(account_id)
        return [o.snapshot() for o in self._books[account_id].orders.values()]

    def open_orders(self, account_id: int) -> list[Order]:
        self._account(account_id)
        return [o.snapshot() for o in self._books[account_id].orders.values() if o.status in WORKING]

    def order(self, account_id: int, order_id: int) -> Order | None:
        self._account(account_id)
        o = self._books[account_id].orders.get(order_id)
        return None if o is None else o.snapshot()

    def order_by_tag(self, account_id: int, tag: str) -> Order | None:
        self._account(account_id)
        books = self._books[account_id]
        oid = books.tags.get(tag)
        return None if oid is None else books.orders[oid].snapshot()

    def trades(self, account_id: int) -> list[Trade]:
        self._account(account_id)
        return list(self._books[account_id].trades)

    def contract(self, symbol_or_id: str) -> Contract:
        return self._market.entry(symbol_or_id).contract

    def realized_pnl(self, account_id: int) -> float:
        return round(self._account(account_id).realized_pnl, 2)

    def fees(self, account_id: int) -> float:
        return round(self._account(account_id).fees, 2)

    # -- orders -------------------------------------------------------------------------------
    def _entry(self, contract_id: str) -> CatalogueEntry:
        try:
            entry = self._market.entry(contract_id)
        except UnknownContractError:
            raise BrokerReject("contract_not_found", f"contract {contract_id!r} does not exist") from None
        if not entry.contract.active_contract:
            raise BrokerReject("contract_not_active", f"contract {entry.contract.id} is not active")
        return entry

    def _signed_position(self, account_id: int, contract_id: str) -> int:
        pos = self._books[account_id].positions.get(contract_id)
        return 0 if pos is None else pos.signed_size

    def _opens_or_grows(self, account_id: int, contract_id: str, side: OrderSide, size: int) -> bool:
        signed = self._signed_position(account_id, contract_id)
        delta = size if side == OrderSide.BID else -size
        if signed == 0 or (signed > 0) == (delta > 0):
            return True
        return abs(delta) > abs(signed)

    def place(self, account_id: int, contract_id: str, type: OrderType, side: OrderSide, size: int, *,
              limit_price: float | None = None, stop_price: float | None = None, trail_price: float | None = None,
              trail_ticks: int | None = None, custom_tag: str | None = None, stop_loss: Bracket | None = None,
              take_profit: Bracket | None = None, fill_plan: list[int] | None = None) -> Order:
        """Validate, accept (order event Open) and match at once. Raises `BrokerReject`."""
        account = self._account(account_id)
        entry = self._entry(contract_id)
        tick = entry.contract.tick_size
        books = self._books[account_id]
        if not isinstance(side, OrderSide) or not side.known:
            raise BrokerReject("order_rejected", f"side must be 0 (buy) or 1 (sell), got {int(side)}")
        if type not in (OrderType.LIMIT, OrderType.MARKET, OrderType.STOP, OrderType.STOP_LIMIT,
                        OrderType.TRAILING_STOP, OrderType.JOIN_BID, OrderType.JOIN_ASK):
            raise BrokerReject("order_rejected", f"order type {int(type)} cannot be placed; allowed: 1 Limit, "
                                                 "2 Market, 3 StopLimit, 4 Stop, 5 TrailingStop, 6 JoinBid, 7 JoinAsk")
        if size < 1:
            raise BrokerReject("order_rejected", f"size must be at least 1, got {size}")
        if custom_tag is not None and custom_tag in books.tags:
            raise BrokerReject("order_rejected", f"customTag {custom_tag!r} was already used on account {account_id}")
        q = self._market.state(entry.contract.id)
        if type == OrderType.JOIN_BID:
            limit_price = q.bid
        elif type == OrderType.JOIN_ASK:
            limit_price = q.ask
        if type in (OrderType.LIMIT, OrderType.STOP_LIMIT) and limit_price is None:
            raise BrokerReject("order_rejected", "a limit or stop-limit order needs limitPrice")
        if type in (OrderType.STOP, OrderType.STOP_LIMIT) and stop_price is None:
            raise BrokerReject("order_rejected", "a stop order needs stopPrice")
        for name, price in (("limitPrice", limit_price), ("stopPrice", stop_price), ("trailPrice", trail_price)):
            if price is not None and (price <= 0 or not is_on_tick(price, tick)):
                raise BrokerReject("order_rejected", f"{name} {price} is not a positive multiple of the tick size "
                                                     f"{tick} of {entry.contract.id}")
        is_buy = side == OrderSide.BID
        trail_distance: float | None = None
        if type == OrderType.TRAILING_STOP:
            if trail_ticks is not None:
                if trail_ticks == 0:
                    raise BrokerReject("order_rejected", "trail_ticks must not be 0")
                trail_distance = abs(trail_ticks) * tick
            elif trail_price is not None:
                if (is_buy and trail_price <= q.last) or (not is_buy and trail_price >= q.last):
                    raise BrokerReject("order_rejected", f"trailPrice {trail_price} is on the wrong side of the "
                                                         f"last price {q.last} for a {'buy' if is_buy else 'sell'} "
                                                         "trailing stop")
                trail_distance = round_to_tick(abs(q.last - trail_price), tick)
            else:
                raise BrokerReject("order_rejected", "a trailing stop needs trailPrice (or trail ticks)")
            stop_price = round_to_tick(q.last + trail_distance if is_buy else q.last - trail_distance, tick)
        if type in (OrderType.STOP, OrderType.STOP_LIMIT) and stop_price is not None and (
                (is_buy and stop_price <= q.last) or (not is_buy and stop_price >= q.last)):
            raise BrokerReject("order_rejected", f"{'buy' if is_buy else 'sell'} stop price {stop_price} is "
                                                 f"{'at or below' if is_buy else 'at or above'} the last price "
                                                 f"{q.last}")
        plan: deque[int] | None = None
        if fill_plan:
            if any(n < 1 for n in fill_plan) or sum(fill_plan) > size:
                raise BrokerReject("order_rejected", f"fill plan {fill_plan} must hold positive sizes summing to "
                                                     f"at most the order size {size}")
            plan = deque(fill_plan)
        for bracket in (stop_loss, take_profit):
            if bracket is not None and bracket.ticks == 0:
                raise BrokerReject("order_rejected", "bracket ticks must not be 0")
        if stop_loss is not None and stop_loss.type not in (OrderType.STOP, OrderType.TRAILING_STOP):
            raise BrokerReject("order_rejected", f"stopLossBracket type must be 4 (Stop) or 5 (TrailingStop), "
                                                 f"got {int(stop_loss.type)}")
        if take_profit is not None and take_profit.type != OrderType.LIMIT:
            raise BrokerReject("order_rejected",
                               f"takeProfitBracket type must be 1 (Limit), got {int(take_profit.type)}")
        if not account.can_trade and self._opens_or_grows(account_id, entry.contract.id, side, size):
            raise BrokerReject("account_violation", f"account {account_id} cannot trade (canTrade is false): only "
                                                    "orders that reduce a position are accepted")
        if account.balance <= 0 and self._opens_or_grows(account_id, entry.contract.id, side, size):
            raise BrokerReject("insufficient_funds", f"account {account_id} balance {account.balance:.2f} is not "
                                                     "positive")
        now = self._clock.now()
        o = _OrderState(
            id=self._next_order, account_id=account_id, entry=entry, created=now, updated=now,
            status=OrderStatus.OPEN, type=type, side=side, size=size, limit_price=limit_price, stop_price=stop_price,
            custom_tag=custom_tag, trail_price=trail_price, trail_distance=trail_distance,
            trail_extreme=q.last if trail_distance is not None else None, fill_plan=plan,
            stop_loss=stop_loss, take_profit=take_profit,
        )
        self._next_order += 1
        self._accept(o)
        self._match(o, q, taker=True)
        return o.snapshot()

    def _accept(self, o: _OrderState) -> None:
        books = self._books[o.account_id]
        books.orders[o.id] = o
        if o.custom_tag is not None:
            books.tags[o.custom_tag] = o.id
        self._working[o.id] = o
        self._emit(OrderEvent(o.snapshot()))

    def reject_record(self, account_id: int, contract_id: str, type: OrderType, side: OrderSide, size: int,
                      custom_tag: str | None) -> Order:
        """Book a rejected order (the scripted trader's screen shows it) and emit its event."""
        entry = self._market.entry(contract_id)
        now = self._clock.now()
        o = _OrderState(id=self._next_order, account_id=account_id, entry=entry, created=now, updated=now,
                        status=OrderStatus.REJECTED, type=type, side=side, size=size, custom_tag=custom_tag)
        self._next_order += 1
        self._books[account_id].orders[o.id] = o
        self._emit(OrderEvent(o.snapshot()))
        return o.snapshot()

    def _working_order(self, account_id: int, order_id: int) -> _OrderState:
        self._account(account_id)
        o = self._books[account_id].orders.get(order_id)
        if o is None:
            raise BrokerReject("order_not_found", f"order {order_id} does not exist on account {account_id}")
        if o.status not in WORKING:
            raise BrokerReject("not_working", f"order {order_id} is {o.status.name.lower()}, not working")
        return o

    def cancel(self, account_id: int, order_id: int) -> Order:
        o = self._working_order(account_id, order_id)
        self._cancel(o)
        return o.snapshot()

    def _cancel(self, o: _OrderState) -> None:
        o.status = OrderStatus.CANCELLED
        o.updated = self._clock.now()
        self._working.pop(o.id, None)
        self._emit(OrderEvent(o.snapshot()))
        if o.fill_volume and not o.brackets_done:
            self._create_brackets(o)

    def modify(self, account_id: int, order_id: int, size: int | None = None, limit_price: float | None = None,
               stop_price: float | None = None, trail_price: float | None = None) -> Order:
        o = self._working_order(account_id, order_id)
        tick = o.entry.contract.tick_size
        q = self._market.state(o.entry.contract.id)
        if size is not None:
            if size <= o.fill_volume or size < 1:
                raise BrokerReject("order_rejected", f"size {size} must be at least 1 and above the filled "
                                                     f"volume {o.fill_volume}")
            if size > o.size and not self._accounts[account_id].can_trade and self._opens_or_grows(
                    account_id, o.entry.contract.id, o.side, size):
                raise BrokerReject("account_violation", f"account {account_id} cannot trade: the order may not grow")
        for name, price in (("limitPrice", limit_price), ("stopPrice", stop_price), ("trailPrice", trail_price)):
            if price is not None and (price <= 0 or not is_on_tick(price, tick)):
                raise BrokerReject("order_rejected", f"{name} {price} is not a positive multiple of the tick "
                                                     f"size {tick}")
        if limit_price is not None and o.type not in (OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.JOIN_BID,
                                                      OrderType.JOIN_ASK):
            raise BrokerReject("order_rejected", f"a {o.type.name.lower()} order has no limit price")
        if stop_price is not None and o.type not in (OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP):
            raise BrokerReject("order_rejected", f"a {o.type.name.lower()} order has no stop price")
        if trail_price is not None and o.type != OrderType.TRAILING_STOP:
            raise BrokerReject("order_rejected", "only a trailing stop has a trail price")
        if stop_price is not None and not o.triggered and (
                (o.is_buy and stop_price <= q.last) or (not o.is_buy and stop_price >= q.last)):
            raise BrokerReject("order_rejected", f"stop price {stop_price} is through the last price {q.last}")
        if trail_price is not None:
            if (o.is_buy and trail_price <= q.last) or (not o.is_buy and trail_price >= q.last):
                raise BrokerReject("order_rejected", f"trailPrice {trail_price} is on the wrong side of {q.last}")
            o.trail_price = trail_price
            o.trail_distance = round_to_tick(abs(q.last - trail_price), tick)
            o.trail_extreme = q.last
            o.stop_price = trail_price
        if size is not None:
            o.size = size
        if limit_price is not None:
            o.limit_price = limit_price
        if stop_price is not None:
            o.stop_price = stop_price
            if o.type == OrderType.TRAILING_STOP:
                o.trail_distance = round_to_tick(abs(q.last - stop_price), tick)
                o.trail_extreme = q.last
        o.updated = self._clock.now()
        self._emit(OrderEvent(o.snapshot()))
        self._match(o, q, taker=True)
        return o.snapshot()

    def close_position(self, account_id: int, contract_id: str, size: int | None = None) -> Order:
        """Flatten (or reduce by `size`) at once with a market order at the bid/ask."""
        self._account(account_id)
        entry = self._entry(contract_id)
        signed = self._signed_position(account_id, entry.contract.id)
        if signed == 0:
            raise BrokerReject("position_not_found",
                               f"account {account_id} has no open position in {entry.contract.id}")
        if size is not None and not 1 <= size <= abs(signed):
            raise BrokerReject("invalid_close_size", f"close size {size} must be between 1 and the position size "
                                                     f"{abs(signed)}")
        qty = abs(signed) if size is None else size
        side = OrderSide.ASK if signed > 0 else OrderSide.BID
        now = self._clock.now()
        o = _OrderState(id=self._next_order, account_id=account_id, entry=entry, created=now, updated=now,
                        status=OrderStatus.OPEN, type=OrderType.MARKET, side=side, size=qty)
        self._next_order += 1
        self._accept(o)
        self._match(o, self._market.state(entry.contract.id), taker=True)
        return o.snapshot()

    # -- matching -------------------------------------------------------------------------------
    def on_quote(self, contract_id: str) -> None:
        """Run every working order of `contract_id` against its new quote."""
        q = self._market.state(contract_id)
        for o in sorted((o for o in self._working.values() if o.entry.contract.id == contract_id),
                        key=lambda o: o.id):
            if o.status in WORKING:
                self._match(o, q, taker=False)

    def step(self) -> None:
        """One matching step: the next chunk of partially filled orders."""
        self._step_no += 1
        for o in sorted((o for o in self._working.values() if o.fill_plan is not None or o.fill_volume),
                        key=lambda o: o.id):
            if o.status in WORKING:
                self._match(o, self._market.state(o.entry.contract.id), taker=False)

    def _fill_price(self, o: _OrderState, q: QuoteState, taker: bool) -> float | None:
        """The price `o` fills at against `q` now, or None when it is not marketable."""
        market_price = q.ask if o.is_buy else q.bid
        if o.type == OrderType.MARKET:
            return market_price
        if o.type == OrderType.TRAILING_STOP and o.trail_distance is not None and o.trail_extreme is not None:
            tick = o.entry.contract.tick_size
            extreme = min(o.trail_extreme, q.last) if o.is_buy else max(o.trail_extreme, q.last)
            if extreme != o.trail_extreme:
                o.trail_extreme = extreme
                new_stop = round_to_tick(extreme + o.trail_distance if o.is_buy else extreme - o.trail_distance, tick)
                tighter = o.stop_price is None or (new_stop < o.stop_price if o.is_buy else new_stop > o.stop_price)
                if tighter:  # a trailing stop only ever moves towards the market
                    o.stop_price = new_stop
                    o.updated = self._clock.now()
                    self._emit(OrderEvent(o.snapshot()))
        if o.type in (OrderType.STOP, OrderType.TRAILING_STOP, OrderType.STOP_LIMIT) and not o.triggered:
            assert o.stop_price is not None
            hit = q.last >= o.stop_price if o.is_buy else q.last <= o.stop_price
            if not hit:
                return None
            o.triggered = True
            taker = True
        if o.type in (OrderType.STOP, OrderType.TRAILING_STOP):
            return market_price
        assert o.limit_price is not None  # limit, stop-limit (triggered), join bid/ask
        if o.is_buy and q.ask <= o.limit_price:
            return q.ask if taker else o.limit_price
        if not o.is_buy and q.bid >= o.limit_price:
            return q.bid if taker else o.limit_price
        return None

    def _match(self, o: _OrderState, q: QuoteState, taker: bool) -> None:
        if o.status not in WORKING or o.filled_in_step == self._step_no:
            return
        price = self._fill_price(o, q, taker)
        if price is None:
            return
        qty = o.remaining
        if o.fill_plan is not None:
            if o.fill_plan:
                qty = min(o.fill_plan.popleft(), qty)
            o.filled_in_step = self._step_no
        self._fill(o, qty, price)

    def _fill(self, o: _OrderState, qty: int, price: float) -> None:
        now = self._clock.now()
        account = self._accounts[o.account_id]
        books = self._books[o.account_id]
        c = o.entry.contract
        o.fill_volume += qty
        o.filled_value += qty * price
        o.updated = now
        if o.fill_volume >= o.size:
            o.status = OrderStatus.FILLED
            self._working.pop(o.id, None)
        self._emit(OrderEvent(o.snapshot()))

        pos = books.positions.get(c.id)
        if pos is None:
            pos = _PositionState(self._next_position, o.account_id, o.entry, now)
            self._next_position += 1
            books.positions[c.id] = pos
        delta = qty if o.is_buy else -qty
        fee = o.entry.fee if self._fees else 0.0
        pieces: list[tuple[int, float | None]] = []  # (size, pnl) per trade
        if pos.signed_size == 0 or (pos.signed_size > 0) == (delta > 0):
            held = abs(pos.signed_size)
            pos.average_price = round((held * pos.average_price + qty * price) / (held + qty), 9)
            pieces.append((qty, None))
        else:
            closing = min(qty, abs(pos.signed_size))
            closed_type = PositionType.LONG if pos.signed_size > 0 else PositionType.SHORT
            pnl = round(fill_pnl(pos.average_price, price, closed_type, closing, c.tick_size, c.tick_value), 2)
            pieces.append((closing, pnl))
            if qty > closing:
                pieces.append((qty - closing, None))
                pos.average_price = price
                pos.created = now
        pos.signed_size += delta
        for size, trade_pnl in pieces:
            fees = round(fee * size, 2)
            trade = Trade(id=self._next_trade, account_id=o.account_id, contract_id=c.id, creation_timestamp=now,
                          price=price, profit_and_loss=trade_pnl, fees=fees, side=o.side, size=size, voided=False,
                          order_id=o.id)
            self._next_trade += 1
            books.trades.append(trade)
            account.balance += (trade_pnl or 0.0) - fees
            account.realized_pnl += trade_pnl or 0.0
            account.fees += fees
            self._emit(TradeEvent(trade))
        self._emit(PositionEvent(pos.snapshot()))
        if pos.signed_size == 0:
            del books.positions[c.id]
        self._emit(AccountEvent(account.snapshot()))

        self._after_fill(o, qty, flat=pos.signed_size == 0)

    def _after_fill(self, o: _OrderState, qty: int, flat: bool) -> None:
        books = self._books[o.account_id]
        if o.linked_order_id is not None:  # an OCO leg
            partner = books.orders.get(o.linked_order_id)
            if partner is not None and partner.status in WORKING:
                if o.status == OrderStatus.FILLED or partner.remaining <= qty:
                    self._cancel(partner)
                else:
                    partner.size -= qty
                    partner.updated = self._clock.now()
                    self._emit(OrderEvent(partner.snapshot()))
        if o.status == OrderStatus.FILLED and not o.brackets_done:
            self._create_brackets(o)
        if flat:
            for other in sorted(self._working.values(), key=lambda x: x.id):
                if (other.account_id == o.account_id and other.entry.contract.id == o.entry.contract.id
                        and other.parent_order_id is not None and other.status in WORKING):
                    self._cancel(other)

    def _create_brackets(self, parent: _OrderState) -> None:
        parent.brackets_done = True
        if (parent.stop_loss is None and parent.take_profit is None) or parent.fill_volume == 0:
            return
        c = parent.entry.contract
        tick = c.tick_size
        entry_price = parent.filled_value / parent.fill_volume
        exit_side = parent.side.opposite
        sign = -1 if parent.is_buy else 1  # the stop is below a long entry, above a short one
        now = self._clock.now()
        legs: list[_OrderState] = []
        q = self._market.state(c.id)
        if parent.stop_loss is not None:
            distance = abs(parent.stop_loss.ticks) * tick
            stop = round_to_tick(entry_price + sign * distance, tick)
            leg = _OrderState(id=self._next_order, account_id=parent.account_id, entry=parent.entry, created=now,
                              updated=now, status=OrderStatus.OPEN, type=parent.stop_loss.type, side=exit_side,
                              size=parent.fill_volume, stop_price=stop, parent_order_id=parent.id)
            if parent.stop_loss.type == OrderType.TRAILING_STOP:
                leg.trail_distance, leg.trail_extreme = distance, q.last
            self._next_order += 1
            legs.append(leg)
        if parent.take_profit is not None:
            target = round_to_tick(entry_price - sign * abs(parent.take_profit.ticks) * tick, tick)
            legs.append(_OrderState(id=self._next_order, account_id=parent.account_id, entry=parent.entry,
                                    created=now, updated=now, status=OrderStatus.OPEN, type=OrderType.LIMIT,
                                    side=exit_side, size=parent.fill_volume, limit_price=target,
                                    parent_order_id=parent.id))
            self._next_order += 1
        if len(legs) == 2:
            legs[0].linked_order_id, legs[1].linked_order_id = legs[1].id, legs[0].id
        for leg in legs:
            self._accept(leg)
        for leg in legs:
            self._match(leg, q, taker=True)
