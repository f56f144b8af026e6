"""The simulated market: one quote per contract, a seeded random walk or a scripted feed, market
trades, depth, and historical bars.

Random feed: every `feed_interval` seconds of simulator clock each contract moves by −2..+2 ticks
(each contract has its own `random.Random` seeded from the simulator seed and the contract id, so the
walk does not depend on who subscribes). Scripted feed: prices change only through `set_quote`.
Every price change is handed to the listener (the simulator), which runs the matching engine and
publishes `GatewayQuote` / `GatewayTrade` / `GatewayDepth` to subscribers.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from risk_manager.domain import (
    Bar,
    BarUnit,
    Catalogue,
    CatalogueEntry,
    Clock,
    DepthEntry,
    DomType,
    MarketTrade,
    MarketTradeType,
    Quote,
)
from risk_manager.domain.ticks import round_to_tick


@dataclass(slots=True)
class QuoteState:
    entry: CatalogueEntry
    last: float
    bid: float
    ask: float
    open: float
    high: float
    low: float
    volume: int
    updated: datetime
    sent_at: datetime | None = None   # clock time of the last publication (scripted re-send)
    last_sent: Quote | None = None    # the last full quote published (partial-quote mode)
    places: int = 2                   # decimal places of the tick grid (0.25 → 2, 0.1 → 1)

    def to_quote(self) -> Quote:
        change = self.last - self.open
        tick = self.entry.contract.tick_size
        return Quote(
            symbol=self.entry.contract.symbol_id,
            symbol_name="/" + self.entry.symbol,
            last_price=self.last,
            best_bid=self.bid,
            best_ask=self.ask,
            change=round_to_tick(change, tick),
            change_percent=round(change / self.open * 100.0, 4) if self.open else 0.0,
            open=self.open,
            high=self.high,
            low=self.low,
            volume=float(self.volume),
            last_updated=self.updated,
            timestamp=self.updated,
        )


@dataclass(frozen=True, slots=True)
class MarketUpdate:
    """One price change of one contract, as published to the market hub."""

    contract_id: str
    quote: Quote
    trade: MarketTrade | None
    depth: tuple[DepthEntry, ...]


MarketListener = Callable[[MarketUpdate], None]


def _changes(before: Quote, after: Quote) -> Quote:
    """A partial quote: `symbol`, the timestamps and only the fields that changed since `before`."""
    return Quote(
        symbol=after.symbol,
        symbol_name=None,
        last_price=None if after.last_price == before.last_price else after.last_price,
        best_bid=None if after.best_bid == before.best_bid else after.best_bid,
        best_ask=None if after.best_ask == before.best_ask else after.best_ask,
        change=None if after.change == before.change else after.change,
        change_percent=None if after.change_percent == before.change_percent else after.change_percent,
        open=None,
        high=None if after.high == before.high else after.high,
        low=None if after.low == before.low else after.low,
        volume=None if after.volume == before.volume else after.volume,
        last_updated=after.last_updated,
        timestamp=after.timestamp,
    )

_BAR_STEP = {
    BarUnit.SECOND: timedelta(seconds=1),
    BarUnit.MINUTE: timedelta(minutes=1),
    BarUnit.HOUR: timedelta(hours=1),
    BarUnit.DAY: timedelta(days=1),
    BarUnit.WEEK: timedelta(days=7),
    BarUnit.MONTH: timedelta(days=30),  # history months are 30-day bars (documented in docs/simulator.md)
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Market:
    def __init__(self, catalogue: Catalogue, clock: Clock, seed: int, listener: MarketListener,
                 partial_quotes: bool = False, wants_depth: Callable[[str], bool] = lambda contract_id: True) -> None:
        self._catalogue = catalogue
        self._wants_depth = wants_depth
        self._partial = partial_quotes
        self._clock = clock
        self._seed = seed
        self._listener = listener
        self._quotes: dict[str, QuoteState] = {}
        self._rngs: dict[str, random.Random] = {}
        self._depth_rngs: dict[str, random.Random] = {}
        now = clock.now()
        for entry in catalogue:
            self._add(entry, now)

    def _add(self, entry: CatalogueEntry, now: datetime) -> None:
        tick = entry.contract.tick_size
        price = round_to_tick(entry.reference_price, tick)
        cid = entry.contract.id
        self._quotes[cid] = QuoteState(entry, price, round_to_tick(price - tick, tick),
                                       round_to_tick(price + tick, tick), price, price, price, 0, now, sent_at=now,
                                       places=max(0, -int(Decimal(str(tick)).normalize().as_tuple().exponent)))
        self._rngs[cid] = random.Random(self._seed * 1_000_003 + zlib.crc32(cid.encode()))
        # depth sizes have their own generator: building depth only for subscribers keeps the walk seeded
        self._depth_rngs[cid] = random.Random(self._seed * 7_000_003 + zlib.crc32(cid.encode()))

    def entry(self, symbol_or_contract_id: str) -> CatalogueEntry:
        """The catalogue entry; raises `UnknownContractError` for an unknown symbol or id."""
        return self._catalogue.get(symbol_or_contract_id)

    def state(self, contract_id: str) -> QuoteState:
        state = self._quotes.get(contract_id)
        if state is None:
            entry = self._catalogue.get(contract_id)
            self._add(entry, self._clock.now())
            state = self._quotes[entry.contract.id]
        return state

    def quote(self, symbol_or_contract_id: str) -> Quote:
        return self.state(self.entry(symbol_or_contract_id).contract.id).to_quote()

    def quotes(self) -> dict[str, QuoteState]:
        return self._quotes

    def set_quote(self, symbol_or_contract_id: str, price: float, bid: float | None = None,
                  ask: float | None = None, volume: int = 1) -> Quote:
        """Set the last price (bid/ask default to price ∓ one tick); publishes and triggers matching."""
        entry = self.entry(symbol_or_contract_id)
        tick = entry.contract.tick_size
        if not math.isfinite(price) or price <= 0:
            raise ValueError(f"quote price must be a positive number, got {price!r}")
        new_bid = round_to_tick(price - tick, tick) if bid is None else bid
        new_ask = round_to_tick(price + tick, tick) if ask is None else ask
        if new_bid > new_ask:
            raise ValueError(f"bid {new_bid} is above ask {new_ask} for {entry.symbol}")
        return self._move(entry.contract.id, round_to_tick(price, tick), new_bid, new_ask, volume)

    def _move(self, contract_id: str, last: float, bid: float, ask: float, volume: int) -> Quote:
        state = self.state(contract_id)
        up = last >= state.last
        now = self._clock.now()
        state.last, state.bid, state.ask = last, bid, ask
        state.high, state.low = max(state.high, last), min(state.low, last)
        state.volume += volume
        state.updated = now
        quote = state.to_quote()
        symbol_id = state.entry.contract.symbol_id or state.entry.symbol
        trade = MarketTrade(symbol_id=symbol_id, price=last, timestamp=now,
                            type=MarketTradeType.BUY if up else MarketTradeType.SELL, volume=volume)
        published = _changes(state.last_sent, quote) if self._partial and state.last_sent is not None else quote
        depth = self._depth(state, now) if self._wants_depth(contract_id) else ()
        self._listener(MarketUpdate(contract_id, published, trade, depth))
        state.sent_at = now
        state.last_sent = quote
        return quote

    def _depth(self, state: QuoteState, now: datetime) -> tuple[DepthEntry, ...]:
        """Best bid/ask and four more levels each side, with random sizes."""
        tick = state.entry.contract.tick_size
        places = state.places
        size = self._depth_rngs[state.entry.contract.id].randint
        entries = [DepthEntry(now, DomType.BEST_BID, state.bid, n := size(1, 40), n),
                   DepthEntry(now, DomType.BEST_ASK, state.ask, n := size(1, 40), n)]
        for level in range(1, 5):
            entries.append(DepthEntry(now, DomType.BID, round(state.bid - level * tick, places), n := size(1, 80), n))
            entries.append(DepthEntry(now, DomType.ASK, round(state.ask + level * tick, places), n := size(1, 80), n))
        return tuple(entries)

    def walk(self) -> None:
        """One random-walk step of every contract."""
        for cid, state in list(self._quotes.items()):
            rng = self._rngs[cid]
            tick = state.entry.contract.tick_size
            last = max(tick, round_to_tick(state.last + rng.randint(-2, 2) * tick, tick))
            self._move(cid, last, round_to_tick(last - tick, tick), round_to_tick(last + tick, tick),
                       rng.randint(1, 5))

    def resend_stale(self, older_than: timedelta, contract_ids: set[str]) -> None:
        """Re-publish the last quote of each listed contract not published for `older_than`."""
        now = self._clock.now()
        for cid in contract_ids:
            state = self._quotes.get(cid)
            if state is not None and (state.sent_at is None or now - state.sent_at >= older_than):
                # (subscribers got the quote on subscribing; this keeps market data flowing afterwards)
                state.sent_at = now
                self._listener(MarketUpdate(cid, state.to_quote(), None, ()))

    # -- history ------------------------------------------------------------------------------
    def bars(self, entry: CatalogueEntry, start: datetime, end: datetime, unit: BarUnit, unit_number: int,
             limit: int, include_partial: bool) -> list[Bar]:
        """Deterministic synthetic bars in [start, end), newest first, at most `limit`.

        Prices follow a smooth function of time around the reference price plus seeded noise, so
        the same request always gives the same bars.
        """
        step = _BAR_STEP[unit] * unit_number
        now = self._clock.now()
        end = min(end, now)
        step_s = step.total_seconds()
        t = _EPOCH + timedelta(seconds=math.floor((end - _EPOCH).total_seconds() / step_s) * step_s)
        bars: list[Bar] = []
        while t >= start and len(bars) < limit:
            bar_end = t + step
            if t < end and (include_partial or bar_end <= now):
                bars.append(self._bar(entry, t, step))
            try:
                t -= step
            except OverflowError:  # walked back past year 1
                break
        return bars

    def _price_at(self, entry: CatalogueEntry, when: datetime) -> float:
        s = (when - _EPOCH).total_seconds()
        ref = entry.reference_price
        noise = (zlib.crc32(f"{self._seed}:{entry.contract.id}:{int(s)}".encode()) / 0xFFFFFFFF) - 0.5
        value = ref * (1 + 0.004 * math.sin(s / 3723.0) + 0.002 * math.sin(s / 611.0) + 0.0004 * noise)
        return round_to_tick(value, entry.contract.tick_size)

    def _bar(self, entry: CatalogueEntry, t: datetime, step: timedelta) -> Bar:
        samples = [self._price_at(entry, t + step * (i / 4)) for i in range(4)]
        o, c = samples[0], samples[-1]
        volume = 1 + zlib.crc32(f"v:{self._seed}:{entry.contract.id}:{t.timestamp()}".encode()) % 500
        return Bar(t=t, o=o, h=max(samples), l=min(samples), c=c, v=volume)
