"""The chaos oracle: an independent, plain re-implementation of the rule thresholds of rules.md over
the broker's truth, judging one run.

It deliberately does not import `risk_manager.engine`: it reads the scenario's raw `rules:` block
and redoes the arithmetic from the spec, so a bug in the engine is not repeated here. What it reads
is the simulator's own record (`History`): every user event the broker emitted, with its virtual
time and whether it reached the daemon's hub connection; the REST requests the daemon made; the
scripted quotes; the injected faults.

Checks (each failure is a typed `Violation`):

- `missed_breach` — every breach the oracle sees must be resolved in the broker's books (position
  closed or reduced, account flat, order cancelled) within `DEADLINE` of virtual time after the
  daemon *could know* of it: at once for an event delivered on a connected hub; for an event lost
  (dropped, or sent while the hub was cut) at the first successful reconciliation of that account
  afterwards (`Trade/search` answered 200); a quote lost on the market hub is known at the next
  delivered quote of that contract (or the reconnect's snapshot); while REST is cut nothing can be
  done, so the clock starts when the cut ends. A breach whose deadline lies beyond the end of the
  run is not judged (counted in `Judgement.unjudged`).
- `duplicate_order` — the simulator received two orders for one idempotency key / intent.
- `flipped_position` — a fill of an order the trader did not place turned a long into a short (or back).
- `http_429` — more 429 answers than the scenario injected.
- `crash` — the run did not finish (the daemon or the runner raised).
- `lost_lock` — a lock stored before a daemon kill is missing after the restart.

Locks the oracle keeps itself (from the same triggers as the daemon): RULE-003 / RULE-013 until the
daily reset, RULE-006 / RULE-007 cooldowns (a rule's own cooldown is not extended while it is in
force — the same rule latched), RULE-010 while `canTrade` is false, RULE-011 per symbol. While an
account-wide lock is active the account must be flat and have no working order that could open or
grow a position; a symbol lock asks the same of that symbol. Orders that can only reduce an open
position (a stop or target on the closing side, no bigger than the position) are allowed.

Decisions where the spec is silent are in docs/reliability.md.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from risk_manager.domain import (
    AccountEvent,
    Catalogue,
    OrderEvent,
    OrderSide,
    OrderStatus,
    PositionEvent,
    PositionType,
    TradeEvent,
    UserEvent,
    default_catalogue,
)
from risk_manager.domain.durations import parse_duration

DEADLINE = timedelta(seconds=1)
TAG_PREFIX = "t-"  # the generator's orders; anything else was placed by the daemon or a close
RECONCILE_PATH = "/api/Trade/search"
ViolationKind = Literal["missed_breach", "duplicate_order", "flipped_position", "http_429", "crash", "lost_lock"]
VIOLATION_KINDS: tuple[ViolationKind, ...] = ("missed_breach", "duplicate_order", "flipped_position", "http_429",
                                              "crash", "lost_lock")

SUPPORTED_RULES = frozenset({
    "daily_realized_loss", "daily_realized_profit", "max_contracts", "max_contracts_per_instrument",
    "daily_unrealized_loss", "max_unrealized_profit", "trade_frequency_limit", "cooldown_after_loss",
    "auth_loss_guard", "symbol_blocks",
})
_WORKING = (OrderStatus.OPEN, OrderStatus.PENDING)


class OracleConfigError(ValueError):
    """The oracle cannot judge this rule config (a rule or key it does not model)."""


@dataclass(frozen=True, slots=True)
class Violation:
    kind: ViolationKind
    account: int | None
    at: datetime | None
    detail: str

    def __str__(self) -> str:
        where = f"account {self.account} " if self.account is not None else ""
        when = f"at {self.at.isoformat()} " if self.at is not None else ""
        return f"{self.kind}: {where}{when}{self.detail}"


# ------------------------------------------------------------------------------------------ input
@dataclass(frozen=True, slots=True)
class TruthEvent:
    """One user event the broker emitted. `requests_before`: how many REST requests the simulator had
    answered when it happened (orders it against the reconciliations); `delivered`: it reached a
    subscribed hub connection of the daemon (not dropped, hub not cut)."""

    at: datetime
    event: UserEvent
    delivered: bool
    requests_before: int


@dataclass(frozen=True, slots=True)
class TruthRequest:
    index: int
    path: str
    account_id: int | None
    status: int
    at: datetime


@dataclass(frozen=True, slots=True)
class TruthQuote:
    at: datetime
    contract_id: str
    price: float


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime

    def holds(self, when: datetime) -> bool:
        return self.start <= when < self.end


@dataclass(slots=True)
class History:
    """What happened in one run, from the simulator's side."""

    rules: Mapping[str, Any]
    accounts: Sequence[int]
    events: list[TruthEvent] = field(default_factory=list)
    requests: list[TruthRequest] = field(default_factory=list)
    quotes: list[TruthQuote] = field(default_factory=list)
    checkpoints: list[datetime] = field(default_factory=list)   # every step time; the last is the end
    rest_cuts: list[Window] = field(default_factory=list)
    market_cuts: list[Window] = field(default_factory=list)
    market_drops: list[datetime] = field(default_factory=list)  # times a market-hub event was dropped
    duplicate_orders: list[str] = field(default_factory=list)
    http_429: int = 0
    injected_429: int = 0
    crash: str | None = None
    locks_before_kill: list[str] = field(default_factory=list)
    locks_after_kill: list[str] = field(default_factory=list)
    timezone: str = "America/Chicago"
    daily_reset: str = "17:00"


