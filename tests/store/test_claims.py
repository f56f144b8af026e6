"""Pending actions: at most once per idempotency key, across restarts."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from risk_manager.domain import VirtualClock
from risk_manager.store import ActionState, Store

ACTION = {"kind": "close_position", "contract": "CON.F.US.MNQ.H26"}


async def test_a_key_is_claimed_once_even_across_a_restart(store: Store, clock: VirtualClock) -> None:
    assert await store.claim("7:max_contracts:MNQ:evt-1", 7, ACTION)
    assert not await store.claim("7:max_contracts:MNQ:evt-1", 7, ACTION)
    await store.close()
    reopened = await Store.open(store.path, clock)
    try:
        assert not await reopened.claim("7:max_contracts:MNQ:evt-1", 7, ACTION)
        assert await reopened.claim("7:max_contracts:MNQ:evt-2", 7, ACTION)
        in_flight = await reopened.unfinished_actions()
        assert [(a.key, a.state, a.attempts, a.action) for a in in_flight] == [
            ("7:max_contracts:MNQ:evt-1", ActionState.IN_FLIGHT, 1, ACTION),
            ("7:max_contracts:MNQ:evt-2", ActionState.IN_FLIGHT, 1, ACTION)]
    finally:
        await reopened.close()


async def test_done_and_failed_keys_are_never_claimed_again(store: Store) -> None:
    assert await store.claim("a", 7, ACTION)
    assert await store.finish_action("a", ok=True, detail="verified flat")
    assert await store.claim("b", 7, ACTION)
    assert await store.finish_action("b", ok=False, detail="rejected by broker")
    assert not await store.claim("a", 7, ACTION)
    assert not await store.claim("b", 7, ACTION)
    assert await store.unfinished_actions() == []
    done = await store.action("a")
    assert done is not None and (done.state, done.detail) == (ActionState.DONE, "verified flat")
    assert not await store.finish_action("unknown", ok=True)


async def test_a_pending_action_is_resumed_and_claimed_after_a_restart(store: Store, clock: VirtualClock) -> None:
    assert await store.record_pending("k", 7, ACTION)
    assert not await store.record_pending("k", 7, {"other": True})  # the first record stays
    await store.close()
    reopened = await Store.open(store.path, clock)
    try:
        [pending] = await reopened.unfinished_actions()
        assert (pending.key, pending.state, pending.attempts, pending.action) == ("k", ActionState.PENDING, 0, ACTION)
        assert await reopened.claim("k", 7, ACTION)
        assert not await reopened.claim("k", 7, ACTION)
    finally:
        await reopened.close()


async def test_release_lets_an_unexecuted_action_be_claimed_again(store: Store) -> None:
    assert await store.claim("k", 7, ACTION)
    assert await store.release_action("k", "broker shows no close order: not sent")
    assert not await store.release_action("k", "not in flight any more")
    assert await store.claim("k", 7, ACTION)
    claimed = await store.action("k")
    assert claimed is not None and (claimed.state, claimed.attempts) == (ActionState.IN_FLIGHT, 2)


async def test_concurrent_claims_of_one_key_let_exactly_one_through(store: Store) -> None:
    results = await asyncio.gather(*(store.claim("same", 7, ACTION) for _ in range(50)))
    assert results.count(True) == 1


async def _synchronous_level_of_durable_writes(store: Store) -> tuple[int, int]:
    def level(conn: sqlite3.Connection) -> int:
        return int(conn.execute("PRAGMA synchronous").fetchone()[0])

    return await store._call(level, durable=True), await store._call(level)


async def test_durable_writes_commit_with_an_fsync_unless_turned_off(db_path: Path, clock: VirtualClock) -> None:
    store = await Store.open(db_path, clock)
    assert await _synchronous_level_of_durable_writes(store) == (2, 1)  # FULL for durable writes, NORMAL otherwise
    await store.close()
    store = await Store.open(db_path, clock, durable_fsync=False)
    assert await _synchronous_level_of_durable_writes(store) == (1, 1)
    await store.close()


async def test_claim_now_decides_at_once_and_its_row_is_committed_before_the_finish(
        store: Store, clock: VirtualClock) -> None:
    assert store.claim_now("fast", 7, ACTION)          # no await: decided in memory
    assert not store.claim_now("fast", 7, ACTION)
    assert store.action_state("fast") is ActionState.IN_FLIGHT
    assert store.queued >= 1                             # the row is queued, not yet on disk
    assert await store.finish_action("fast", ok=True, detail="verified flat")  # commits the claim first
    assert store.action_state("fast") is ActionState.DONE
    with sqlite3.connect(store.path) as conn:           # another connection sees it: committed
        row = conn.execute("SELECT state, attempts FROM pending_actions WHERE idempotency_key = 'fast'").fetchone()
    assert row == ("done", 1)
    await store.close()
    reopened = await Store.open(store.path, clock)
    try:
        assert not reopened.claim_now("fast", 7, ACTION)  # the index is read back at open
    finally:
        await reopened.close()


async def test_claim_now_follows_release_and_pending_records(store: Store) -> None:
    assert await store.record_pending("p", 7, ACTION)
    assert store.action_state("p") is ActionState.PENDING
    assert store.claim_now("p", 7, ACTION)
    assert await store.release_action("p", "broker shows nothing sent")
    assert store.action_state("p") is ActionState.PENDING
    assert store.claim_now("p", 7, ACTION)
    claimed = await store.action("p")
    assert claimed is not None and (claimed.state, claimed.attempts) == (ActionState.IN_FLIGHT, 2)


async def test_queue_pending_records_without_waiting_and_never_overrides(store: Store, clock: VirtualClock) -> None:
    store.queue_pending("q", 7, ACTION)                  # no await: queued behind earlier writes
    assert store.action_state("q") is ActionState.PENDING
    assert store.claim_now("q", 7, ACTION)               # the worker's claim moves it on as usual
    store.queue_pending("q", 7, {"kind": "other"})       # a key the store knows is left as it is
    assert store.action_state("q") is ActionState.IN_FLIGHT
    store.queue_pending("r", 7, ACTION)
    await store.close()                                  # committed by the writer before it closes
    reopened = await Store.open(store.path, clock)
    try:
        rows = {a.key: (a.state, a.action) for a in await reopened.unfinished_actions()}
        assert rows == {"q": (ActionState.IN_FLIGHT, ACTION), "r": (ActionState.PENDING, ACTION)}
    finally:
        await reopened.close()
