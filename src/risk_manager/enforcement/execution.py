"""How each action kind is carried out through the Gateway client, and verified against the broker.

`ActionExecutor.run(action, verify_first)` sends the first mutation at once (from the daemon's view
given by the hints, never after a search), then reads the broker's state until it is right:
positions flat or reduced, orders gone, the stop where it should be. What is still wrong is sent
again — at most `max_attempts` mutations per target, spaced `verify_timeout_s / max_attempts` apart,
all within `verify_timeout_s` — except while a closing market order is still working on the contract
(a partial fill): then nothing more is sent for it and the order is given `partial_fill_timeout_s`.

A close that flips a position is impossible by construction: positions are only ever closed with
`Position/closeContract` / `partialCloseContract` (the broker sizes those from its own book and
refuses a size above the position), never with opposite market orders, and nothing is sent for a
contract while one of its closing orders is still working.

`verify_first=True` (an action resumed after a crash, or re-submitted after an uncertain outcome)
skips the blind first round: the broker is asked first, and only what is still wrong is sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from risk_manager.domain import Order, OrderSide, OrderType, Position
from risk_manager.enforcement.errors import ActionFailed
from risk_manager.enforcement.outcomes import EnforcerStats
from risk_manager.engine.actions import Action, ActionKind
from risk_manager.gateway import GatewayClient, MutationResult, PlaceResult
from risk_manager.logs import log_event

log = logging.getLogger("risk_manager.enforcement")

PositionsHint = Callable[[int], Iterable[tuple[str, int]]]
"""The daemon's current open positions of an account: (contract_id, size) pairs."""
OrdersHint = Callable[[int], Iterable[int | tuple[int, str]]]
"""The daemon's current working orders of an account: order ids, or (order_id, contract_id) pairs
(only pairs can be used for a `cancel_orders` of one contract)."""

# Verification reads back off from "at once" to one every 2 s (asyncio.sleep on the loop's clock: a
# virtual clock that nobody advances must not stall verification). A 60 s partial-fill wait thus
# costs ~60 reads (positions + orders every 2 s) of the 200 requests / 60 s budget, not all of it.
_POLL_DELAYS_S = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
_MAX_POLL_S = 2.0

# Refusals that no repeat can overcome (error names of gateway-protocol.md §3).
_PERMANENT = frozenset({"AccountNotFound", "ContractNotFound", "ContractNotActive", "AccountRejected"})
# Refusals that mean "already done" (or "recompute"): verification decides.
_CLOSE_SETTLED = frozenset({"PositionNotFound", "InvalidCloseSize"})
_CANCEL_SETTLED = frozenset({"OrderNotFound", "Rejected"})  # Rejected: the order is no longer working