@dataclass(slots=True)
class Judgement:
    violations: list[Violation]
    breaches: int        # breach episodes seen (judged or not)
    unjudged: int        # episodes whose deadline lies beyond the end of the run

    @property
    def clean(self) -> bool:
        return not self.violations


# ------------------------------------------------------------------------------------------ config
@dataclass(frozen=True, slots=True)
class _Rules:
    loss_limit: float | None = None
    loss_with_open: bool = True
    loss_fees: bool = True
    profit_target: float | None = None
    profit_fees: bool = True
    max_contracts: int | None = None
    per_symbol: Mapping[str, int] = field(default_factory=dict)
    per_symbol_default: int | None = None
    per_symbol_unknown_block: bool = False
    position_loss: float | None = None
    position_target: float | None = None
    per_minute: int | None = None
    per_hour: int | None = None
    per_session: int | None = None
    cooldowns: Mapping[str, timedelta] = field(default_factory=dict)
    tiers: tuple[tuple[float, timedelta], ...] = ()
    auth_guard: bool = False
    blocked: tuple[str, ...] = ()


def _num(block: Mapping[str, Any], key: str, rule: str) -> float:
    value = block.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise OracleConfigError(f"rules.{rule}.{key}: expected a number, got {value!r}")
    return float(value)


