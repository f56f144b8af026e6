"""Engine hot path: state update + all 14 rules enabled, per event, 10 accounts with 20 open positions."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from risk_manager.benchkit import Figure, Progress, median, percentile
from risk_manager.domain import (
    Account,
    AccountEvent,
    Order,
    OrderEvent,
    OrderSide,
    OrderStatus,
    OrderType,
    Position,
    PositionEvent,
    PositionType,
    Quote,
    QuoteEvent,
    Trade,
    TradeEvent,
    VirtualClock,
    default_catalogue,
)
from risk_manager.engine import Engine, load_risk_config

DESCRIPTION = "engine: state update + all 14 rules per event (10 accounts, 20 positions): latency µs, events/s"

ROUNDS = 7
EVENTS_PER_ROUND = 20_000
START = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)  # 09:00 Chicago, inside every configured session
SYMBOLS = ["ES", "NQ", "MES", "MNQ", "YM", "MYM", "GC", "MGC"]


def _setup(seed: int) -> tuple[Engine, VirtualClock, list[Any]]:
    root = Path(__file__).resolve().parents[1]
    config = load_risk_config(root / "config" / "risk.example.yaml", environ={})
    # Limits wide enough that the steady state is measured, not a flatten every few events.
    rules = config.rules.model_copy(update={
        "daily_realized_loss": config.rules.daily_realized_loss.model_copy(update={"loss_limit": 1e9}),
        "daily_unrealized_loss": config.rules.daily_unrealized_loss.model_copy(update={"loss_limit": 1e9}),
        "max_unrealized_profit": config.rules.max_unrealized_profit.model_copy(update={"target": 1e9}),
        "daily_realized_profit": config.rules.daily_realized_profit.model_copy(update={"target": 1e9}),
        "trade_frequency_limit": config.rules.trade_frequency_limit.model_copy(
            update={"per_minute": 10**6, "per_hour": 10**6, "per_session": 10**6}),
        "trailing_max_loss": config.rules.trailing_max_loss.model_copy(update={"max_loss": 1e9}),
        "cooldown_after_loss": config.rules.cooldown_after_loss.model_copy(update={"consecutive_losses": 10**6}),
    })
    config = config.model_copy(update={"rules": rules})
    assert len(config.rules.enabled_ids()) == 14
    catalogue = default_catalogue()
    clock = VirtualClock(START)
    engine = Engine(config, clock, catalogue)
    rng = random.Random(seed)
    ref = {s: catalogue.get(s) for s in SYMBOLS}
    holdings: list[tuple[int, str, float, PositionType]] = []
    order_id = 1
    for account in range(1, 11):
        engine.handle(AccountEvent(Account(account, f"PRAC-{account}", 50_000.0, True)))
        for symbol in rng.sample(SYMBOLS, 2):
            entry = ref[symbol]
            price = entry.reference_price
            engine.handle(QuoteEvent(entry.contract.id, Quote(last_price=price, best_bid=price, best_ask=price)))
            ptype = rng.choice([PositionType.LONG, PositionType.SHORT])
            engine.handle(PositionEvent(Position(account * 100 + order_id, account, entry.contract.id, START, ptype,
                                                 1, price)))
            stop = price - 40 * entry.contract.tick_size if ptype == PositionType.LONG else \
                price + 40 * entry.contract.tick_size
            engine.handle(OrderEvent(Order(order_id, account, entry.contract.id, START, OrderStatus.OPEN,
                                           OrderType.STOP, ptype.closing_side, 1, stop_price=stop)))
            holdings.append((account, entry.contract.id, price, ptype))
            order_id += 1
    assert sum(len(a.positions) for a in engine.accounts.values()) == 20
    # The event mix: mostly quotes (what a daemon sees), plus working-order churn, fills and balances.
    events: list[Any] = []
    trade_id = 1
    resting: dict[int, tuple[int, str]] = {}
    held = sorted({cid for _, cid, _, _ in holdings})
    for i in range(EVENTS_PER_ROUND):
        r = rng.random()
        stamp = START + timedelta(milliseconds=i)
        if r < 0.80:
            cid = rng.choice(held)
            info = engine.contracts.get(cid)
            base = next(p for _, c, p, _ in holdings if c == cid)
            px = base + rng.randint(-8, 8) * info.tick_size
            events.append(QuoteEvent(cid, Quote(last_price=px, best_bid=px - info.tick_size,
                                                best_ask=px + info.tick_size, timestamp=stamp)))
        elif r < 0.90:
            # a resting limit order placed, then cancelled on the next order event of that account
            account, cid, price, _ = rng.choice(holdings)
            if account in resting:
                oid, ocid = resting.pop(account)
                events.append(OrderEvent(Order(oid, account, ocid, stamp, OrderStatus.CANCELLED, OrderType.LIMIT,
                                               OrderSide.BID, 1, limit_price=price - 100)))
            else:
                resting[account] = (10_000 + i, cid)
                events.append(OrderEvent(Order(10_000 + i, account, cid, stamp, OrderStatus.OPEN, OrderType.LIMIT,
                                               OrderSide.BID, 1, limit_price=price - 100)))
        elif r < 0.97:
            account, cid, _, _ = rng.choice(holdings)
            events.append(TradeEvent(Trade(trade_id, account, cid, stamp, 100.0, rng.choice([None, 12.5, -12.5]),
                                           0.37, OrderSide.BID, 1, False, trade_id)))
            trade_id += 1
        else:
            account = rng.randint(1, 10)
            events.append(AccountEvent(Account(account, f"PRAC-{account}", 50_000.0 + rng.randint(-500, 500), True)))
    return engine, clock, events


def run(progress: Progress) -> list[Figure]:
    p50s, p99s, rates = [], [], []
    actions_seen = 0
    for r in range(ROUNDS):
        progress(f"round {r + 1}/{ROUNDS}")
        engine, clock, events = _setup(r)
        lat: list[float] = []
        handle, advance, perf = engine.handle, clock.advance, time.perf_counter_ns
        step = timedelta(milliseconds=1)
        for event in events:
            advance(step)
            t0 = perf()
            actions_seen += len(handle(event))
            lat.append((perf() - t0) / 1000.0)
        # throughput without the per-event timer around each call
        engine2, clock2, events2 = _setup(r)
        handle2, advance2 = engine2.handle, clock2.advance
        t_start = time.perf_counter()
        for event in events2:
            advance2(step)
            handle2(event)
        rates.append(len(events2) / (time.perf_counter() - t_start))
        p50s.append(percentile(lat, 50))
        p99s.append(percentile(lat, 99))
    return [
        Figure("latency per event p50 (median of rounds)", median(p50s), "µs", target=50.0),
        Figure("latency per event p99 (median of rounds)", median(p99s), "µs", target=50.0),
        Figure("latency per event p99 (worst round)", max(p99s), "µs", target=50.0),
        Figure("throughput, one core (median of rounds)", median(rates), "events/s", target=50_000.0,
               better="higher"),
        Figure("actions emitted per round (steady state ⇒ few)", actions_seen / ROUNDS, "actions"),
    ]