@dataclass(frozen=True, slots=True)
class Limits:
    verify_timeout_s: float
    max_attempts: int
    partial_fill_timeout_s: float

    def __post_init__(self) -> None:
        if not self.verify_timeout_s > 0:
            raise ValueError(f"verify_timeout_s must be > 0 seconds, got {self.verify_timeout_s}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if not self.partial_fill_timeout_s > 0:
            raise ValueError(f"partial_fill_timeout_s must be > 0 seconds, got {self.partial_fill_timeout_s}")

    @property
    def resend_after_s(self) -> float:
        return self.verify_timeout_s / self.max_attempts


@dataclass(frozen=True, slots=True)
class Verified:
    """A verified result: `skipped` when there was nothing to do (or a stop would have been loosened)."""

    detail: str
    attempts: int
    skipped: bool = False


@dataclass(slots=True)
class _Progress:
    """Mutations sent per target (contract id or order id) during one action."""

    sent: dict[str | int, int] = field(default_factory=dict)
    last_sent: dict[str | int, float] = field(default_factory=dict)
    refusals: dict[str | int, str] = field(default_factory=dict)

    @property
    def rounds(self) -> int:
        return max(self.sent.values(), default=0)

    def note(self, target: str | int, now: float) -> None:
        self.sent[target] = self.sent.get(target, 0) + 1
        self.last_sent[target] = now

    def may_send(self, target: str | int, now: float, deadline: float, limits: Limits) -> bool:
        if now >= deadline or self.sent.get(target, 0) >= limits.max_attempts:
            return False
        last = self.last_sent.get(target)
        return last is None or now - last >= limits.resend_after_s

    def next_due(self, targets: Iterable[str | int], deadline: float, limits: Limits) -> float:
        """The loop time the next verification read is needed by: when a repeat becomes allowed for one
        of `targets` (still wrong), or the deadline."""
        due = deadline
        for target in targets:
            last = self.last_sent.get(target)
            if self.sent.get(target, 0) < limits.max_attempts and last is not None:
                due = min(due, last + limits.resend_after_s)
        return due

    def refusal_note(self) -> str:
        if not self.refusals:
            return ""
        return "; last refusal: " + "; ".join(f"{t}: {r}" for t, r in self.refusals.items())


class _Backoff:
    def __init__(self) -> None:
        self._step = 0
        self.due: float | None = None  # loop time by which the next read must happen (a repeat, a deadline)

    async def wait(self) -> None:
        delay = _POLL_DELAYS_S[self._step] if self._step < len(_POLL_DELAYS_S) else _MAX_POLL_S
        self._step += 1
        if self.due is not None:
            delay = min(delay, max(0.0, self.due - asyncio.get_running_loop().time()))
        if delay > 0:
            await asyncio.sleep(delay)
        elif self._step > 1:
            await asyncio.sleep(0)


def _refusal(result: MutationResult | PlaceResult) -> str:
    parts = [result.error_name or "refused"]
    if result.message:
        parts.append(result.message)
    return ": ".join(parts)


class ActionExecutor:
    def __init__(self, client: GatewayClient, limits: Limits, stats: EnforcerStats,
                 positions_hint: PositionsHint | None = None, orders_hint: OrdersHint | None = None) -> None:
        self._client = client
        self._limits = limits
        self._stats = stats
        self._positions_hint = positions_hint
        self._orders_hint = orders_hint
        self._kinds: dict[ActionKind, Callable[[Action, bool], Awaitable[Verified]]] = {
            ActionKind.CLOSE_POSITION: self.close_position,
            ActionKind.REDUCE_POSITION: self.reduce_position,
            ActionKind.FLATTEN_ACCOUNT: self.flatten_account,
            ActionKind.CANCEL_ORDERS: self.cancel_orders,
            ActionKind.MODIFY_STOP: self.modify_stop,
            ActionKind.PLACE_STOP: self.place_stop,
        }

    @property
    def kinds(self) -> frozenset[ActionKind]:
        return frozenset(self._kinds)

    async def run(self, action: Action, verify_first: bool = False) -> Verified:
        return await self._kinds[action.kind](action, verify_first)

    # ------------------------------------------------------------------------------------ hints
    def _hinted_positions(self, account_id: int) -> list[tuple[str, int]]:
        if self._positions_hint is None:
            return []
        try:
            return [(str(cid), int(size)) for cid, size in self._positions_hint(account_id)]
        except Exception as exc:  # a broken hint must not stop enforcement: the broker search follows
            log_event(log, "enforcement_hint_failed", logging.WARNING, hint="positions", account_id=account_id,
                      error=repr(exc))
            return []

    def _hinted_orders(self, account_id: int, contract_id: str | None) -> list[int]:
        if self._orders_hint is None:
            return []
        try:
            out: list[int] = []
            for item in self._orders_hint(account_id):
                if isinstance(item, tuple):
                    if contract_id is None or item[1] == contract_id:
                        out.append(int(item[0]))
                elif contract_id is None:
                    out.append(int(item))
            return out
        except Exception as exc:  # as above: the broker search finds what the hint would have
            log_event(log, "enforcement_hint_failed", logging.WARNING, hint="orders", account_id=account_id,
                      error=repr(exc))
            return []

    # ------------------------------------------------------------------------------------ broker calls
    async def _positions(self, account_id: int) -> dict[str, Position]:
        self._stats.requests += 1
        return {p.contract_id: p for p in await self._client.search_open_positions(account_id) if p.size > 0}

    async def _open_orders(self, account_id: int) -> list[Order]:
        self._stats.requests += 1
        return [o for o in await self._client.search_open_orders(account_id) if o.is_working]

    async def _send_close(self, account_id: int, contract_id: str, size: int | None, progress: _Progress) -> None:
        """`closeContract` (size None) or `partialCloseContract(size)`; a permanent refusal raises."""
        progress.note(contract_id, asyncio.get_running_loop().time())
        self._stats.requests += 1
        if size is None:
            result = await self._client.close_position(account_id, contract_id)
        else:
            result = await self._client.partial_close_position(account_id, contract_id, size)
        if result.ok or result.error_name in _CLOSE_SETTLED:
            progress.refusals.pop(contract_id, None)
            return
        if result.error_name in _PERMANENT:
            raise ActionFailed(f"the broker refused to close {contract_id}: {_refusal(result)}; close it by hand "
                               "in the broker's platform", attempts=progress.rounds)
        progress.refusals[contract_id] = _refusal(result)

    async def _send_cancel(self, account_id: int, order_id: int, progress: _Progress) -> None:
        progress.note(order_id, asyncio.get_running_loop().time())
        self._stats.requests += 1
        result = await self._client.cancel_order(account_id, order_id)
        if result.ok or result.error_name in _CANCEL_SETTLED or result.verified:
            progress.refusals.pop(order_id, None)
            return
        if result.error_name in _PERMANENT:
            raise ActionFailed(f"the broker refused to cancel order {order_id}: {_refusal(result)}; cancel it by "
                               "hand in the broker's platform", attempts=progress.rounds)
        progress.refusals[order_id] = _refusal(result)

    @staticmethod
    async def _all(calls: Sequence[Awaitable[None]]) -> None:
        """Run calls concurrently; every one finishes before the first error is raised."""
        results = await asyncio.gather(*calls, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    # ------------------------------------------------------------------------------------ positions
    async def close_position(self, action: Action, verify_first: bool) -> Verified:
        contract_id = _contract(action)
        progress = _Progress()
        if not verify_first:
            await self._send_close(action.account_id, contract_id, None, progress)
        return await self._settle_positions(action, {contract_id: 0}, progress, discover=False)

    async def reduce_position(self, action: Action, verify_first: bool) -> Verified:
        contract_id = _contract(action)
        to_size = action.size
        if to_size is None or to_size < 0:
            raise ActionFailed(f"reduce_position of {contract_id} needs a target size of 0 or more, got {to_size}")
        progress = _Progress()
        if not verify_first:
            hinted = dict(self._hinted_positions(action.account_id)).get(contract_id)
            if hinted is not None and hinted > to_size:
                size = None if to_size == 0 else hinted - to_size
                await self._send_close(action.account_id, contract_id, size, progress)
        return await self._settle_positions(action, {contract_id: to_size}, progress, discover=False)

    async def flatten_account(self, action: Action, verify_first: bool) -> Verified:
        progress = _Progress()
        targets: dict[str, int] = {}
        if not verify_first:
            targets = {cid: 0 for cid, size in self._hinted_positions(action.account_id) if size > 0}
            await self._all([self._send_close(action.account_id, cid, None, progress) for cid in targets])
        return await self._settle_positions(action, targets, progress, discover=True)

    async def _settle_positions(self, action: Action, targets: dict[str, int], progress: _Progress, *,
                                discover: bool) -> Verified:
        """Read the broker's positions until every target is at or below its size; resend what is not."""
        account_id = action.account_id
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._limits.verify_timeout_s
        partial_until: dict[str, float] = {}
        filled: dict[str, int] = {}  # last logged fill volume of each closing order in progress
        backoff = _Backoff()
        while True:
            await backoff.wait()
            positions = await self._positions(account_id)
            if discover:
                for contract_id in positions:
                    targets.setdefault(contract_id, 0)
            wrong = {cid: positions[cid] for cid, to_size in targets.items()
                     if cid in positions and positions[cid].size > to_size}
            if not wrong:
                return Verified(_settled(action, targets, positions, progress), progress.rounds)
            now = loop.time()
            closing = await self._closing_orders(account_id, wrong)
            for contract_id in [c for c in partial_until if c not in closing]:
                del partial_until[contract_id]
            sends: list[Awaitable[None]] = []
            for contract_id, position in wrong.items():
                order = closing.get(contract_id)
                if order is not None:  # our close is filling in parts: wait for it, send nothing more
                    until = partial_until.setdefault(contract_id, now + self._limits.partial_fill_timeout_s)
                    if now >= until:
                        raise ActionFailed(
                            f"partial fill: the closing order {order.id} on {contract_id} filled "
                            f"{order.fill_volume} of {order.size} and {position.size} contract(s) are still open "
                            f"after {self._limits.partial_fill_timeout_s:g} s; check the market's liquidity and "
                            "close the rest by hand", attempts=progress.rounds)
                    if order.fill_volume != filled.get(contract_id):
                        filled[contract_id] = order.fill_volume
                        log_event(log, "enforcement_partial_fill", account_id=account_id, contract_id=contract_id,
                                  order_id=order.id, filled=order.fill_volume, size=order.size,
                                  still_open=position.size)
                    continue
                if progress.may_send(contract_id, now, deadline, self._limits):
                    to_size = targets[contract_id]
                    size = None if to_size == 0 else position.size - to_size
                    sends.append(self._send_close(account_id, contract_id, size, progress))
            backoff.due = progress.next_due([c for c in wrong if c not in closing], deadline, self._limits)
            if sends:
                await self._all(sends)
            elif not partial_until and now >= deadline:
                still = ", ".join(f"{cid} {p.size} contract(s) (target {targets[cid]})" for cid, p in wrong.items())
                raise ActionFailed(
                    f"still open after {progress.rounds} attempt(s) in {self._limits.verify_timeout_s:g} s: {still}"
                    f"{progress.refusal_note()}; check the account in the broker's platform",
                    attempts=progress.rounds)

    async def _closing_orders(self, account_id: int, wrong: dict[str, Position]) -> dict[str, Order]:
        """Working market orders on the closing side of each still-open position (a close in progress)."""
        out: dict[str, Order] = {}
        for order in await self._open_orders(account_id):
            position = wrong.get(order.contract_id)
            if (position is not None and order.type == OrderType.MARKET
                    and order.side == position.type.closing_side):
                out[order.contract_id] = order
        return out

    # ------------------------------------------------------------------------------------ orders
    async def cancel_orders(self, action: Action, verify_first: bool) -> Verified:
        account_id = action.account_id
        progress = _Progress()
        order_id, contract_id = action.order_id, action.contract_id

        def wanted(order: Order) -> bool:
            if order_id is not None:
                return order.id == order_id
            return contract_id is None or order.contract_id == contract_id

        first = [order_id] if order_id is not None else self._hinted_orders(account_id, contract_id)
        if not verify_first and first:
            await self._all([self._send_cancel(account_id, oid, progress) for oid in first])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._limits.verify_timeout_s
        backoff = _Backoff()
        while True:
            await backoff.wait()
            remaining = [o for o in await self._open_orders(account_id) if wanted(o)]
            if not remaining:
                count = len(progress.sent)
                detail = "verified: no working order left" + (f" ({count} cancel request(s))" if count else "")
                return Verified(detail, progress.rounds)
            now = loop.time()
            sends = [self._send_cancel(account_id, o.id, progress) for o in remaining
                     if progress.may_send(o.id, now, deadline, self._limits)]
            backoff.due = progress.next_due([o.id for o in remaining], deadline, self._limits)
            if sends:
                await self._all(sends)
            elif now >= deadline:
                still = ", ".join(f"{o.id} ({o.contract_id}, {o.status.name.lower()})" for o in remaining)
                raise ActionFailed(
                    f"order(s) still working after {progress.rounds} attempt(s) in "
                    f"{self._limits.verify_timeout_s:g} s: {still}{progress.refusal_note()}; cancel them by hand "
                    "in the broker's platform", attempts=progress.rounds)

    # ------------------------------------------------------------------------------------ stops
    async def modify_stop(self, action: Action, verify_first: bool) -> Verified:
        """Move a stop, only ever tighter: a sell stop (protecting a long) only up, a buy stop only down.
        The current price is read from the broker's open orders, never from the daemon's view."""
        account_id = action.account_id
        if action.order_id is None or action.price is None:
            raise ActionFailed("modify_stop needs the stop's order id and the new price")
        order_id, price = action.order_id, action.price
        order = next((o for o in await self._open_orders(account_id) if o.id == order_id), None)
        if order is None:
            return Verified(f"stop order {order_id} is no longer working: nothing to move", 0, skipped=True)
        if not order.is_stop or order.stop_price is None:
            raise ActionFailed(f"order {order_id} is a {order.type.name.lower()} order, not a stop: not modified")
        current = order.stop_price
        if current == price:
            return Verified(f"stop {order_id} already at {price:g}", 0, skipped=True)
        tighter = price > current if order.side == OrderSide.ASK else price < current
        if not tighter:
            direction = "down" if order.side == OrderSide.ASK else "up"
            log_event(log, "enforcement_stop_not_loosened", account_id=account_id, order_id=order_id,
                      current=current, asked=price)
            return Verified(f"refused to loosen stop {order_id}: moving it {direction} from {current:g} to "
                            f"{price:g} would add risk (stops only move tighter)", 0, skipped=True)
        self._stats.requests += 1
        result = await self._client.modify_order(account_id, order_id, stop_price=price)
        if not result.ok and not result.verified:
            raise ActionFailed(f"the broker refused to move stop {order_id} to {price:g}: {_refusal(result)}",
                               attempts=1)
        after = next((o for o in await self._open_orders(account_id) if o.id == order_id), None)
        if after is None:
            return Verified(f"stop {order_id} moved to {price:g}, then left the book (triggered or cancelled)", 1)
        if after.stop_price is not None and (after.stop_price >= price if order.side == OrderSide.ASK
                                             else after.stop_price <= price):
            return Verified(f"verified: stop {order_id} at {after.stop_price:g} (was {current:g})", 1)
        raise ActionFailed(f"stop {order_id} still at {after.stop_price} after asking for {price:g}"
                           f"{': ' + result.message if result.message else ''}", attempts=1, retryable=True)

    async def place_stop(self, action: Action, verify_first: bool) -> Verified:
        """Place a protective stop (type 4) for an open position. Its customTag comes from the action's
        idempotency key, so a repeat (after a crash, or a lost response) can never create a second one."""
        account_id = action.account_id
        contract_id = _contract(action)
        if action.price is None:
            raise ActionFailed(f"place_stop on {contract_id} needs a stop price")
        position = (await self._positions(account_id)).get(contract_id)
        if position is None:
            return Verified(f"no open position in {contract_id}: no stop placed (it would open one)", 0, skipped=True)
        side = position.type.closing_side
        if action.side is not None and int(action.side) != int(side):
            return Verified(f"the position in {contract_id} is now {position.type.name.lower()}: a "
                            f"{OrderSide(action.side).name.lower()} stop would not protect it; not placed", 0,
                            skipped=True)
        size = min(action.size or position.size, position.size)
        self._stats.requests += 1
        result = await self._client.place_order(account_id, contract_id, OrderType.STOP, side, size,
                                                idempotency_key=action.idempotency_key, stop_price=action.price)
        if not result.ok:
            raise ActionFailed(f"the broker refused the stop at {action.price:g} on {contract_id}: "
                               f"{_refusal(result)}", attempts=1)
        order_id = result.order_id
        working = next((o for o in await self._open_orders(account_id)
                        if o.id == order_id or o.custom_tag == result.custom_tag), None)
        if working is not None:
            return Verified(f"verified: stop {working.id} ({side.name.lower()} {size} at {action.price:g}) working",
                            1)
        return Verified(f"stop {order_id} placed at {action.price:g}; no longer working (triggered at once)", 1)


def _contract(action: Action) -> str:
    if not action.contract_id:
        raise ActionFailed(f"{action.kind.value} needs a contract id (the engine sent none)")
    return action.contract_id


def _settled(action: Action, targets: dict[str, int], positions: dict[str, Position], progress: _Progress) -> str:
    already = "" if progress.sent else ", nothing needed sending"
    if action.kind is ActionKind.REDUCE_POSITION:
        (contract_id, to_size), = targets.items()
        held = positions[contract_id].size if contract_id in positions else 0
        return f"verified: {contract_id} at {held} contract(s) (target {to_size}{already})"
    if action.kind is ActionKind.FLATTEN_ACCOUNT:
        return f"verified flat (close sent for {len(progress.sent)} contract(s){already})"
    return f"verified flat{' (was already flat)' if already else ''}"
