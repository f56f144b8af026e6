"""Random trading days with random faults: `generate(seed) -> Scenario`, deterministic per seed.

A generated scenario is an ordinary scenario (`risk_manager.replay.scenario`), so a failing chaos run
is replayed with `risk-manager replay chaos-failure-<seed>.yaml`. What it scripts:

- 2–3 accounts, 3 instruments drawn from the catalogue, quotes random-walking a few ticks at a time;
- per account, random market / limit / stop / trailing-stop orders (sizes 1–4, partial fills now
  and then), cancels of the account's own earlier orders, closes by hand, `can_trade` flips;
- 0–5 faults of every `fault` kind of scenarios.md; a user-hub drop is followed by a user-hub cut
  a little later (the gap the daemon's reconciliation must repair);
- one rule config from `RULE_CONFIGS` (realistic, small), plus RULE-010 when `can_trade` flips.

Every generated order carries a tag starting with `TAG_PREFIX`, so the oracle can tell the trader's
orders from the daemon's. The generator tracks the prices it scripts so that stops are always placed
on the valid side of the market (a stop through the market would be a scenario error, not chaos).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

from risk_manager.domain import default_catalogue
from risk_manager.domain.durations import format_duration
from risk_manager.domain.ticks import round_to_tick
from risk_manager.replay.scenario import Scenario, parse_scenario

TAG_PREFIX = "t-"
SYMBOLS = ("MNQ", "MES", "ES", "NQ", "RTY", "CL", "M2K", "MGC")

# Realistic, small rule configs (rules.md key names); the generator draws one per run.
RULE_CONFIGS: dict[str, dict[str, Any]] = {
    "daily loss with open P&L": {
        "daily_realized_loss": {"enabled": True, "loss_limit": 300},
        "max_contracts": {"enabled": True, "limit": 5},
    },
    "daily loss realized + profit target": {
        "daily_realized_loss": {"enabled": True, "loss_limit": 250, "include_unrealized": False},
        "daily_realized_profit": {"enabled": True, "target": 300},
    },
    "size limits": {
        "max_contracts": {"enabled": True, "limit": 3},
        "max_contracts_per_instrument": {"enabled": True, "limits": {"MNQ": 2, "ES": 1}, "default_limit": 2},
    },
    "per-position stop and target": {
        "daily_unrealized_loss": {"enabled": True, "loss_limit": 120},
        "max_unrealized_profit": {"enabled": True, "target": 200},
    },
    "frequency and loss cooldowns": {
        "trade_frequency_limit": {"enabled": True, "per_minute": 5, "cooldowns": {"per_minute": "60s"}},
        "cooldown_after_loss": {"enabled": True, "tiers": [{"loss": 60, "cooldown": "2m"},
                                                           {"loss": 150, "cooldown": "5m"}]},
    },
    "symbol blocks": {
        "symbol_blocks": {"enabled": True, "blocked": ["RTY", "CL*", "m2k"]},
        "max_contracts": {"enabled": True, "limit": 4, "action": "close_all"},
    },
    "combine-like": {
        "daily_realized_loss": {"enabled": True, "loss_limit": 400},
        "max_contracts": {"enabled": True, "limit": 4},
        "max_contracts_per_instrument": {"enabled": True, "limits": {"NQ": 1}, "default_limit": 3},
        "symbol_blocks": {"enabled": True, "blocked": ["CL*"]},
    },
}


@dataclass(slots=True)
class _Book:
    """What the generator knows of one account: its tags and whether the broker lets it trade."""

    id: int
    can_trade: bool = True
    next_tag: int = 1
    tags: list[str] | None = None

    def tag(self, remember: bool) -> str:
        tag = f"{TAG_PREFIX}{self.id}-{self.next_tag}"
        self.next_tag += 1
        if remember:
            self.tags = [*(self.tags or []), tag]
        return tag


def _ms(delta: timedelta) -> str:
    return f"{round(delta.total_seconds() * 1000)}ms"


class _Generator:
    def __init__(self, seed: int, accounts: int, minutes: float) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.n_accounts = accounts
        self.length = timedelta(minutes=minutes)
        catalogue = default_catalogue()
        self.symbols = self.rng.sample(SYMBOLS, 3)
        self.tick = {s: catalogue.get(s).contract.tick_size for s in self.symbols}
        self.price = {s: catalogue.get(s).reference_price for s in self.symbols}
        self.steps: list[dict[str, Any]] = []

    # ------------------------------------------------------------------------------ building
    def build(self) -> dict[str, Any]:
        rng = self.rng
        day = datetime(2026, 3, 2, tzinfo=UTC) + timedelta(days=7 * rng.randrange(30) + rng.randrange(5))
        start = day.replace(hour=rng.randrange(14, 19), minute=rng.randrange(60))
        config_name = rng.choice(sorted(RULE_CONFIGS))
        rules = {k: dict(v) for k, v in RULE_CONFIGS[config_name].items()}
        books = [_Book(1001 + i * 7) for i in range(self.n_accounts)]
        flips = rng.random() < 0.5
        if flips:
            rules["auth_loss_guard"] = {"enabled": True, "check_interval": "30s"}

        at = timedelta(0)
        for symbol in self.symbols:
            self._quote(at, symbol, drift=False)
        faults = self._fault_times()
        cut_ends = timedelta(0)
        while at < self.length:
            at += timedelta(milliseconds=rng.randrange(300, 4000))
            while faults and faults[0] <= at:
                cut_ends = max(cut_ends, self._fault(faults.pop(0)))
            roll = rng.random()
            if roll < 0.35:
                self._quote(at, rng.choice(self.symbols))
            else:
                self._trader(at, rng.choice(books), flips)
        end = max(at, cut_ends) + timedelta(seconds=5)
        self.steps.append({"at": end, "advance": True})
        self.steps.sort(key=lambda s: s["at"])
        return {
            "name": f"chaos seed {self.seed} ({config_name})",
            "description": f"generated by `risk-manager chaos` (seed {self.seed}); rules: {config_name}",
            "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "accounts": [{"id": b.id, "name": f"CHAOS-{b.id}", "balance": 50_000.0, "can_trade": True}
                         for b in books],
            "rules": rules,
            "steps": [{**s, "at": _ms(s["at"])} for s in self.steps],
        }

    # ------------------------------------------------------------------------------ market
    def _quote(self, at: timedelta, symbol: str, drift: bool = True) -> None:
        tick = self.tick[symbol]
        if drift:
            move = self.rng.choice((-1, 1)) * self.rng.choice((1, 1, 2, 3, 4, 6, 10, 16))
            self.price[symbol] = max(tick * 20, self.price[symbol] + move * tick)
        self.price[symbol] = round_to_tick(self.price[symbol], tick)
        self.steps.append({"at": at, "quote": {"symbol": symbol, "price": self.price[symbol]}})

    # ------------------------------------------------------------------------------ trader
    def _trader(self, at: timedelta, book: _Book, flips: bool) -> None:
        rng = self.rng
        symbol = rng.choice(self.symbols)
        roll = rng.random()
        if flips and roll < 0.04:
            book.can_trade = not book.can_trade
            self.steps.append({"at": at, "account": {"id": book.id, "can_trade": book.can_trade}})
        elif roll < 0.14:
            self.steps.append({"at": at, "close": {"account": book.id, "symbol": symbol}})
        elif roll < 0.24 and book.tags:
            self.steps.append({"at": at, "cancel": {"account": book.id, "tag": rng.choice(book.tags)}})
        else:
            self.steps.append({"at": at, "order": self._order(book, symbol)})

    def _order(self, book: _Book, symbol: str) -> dict[str, Any]:
        rng = self.rng
        tick = self.tick[symbol]
        last = self.price[symbol]
        side = rng.choice(("buy", "sell"))
        size = rng.choice((1, 1, 1, 2, 2, 3, 4))
        kind = rng.choices(("market", "limit", "stop", "trailing_stop"), weights=(55, 20, 20, 5))[0]
        order: dict[str, Any] = {"account": book.id, "symbol": symbol, "side": side, "size": size, "type": kind}
        away = rng.randrange(1, 12) * tick
        if kind == "limit":
            order["limit_price"] = round_to_tick(last - away if side == "buy" else last + away, tick)
        elif kind == "stop":
            order["stop_price"] = round_to_tick(last + away if side == "buy" else last - away, tick)
        elif kind == "trailing_stop":
            order["trail_ticks"] = rng.randrange(4, 20)
        if kind in ("market", "limit") and size > 1 and rng.random() < 0.3:
            cut = rng.randrange(1, size)
            order["fill"] = [cut, size - cut]
        # A rejected order (the broker refuses while can_trade is false) is not booked under its tag,
        # so only orders placed while the account can trade are remembered for later cancels.
        order["tag"] = book.tag(remember=book.can_trade)
        return order

    # ------------------------------------------------------------------------------ faults
    def _fault_times(self) -> list[timedelta]:
        total = self.length.total_seconds()
        count = self.rng.choice((0, 1, 2, 2, 3, 3, 4, 5))
        return sorted(timedelta(milliseconds=self.rng.randrange(1000, int(total * 1000))) for _ in range(count))

    def _fault(self, at: timedelta) -> timedelta:
        """Schedule one random fault at `at`; returns when its cut ends (or `at`)."""
        rng = self.rng
        kind = rng.choice(("cut", "cut", "latency", "http_errors", "expire_token", "lose_response",
                           "drop_user", "drop_market"))
        end = at
        fault: dict[str, Any]
        if kind == "cut":
            span = timedelta(milliseconds=rng.randrange(500, 12_000))
            fault = {"cut": rng.choice(("user_hub", "market_hub", "rest")), "for": format_duration(span)}
            end = at + span
        elif kind == "latency":
            fault = {"latency": {"rest_ms": rng.choice((0, 5, 20, 50)), "hub_ms": rng.choice((0, 2, 10))}}
        elif kind == "http_errors":
            fault = {"http_errors": {"status": rng.choice((429, 500, 503)), "count": rng.randrange(1, 4)}}
        elif kind == "expire_token":
            fault = {"expire_token": True}
        elif kind == "lose_response":
            fault = {"lose_response": {"count": rng.randrange(1, 3)}}
        elif kind == "drop_market":
            fault = {"drop_events": {"hub": "market", "count": rng.randrange(1, 4)}}
        else:
            fault = {"drop_events": {"hub": "user", "count": rng.randrange(1, 4)}}
            gap = at + timedelta(milliseconds=rng.randrange(1000, 20_000))
            span = timedelta(milliseconds=rng.randrange(500, 5000))
            self.steps.append({"at": gap, "fault": {"cut": "user_hub", "for": format_duration(span)}})
            end = gap + span
        self.steps.append({"at": at, "fault": fault})
        return end


def generate(seed: int, *, accounts: int | None = None, minutes: float = 2.0) -> Scenario:
    """A random scenario for `seed` (the same seed always gives the same scenario).

    `accounts` defaults to 2 or 3 (drawn from the seed); `minutes` is the length of the trading.
    """
    if accounts is not None and not 1 <= accounts <= 9:
        raise ValueError(f"accounts must be between 1 and 9, got {accounts}")
    if minutes <= 0:
        raise ValueError(f"minutes must be positive, got {minutes}")
    n = accounts if accounts is not None else random.Random(seed * 7919 + 1).choice((2, 3))
    data = _Generator(seed, n, minutes).build()
    return parse_scenario(data, f"<chaos seed {seed}>")


def scenario_dict(scenario: Scenario) -> dict[str, Any]:
    """The scenario as plain YAML-able data in the format of scenarios.md."""
    data: dict[str, Any] = {"name": scenario.name}
    if scenario.description is not None:
        data["description"] = scenario.description
    data["start"] = scenario.start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    data.update(scenario.model_dump(mode="python", by_alias=True, exclude_none=True,
                                    exclude={"name", "description", "steps", "start", "expect", "rules_file"}))
    if scenario.rules_file is not None:
        data["rules_file"] = str(scenario.rules_file)
    if not data.get("contracts"):
        data.pop("contracts", None)
    steps = []
    for step in scenario.steps:
        row = step.model_dump(mode="python", by_alias=True, exclude_none=True, exclude={"at"})
        fault = row.get("fault")
        if fault is not None and "for" in fault:
            fault["for"] = _ms(fault["for"])
        steps.append({"at": _ms(step.at), **row})
    data["steps"] = steps
    if scenario.expect is not None:
        data["expect"] = scenario.expect.model_dump(mode="python", exclude_defaults=True)
    return data


def to_yaml(scenario: Scenario) -> str:
    """YAML that `load_scenario` reads back as an equal `Scenario`."""
    return yaml.safe_dump(scenario_dict(scenario), sort_keys=False, allow_unicode=True, width=120)