def read_rules(rules: Mapping[str, Any]) -> _Rules:
    """The enabled rules of a scenario's `rules:` block, with rules.md's defaults."""
    on = {name: block for name, block in rules.items() if isinstance(block, Mapping) and block.get("enabled")}
    unknown = sorted(set(on) - SUPPORTED_RULES)
    if unknown:
        raise OracleConfigError(f"the oracle does not model {', '.join(unknown)}; "
                                f"it judges {', '.join(sorted(SUPPORTED_RULES))}")
    out: dict[str, Any] = {}
    if (b := on.get("daily_realized_loss")) is not None:
        out.update(loss_limit=_num(b, "loss_limit", "daily_realized_loss"),
                   loss_with_open=bool(b.get("include_unrealized", True)), loss_fees=bool(b.get("include_fees", True)))
    if (b := on.get("daily_realized_profit")) is not None:
        out.update(profit_target=_num(b, "target", "daily_realized_profit"),
                   profit_fees=bool(b.get("include_fees", True)))
    if (b := on.get("max_contracts")) is not None:
        if b.get("count_type", "gross") != "gross" or float(b.get("micro_weight", 1.0)) != 1.0:
            raise OracleConfigError("rules.max_contracts: the oracle models count_type gross, micro_weight 1 only")
        out["max_contracts"] = int(_num(b, "limit", "max_contracts"))
    if (b := on.get("max_contracts_per_instrument")) is not None:
        out.update(per_symbol={str(k).upper(): int(v) for k, v in dict(b.get("limits", {})).items()},
                   per_symbol_default=None if b.get("default_limit") is None else int(b["default_limit"]),
                   per_symbol_unknown_block=b.get("unknown_symbol", "allow") == "block")
    if (b := on.get("daily_unrealized_loss")) is not None:
        out["position_loss"] = _num(b, "loss_limit", "daily_unrealized_loss")
    if (b := on.get("max_unrealized_profit")) is not None:
        out["position_target"] = _num(b, "target", "max_unrealized_profit")
    if (b := on.get("trade_frequency_limit")) is not None:
        if not b.get("close_positions", True):
            raise OracleConfigError("rules.trade_frequency_limit: the oracle models close_positions: true only")
        given = dict(b.get("cooldowns", {}))
        defaults = {"per_minute": "60s", "per_hour": "30m", "per_session": "1h"}
        out.update(per_minute=b.get("per_minute"), per_hour=b.get("per_hour"), per_session=b.get("per_session"),
                   cooldowns={k: parse_duration(given.get(k, v)) for k, v in defaults.items()})
    if (b := on.get("cooldown_after_loss")) is not None:
        if not b.get("close_positions", True) or b.get("consecutive_losses") is not None:
            raise OracleConfigError("rules.cooldown_after_loss: the oracle models loss tiers with "
                                    "close_positions: true only")
        out["tiers"] = tuple((float(t["loss"]), parse_duration(t["cooldown"])) for t in b.get("tiers", []))
    if on.get("auth_loss_guard") is not None:
        out["auth_guard"] = True
    if (b := on.get("symbol_blocks")) is not None:
        out["blocked"] = tuple(str(p).upper() for p in b.get("blocked", []))
    return _Rules(**out)


# ------------------------------------------------------------------------------------------ state
@dataclass(slots=True)
class _Lock:
    rule: str
    start: datetime
    until: datetime | None          # None: while a condition holds (canTrade false)
    known: datetime | None          # when the daemon could know of the trigger (None: not during the run)

    def active(self, now: datetime, can_trade: bool) -> bool:
        if self.rule == "RULE-010":
            return not can_trade
        return self.until is None or now < self.until


@dataclass(slots=True)
class _Account:
    id: int
    positions: dict[str, tuple[int, float]] = field(default_factory=dict)   # contract → (signed size, avg)
    orders: dict[int, tuple[str, int, int, str | None]] = field(default_factory=dict)  # id → contract, side, size, tag
    tags: dict[int, str | None] = field(default_factory=dict)               # every order id → its tag
    trade_ids: set[int] = field(default_factory=set)
    trade_times: list[datetime] = field(default_factory=list)
    realized: float = 0.0
    fees: float = 0.0
    can_trade: bool = True
    locks: list[_Lock] = field(default_factory=list)
    last_order_of: dict[str, int] = field(default_factory=dict)             # contract → order id of its last fill
    dirty_from: int | None = None   # requests_before of the first lost event not yet reconciled


@dataclass(frozen=True, slots=True)
class _Obligation:
    key: tuple[Any, ...]            # identifies the breach while it lasts
    detail: str
    contracts: tuple[str, ...] = ()  # contracts whose price it depends on
    since: datetime | None = None   # the daemon cannot know of it before this (its lock's trigger)
    unknowable: bool = False        # its trigger was never knowable during the run


