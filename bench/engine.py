"""Engine hot path: state update + all 14 rules enabled, per event, 10 accounts with 20 open positions."""

from __future__ import annotations

import os
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
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cpu_p50s, cpu_p99s, wall_p99s, cpu_rates, wall_rates = [], [], [], [], []
    actions_seen = 0
    step = timedelta(milliseconds=1)
    for r in range(ROUNDS):
        progress(f"round {r + 1}/{ROUNDS}")
        # Per-event latency in CPU time of this thread (what the engine costs, without the time the
        # OS gave other processes on a shared machine) and in wall time (what a caller would see).
        engine, clock, events = _setup(r)
        cpu: list[float] = []
        wall: list[float] = []
        handle, advance, tt, pc = engine.handle, clock.advance, time.thread_time_ns, time.perf_counter_ns
        for event in events:
            advance(step)
            c0, w0 = tt(), pc()
            actions_seen += len(handle(event))
            w1, c1 = pc(), tt()
            cpu.append((c1 - c0) / 1000.0)
            wall.append((w1 - w0) / 1000.0)
        cpu_p50s.append(percentile(cpu, 50))
        cpu_p99s.append(percentile(cpu, 99))
        wall_p99s.append(percentile(wall, 99))
        # Throughput without a timer around each call: one core = CPU seconds of this thread.
        engine, clock, events = _setup(r)
        handle, advance = engine.handle, clock.advance
        c_start, w_start = time.thread_time(), time.perf_counter()
        for event in events:
            advance(step)
            handle(event)
        cpu_rates.append(len(events) / (time.thread_time() - c_start))
        wall_rates.append(len(events) / (time.perf_counter() - w_start))
    note = f"1-min load average {load:.2f} on {os.cpu_count()} cores when the run started"
    return [
        Figure("CPU time per event p50 (median of rounds)", median(cpu_p50s), "µs", target=50.0),
        Figure("CPU time per event p99 (median of rounds)", median(cpu_p99s), "µs", target=50.0),
        Figure("CPU time per event p99 (worst round)", max(cpu_p99s), "µs", target=50.0),
        Figure("wall time per event p99 (median of rounds)", median(wall_p99s), "µs", note=note),
        Figure("throughput, one core (events per CPU second, median)", median(cpu_rates), "events/s",
               target=50_000.0, better="higher"),
        Figure("throughput, wall clock (median of rounds)", median(wall_rates), "events/s", better="higher",
               note=note),
        Figure("actions emitted per round (steady state ⇒ 0)", actions_seen / ROUNDS, "actions"),
    ]