@dataclass(slots=True)
class _Episode:
    key: tuple[Any, ...]
    account: int
    start: datetime
    deadline: datetime | None       # None: the daemon could not know of it during the run
    detail: str
    reported: bool = False


class Oracle:
    def __init__(self, history: History, catalogue: Catalogue | None = None) -> None:
        self.h = history
        self.rules = read_rules(history.rules)
        self.catalogue = catalogue or default_catalogue()
        self.accounts = {a: _Account(a) for a in history.accounts}
        self.price: dict[str, float] = {}
        self.violations: list[Violation] = []
        self.open: dict[tuple[Any, ...], _Episode] = {}
        self.breaches = 0
        self.unjudged = 0
        self._quotes_by_contract: dict[str, list[TruthQuote]] = {}
        for q in history.quotes:
            self._quotes_by_contract.setdefault(q.contract_id, []).append(q)

    # ---------------------------------------------------------------------------------- helpers
    def symbol(self, contract_id: str) -> str:
        entry = self.catalogue.find(contract_id)
        if entry is None:
            raise OracleConfigError(f"contract {contract_id} is not in the catalogue")
        return entry.symbol.upper()

    def tick(self, contract_id: str) -> tuple[float, float]:
        c = self.catalogue.get(contract_id).contract
        return c.tick_size, c.tick_value

    def open_pnl(self, contract_id: str, signed: int, avg: float) -> float:
        price = self.price.get(contract_id)
        if price is None or signed == 0:
            return 0.0
        tick_size, tick_value = self.tick(contract_id)
        ticks = (price - avg) / tick_size if signed > 0 else (avg - price) / tick_size
        return ticks * tick_value * abs(signed)

    def next_reset(self, when: datetime) -> datetime:
        zone = ZoneInfo(self.h.timezone)
        hour, minute = (int(x) for x in self.h.daily_reset.split(":"))
        local = when.astimezone(zone)
        reset = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if reset <= local:
            reset = (local + timedelta(days=1)).replace(hour=hour, minute=minute, second=0, microsecond=0)
        return reset

    # ---------------------------------------------------------------------------------- knowing
    def _reconciled_at(self, account: int, requests_before: int) -> datetime | None:
        for r in self.h.requests:
            if (r.index >= requests_before and r.path == RECONCILE_PATH and r.status == 200
                    and r.account_id == account):
                return r.at
        return None

    def _after_rest_cuts(self, when: datetime) -> datetime:
        moved = True
        while moved:
            moved = False
            for cut in self.h.rest_cuts:
                if cut.holds(when):
                    when, moved = cut.end, True
        return when

    def _quote_delivered(self, q: TruthQuote) -> bool:
        return q.at not in self.h.market_drops and not any(c.holds(q.at) for c in self.h.market_cuts)

    def _price_known(self, contract_id: str, now: datetime) -> datetime | None:
        quotes = self._quotes_by_contract.get(contract_id, [])
        current = [q for q in quotes if q.at <= now]
        if not current or self._quote_delivered(current[-1]):
            return now
        later = [q.at for q in quotes if q.at > now and self._quote_delivered(q)]
        reconnects = [c.end for c in self.h.market_cuts if c.holds(current[-1].at) and c.end > now]
        options = later[:1] + reconnects
        return min(options) if options else None

    def _known(self, acc: _Account, now: datetime, contracts: Iterable[str] = ()) -> datetime | None:
        known: datetime | None = now
        if acc.dirty_from is not None:
            known = self._reconciled_at(acc.id, acc.dirty_from)
        for cid in contracts:
            price_known = self._price_known(cid, now)
            if known is None or price_known is None:
                return None
            known = max(known, price_known)
        return None if known is None else self._after_rest_cuts(known)

    # ---------------------------------------------------------------------------------- events
    def _apply(self, te: TruthEvent) -> None:
        event = te.event
        acc = self.accounts.get(event.account_id)
        if acc is None:
            return
        if not te.delivered and (acc.dirty_from is None
                                 or self._reconciled_between(acc.id, acc.dirty_from, te.requests_before)):
            acc.dirty_from = te.requests_before
        if isinstance(event, OrderEvent):
            o = event.order
            acc.tags[o.id] = o.custom_tag
            if o.status in _WORKING:
                acc.orders[o.id] = (o.contract_id, int(o.side), o.size - o.fill_volume, o.custom_tag)
            else:
                acc.orders.pop(o.id, None)
        elif isinstance(event, TradeEvent):
            t = event.trade
            if t.voided or t.id in acc.trade_ids:
                return
            acc.trade_ids.add(t.id)
            acc.trade_times.append(te.at)
            acc.fees += t.fees
            acc.last_order_of[t.contract_id] = t.order_id
            if t.profit_and_loss is not None:
                acc.realized += t.profit_and_loss
            self._trade_triggers(acc, te.at, t.profit_and_loss)
        elif isinstance(event, PositionEvent):
            p = event.position
            before = acc.positions.get(p.contract_id, (0, 0.0))[0]
            signed = p.size if p.type == PositionType.LONG else -p.size if p.type == PositionType.SHORT else 0
            if before * signed < 0:
                order_id = acc.last_order_of.get(p.contract_id)
                tag = acc.tags.get(order_id) if order_id is not None else None
                if tag is None or not tag.startswith(TAG_PREFIX):
                    self.violations.append(Violation(
                        "flipped_position", acc.id, te.at,
                        f"{p.contract_id} went from {before:+d} to {signed:+d} on a fill of order {order_id} "
                        f"(tag {tag!r}), which the trader did not place"))
            if signed == 0:
                acc.positions.pop(p.contract_id, None)
            else:
                acc.positions[p.contract_id] = (signed, p.average_price)
        elif isinstance(event, AccountEvent):
            acc.can_trade = event.account.can_trade
            if self.rules.auth_guard and not acc.can_trade and not any(
                    lk.rule == "RULE-010" for lk in acc.locks):
                acc.locks.append(_Lock("RULE-010", te.at, None, self._known(acc, te.at)))

    def _latched(self, acc: _Account, rule: str, now: datetime) -> bool:
        return any(lk.rule == rule and lk.active(now, acc.can_trade) for lk in acc.locks)

    def _trade_triggers(self, acc: _Account, now: datetime, pnl: float | None) -> None:
        r = self.rules
        windows = (("per_minute", r.per_minute, timedelta(minutes=1)), ("per_hour", r.per_hour, timedelta(hours=1)),
                   ("per_session", r.per_session, None))
        longest: timedelta | None = None
        for name, limit, span in windows:
            if limit is None:
                continue
            count = sum(1 for t in acc.trade_times if span is None or t > now - span)
            if count > limit and (longest is None or r.cooldowns[name] > longest):
                longest = r.cooldowns[name]
        if longest is not None and not self._latched(acc, "RULE-006", now):
            acc.locks.append(_Lock("RULE-006", now, min(now + longest, self.next_reset(now)), self._known(acc, now)))
        if pnl is not None and pnl < 0 and r.tiers and not self._latched(acc, "RULE-007", now):
            reached = [cooldown for loss, cooldown in r.tiers if -pnl >= loss]
            if reached:
                acc.locks.append(_Lock("RULE-007", now, min(now + max(reached), self.next_reset(now)),
                                       self._known(acc, now)))

    def _pnl_triggers(self, acc: _Account, now: datetime) -> None:
        r = self.rules
        if r.loss_limit is not None and not self._latched(acc, "RULE-003", now):
            value = acc.realized - (acc.fees if r.loss_fees else 0.0)
            if r.loss_with_open:
                value += sum(self.open_pnl(c, s, a) for c, (s, a) in acc.positions.items())
            if round(value, 2) <= -r.loss_limit:
                held = list(acc.positions) if r.loss_with_open else []
                acc.locks.append(_Lock("RULE-003", now, self.next_reset(now), self._known(acc, now, held)))
        if r.profit_target is not None and not self._latched(acc, "RULE-013", now):
            value = acc.realized - (acc.fees if r.profit_fees else 0.0)
            if round(value, 2) >= r.profit_target:
                acc.locks.append(_Lock("RULE-013", now, self.next_reset(now), self._known(acc, now)))

    # ---------------------------------------------------------------------------------- obligations
    def _reduces(self, acc: _Account, contract_id: str, side: int, size: int) -> bool:
        signed = acc.positions.get(contract_id, (0, 0.0))[0]
        closing = (signed > 0 and side == int(OrderSide.ASK)) or (signed < 0 and side == int(OrderSide.BID))
        return closing and size <= abs(signed)

    def _blocked(self, symbol: str) -> bool:
        return any(fnmatch.fnmatchcase(symbol, pattern) for pattern in self.rules.blocked)

    def _obligations(self, acc: _Account, now: datetime) -> list[_Obligation]:
        """Every breach in force now (see the module docstring)."""
        r = self.rules
        out: list[_Obligation] = []
        active = [lk for lk in acc.locks if lk.active(now, acc.can_trade)]
        names = "+".join(sorted({lk.rule for lk in active}))
        # The daemon can act on a lock once it could know of its trigger; the latest trigger counts
        # only when every active lock is still unknown (any known lock already asks for the same).
        knowns = [lk.known for lk in active]
        lock_since = min((k for k in knowns if k is not None), default=None)
        for cid, (signed, avg) in acc.positions.items():
            symbol = self.symbol(cid)
            if active:
                out.append(_Obligation(("locked_position", acc.id, cid),
                                       f"position {signed:+d} {cid} while locked by {names}", (), lock_since,
                                       lock_since is None))
            if self._blocked(symbol):
                out.append(_Obligation(("blocked_position", acc.id, cid),
                                       f"position {signed:+d} in blocked symbol {symbol}"))
            limit = self._symbol_limit(symbol)
            if limit is not None and abs(signed) > limit:
                out.append(_Obligation(("per_instrument", acc.id, cid),
                                       f"{symbol} size {abs(signed)} above its limit {limit}"))
            pnl = round(self.open_pnl(cid, signed, avg), 2)
            if r.position_loss is not None and pnl <= -r.position_loss:
                out.append(_Obligation(("position_loss", acc.id, cid),
                                       f"{cid} open P&L {pnl:.2f} at or below -{r.position_loss:g}", (cid,)))
            if r.position_target is not None and pnl >= r.position_target:
                out.append(_Obligation(("position_target", acc.id, cid),
                                       f"{cid} open P&L {pnl:.2f} at or above {r.position_target:g}", (cid,)))
        gross = sum(abs(s) for s, _ in acc.positions.values())
        if r.max_contracts is not None and gross > r.max_contracts:
            out.append(_Obligation(("max_contracts", acc.id), f"{gross} contracts open, limit {r.max_contracts}"))
        for oid, (cid, side, size, tag) in acc.orders.items():
            if self._reduces(acc, cid, side, size):
                continue
            if active:
                out.append(_Obligation(("locked_order", acc.id, oid),
                                       f"working order {oid} ({cid}, tag {tag!r}) that can open a position "
                                       f"while locked by {names}", (), lock_since, lock_since is None))
            if self._blocked(self.symbol(cid)):
                out.append(_Obligation(("blocked_order", acc.id, oid),
                                       f"working order {oid} ({cid}, tag {tag!r}) in a blocked symbol"))
        return out

    def _symbol_limit(self, symbol: str) -> int | None:
        r = self.rules
        if not r.per_symbol and r.per_symbol_default is None and not r.per_symbol_unknown_block:
            return None
        limit = r.per_symbol.get(symbol, r.per_symbol_default)
        if limit is None and r.per_symbol_unknown_block:
            return 0
        return limit

    def _check(self, now: datetime) -> None:
        """Judge the books as they stand at `now` (everything at `now` applied)."""
        seen: set[tuple[Any, ...]] = set()
        for acc in self.accounts.values():
            self._pnl_triggers(acc, now)
            for ob in self._obligations(acc, now):
                seen.add(ob.key)
                episode = self.open.get(ob.key)
                if episode is None:
                    known = None if ob.unknowable else self._known(acc, now, ob.contracts)
                    if known is not None and ob.since is not None:
                        known = self._after_rest_cuts(max(known, ob.since))
                    episode = _Episode(ob.key, acc.id, now, None if known is None else known + DEADLINE, ob.detail)
                    self.open[ob.key] = episode
                    self.breaches += 1
        for key in [k for k in self.open if k not in seen]:
            del self.open[key]

    def _overdue(self, now: datetime) -> None:
        """Before anything at `now` happens: the books have not changed since the last instant, so an
        episode whose deadline passed before `now` was not resolved in time."""
        for episode in self.open.values():
            if episode.deadline is not None and episode.deadline < now and not episode.reported:
                late = "the daemon could know of it at " + (episode.deadline - DEADLINE).isoformat()
                self.violations.append(Violation("missed_breach", episode.account, episode.start,
                                                 f"{episode.detail}; still so at {now.isoformat()} ({late})"))
                episode.reported = True

    # ---------------------------------------------------------------------------------- judging
    def judge(self) -> Judgement:
        h = self.h
        times = sorted({e.at for e in h.events} | {q.at for q in h.quotes} | set(h.checkpoints))
        events = sorted(h.events, key=lambda e: e.at)   # stable: the broker's order within an instant
        quotes = sorted(h.quotes, key=lambda q: q.at)
        ei = qi = 0
        for now in times:
            self._overdue(now)
            while qi < len(quotes) and quotes[qi].at <= now:
                self.price[quotes[qi].contract_id] = quotes[qi].price
                qi += 1
            # P&L thresholds are judged on the books once everything at `now` is applied (in `_check`):
            # one fill is a trade event and a position event, and between the two the closed contracts
            # would count twice (realized by the trade, still open in the position).
            while ei < len(events) and events[ei].at <= now:
                self._apply(events[ei])
                ei += 1
            self._clear_reconciled(now)
            self._check(now)
        self.unjudged = sum(1 for e in self.open.values()
                            if not e.reported and (e.deadline is None or (times and e.deadline > times[-1])))
        self._counters()
        return Judgement(self.violations, self.breaches, self.unjudged)

    def _reconciled_between(self, account: int, first: int, end: int) -> bool:
        return any(first <= r.index < end and r.path == RECONCILE_PATH and r.status == 200 and r.account_id == account
                   for r in self.h.requests)

    def _clear_reconciled(self, now: datetime) -> None:
        for acc in self.accounts.values():
            if acc.dirty_from is not None:
                at = self._reconciled_at(acc.id, acc.dirty_from)
                if at is not None and at <= now:
                    acc.dirty_from = None

    def _counters(self) -> None:
        h = self.h
        for detail in h.duplicate_orders:
            self.violations.append(Violation("duplicate_order", None, None, detail))
        if h.http_429 > h.injected_429:
            self.violations.append(Violation("http_429", None, None, f"the simulator answered {h.http_429} request(s) "
                                             f"with 429, {h.injected_429} of them injected by faults"))
        if h.crash is not None:
            self.violations.append(Violation("crash", None, None, h.crash))
        lost = [lock for lock in h.locks_before_kill if lock not in h.locks_after_kill]
        for lock in lost:
            self.violations.append(Violation("lost_lock", None, None, f"lock {lock} was stored before the kill "
                                             "and is gone after the restart"))


def judge(history: History, catalogue: Catalogue | None = None) -> Judgement:
    """Judge one run. Raises `OracleConfigError` for a rule config the oracle does not model."""
    return Oracle(history, catalogue).judge()

