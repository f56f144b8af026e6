"""The broadcast server on 127.0.0.1: token auth, snapshot then diffs, slow clients dropped, bad input."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from risk_manager.broadcast import (
    AuthRefusedError,
    BroadcastBindError,
    BroadcastServer,
    DaemonUnreachableError,
    ProtocolError,
    SnapshotFeed,
    TokenFileError,
    ensure_token_file,
    read_token_file,
)
from risk_manager.broadcast.server import CLOSE_AUTH, CLOSE_TOO_SLOW
from tests.broadcast.desk import Desk


@pytest.fixture
async def desk(tmp_path: Path):  # type: ignore[no-untyped-def]
    d = await Desk(tmp_path / "data" / "dashboard.token").start()
    yield d
    await d.server.aclose()


def token(desk: Desk) -> str:
    return read_token_file(desk.server.token_file)


async def wait_for(predicate, within_s: float = 2.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.org", "::"])
def test_only_loopback_binds(tmp_path: Path, host: str) -> None:
    with pytest.raises(BroadcastBindError, match="loopback only"):
        BroadcastServer(host, 0, token_file=tmp_path / "t")


def test_token_file_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dashboard.token"
    first = ensure_token_file(path)
    assert len(first) == 64 and int(first, 16) >= 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_token_file(path) == first
    group = tmp_path / "group.token"
    ensure_token_file(group, 0o640)
    assert stat.S_IMODE(group.stat().st_mode) == 0o640


def test_token_file_problems_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(TokenFileError, match="does not exist: start the daemon"):
        read_token_file(tmp_path / "missing")
    open_file = tmp_path / "open.token"
    open_file.write_text("abc\n")
    os.chmod(open_file, 0o644)
    with pytest.raises(TokenFileError, match="readable by other users: run `chmod 600"):
        read_token_file(open_file)
    empty = tmp_path / "empty.token"
    empty.write_text("")
    os.chmod(empty, 0o600)
    with pytest.raises(TokenFileError, match="is empty"):
        read_token_file(empty)


async def test_port_taken_is_a_clear_error(desk: Desk, tmp_path: Path) -> None:
    other = BroadcastServer("127.0.0.1", desk.server.port, token_file=tmp_path / "t2")
    with pytest.raises(BroadcastBindError, match="another daemon may be running"):
        await other.start()


async def test_wrong_token_is_refused(desk: Desk) -> None:
    with pytest.raises(AuthRefusedError, match="refused the token"):
        await SnapshotFeed.connect(desk.url, "0" * 64)
    async with connect(desk.url) as ws:  # a raw client without hello
        await ws.send("not json")
        reply = json.loads(await ws.recv())
        assert reply["type"] == "error" and reply["code"] == "auth"
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == CLOSE_AUTH
    assert desk.server.clients == 0


async def test_unreachable_daemon(tmp_path: Path) -> None:
    server = BroadcastServer("127.0.0.1", 0, token_file=tmp_path / "t")
    await server.start()
    url = server.url
    await server.aclose()
    with pytest.raises(DaemonUnreachableError, match="is `risk-manager run` running"):
        await SnapshotFeed.connect(url, "x", timeout_s=1.0)


async def test_snapshot_on_connect_then_diffs_of_changed_accounts(desk: Desk) -> None:
    desk.open_long(2)
    desk.publish()
    async with connect(desk.url) as ws:
        await ws.send(json.dumps({"v": 1, "type": "hello", "token": token(desk)}))
        first = json.loads(await ws.recv())
        assert first["type"] == "snapshot" and first["v"] == 1 and first["seq"] == 1
        assert first["accounts"]["1001"]["positions"][0]["size"] == 2
        desk.publish()  # nothing changed: nothing sent
        desk.accounts = [1001, 2002]
        desk.publish()
        diff = json.loads(await ws.recv())
        assert diff["type"] == "diff" and diff["seq"] == 2
        assert list(diff["accounts"]) == ["2002"] and diff["removed"] == [] and "daemon" not in diff
        desk.accounts = [1001]
        desk.lose(-600.0)
        desk.publish()
        diff = json.loads(await ws.recv())
        assert diff["seq"] == 3 and diff["removed"] == ["2002"]
        assert diff["accounts"]["1001"]["locks"][0]["rules"] == ["RULE-003"]


async def test_client_feed_applies_diffs(desk: Desk) -> None:
    desk.publish()
    async with await SnapshotFeed.connect(desk.url, token(desk)) as feed:
        assert feed.snapshot is not None and not feed.snapshot.accounts["1001"].locked
        desk.lose(-600.0)
        desk.publish()
        snap = await feed.next(2.0)
        assert snap.accounts["1001"].locked and snap.accounts["1001"].locks[0].kind == "until_reset"
        assert desk.server.clients == 1
    await wait_for(lambda: desk.server.clients == 0)


async def test_a_stuck_client_is_dropped_and_never_slows_the_publisher(desk: Desk, tmp_path: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    server = BroadcastServer("127.0.0.1", 0, token_file=desk.server.token_file, queue_size=8)
    await server.start()
    try:
        good = await SnapshotFeed.connect(server.url, token(desk))
        # A client that authenticates, then never reads: its socket buffers fill, then its queue.
        stuck = await connect(server.url, max_queue=1)
        await stuck.send(json.dumps({"v": 1, "type": "hello", "token": token(desk)}))
        await wait_for(lambda: server.clients == 2)
        stuck.transport.pause_reading()
        desk.lose(-100.0)
        base = desk.snapshot()
        worst = 0.0
        for i in range(200):
            big = {**base, "daemon": {"padding": "x" * 200_000, "n": i}}
            started = time.perf_counter()
            server.publish(big)
            worst = max(worst, time.perf_counter() - started)
            snap = await good.next(2.0)  # the good client keeps up
            assert snap.daemon is not None and snap.daemon["n"] == i
            if server.dropped:
                break
        assert server.dropped == 1 and server.clients == 1
        assert worst < 0.1, f"publish took {worst * 1000:.1f} ms"
        assert any("broadcast_client_dropped" in r.getMessage() for r in caplog.records)
        stuck.transport.resume_reading()
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(_read_until_closed(stuck), 5.0)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == CLOSE_TOO_SLOW
        await good.aclose()
    finally:
        await server.aclose()


async def _read_until_closed(ws) -> None:  # type: ignore[no-untyped-def]
    while True:
        await ws.recv()


async def test_unexpected_messages_are_logged_and_ignored(desk: Desk, caplog: pytest.LogCaptureFixture) -> None:
    desk.publish()
    async with await SnapshotFeed.connect(desk.url, token(desk)) as feed:
        before = feed.snapshot
        for raw in ["", "[1,2]", "{broken", json.dumps({"v": 1, "type": "party"}),
                    json.dumps({"v": 2, "type": "diff", "seq": 2}),
                    json.dumps({"v": 1, "type": "diff", "seq": 2, "accounts": {"1001": {"account_id": "x"}}}),
                    json.dumps({"v": 1, "type": "diff", "seq": 3, "accounts": [], "removed": []}),
                    json.dumps({"v": 1, "type": "error", "code": "other", "message": "?"})]:
            assert feed.apply(raw) is False
        assert feed.snapshot == before and feed.ignored == 8
        assert sum("broadcast_message_ignored" in r.getMessage() for r in caplog.records) == 8
        with pytest.raises(ProtocolError, match="missed messages"):
            feed.apply(json.dumps({"v": 1, "type": "diff", "seq": 9, "accounts": {}, "removed": []}))
        with pytest.raises(ProtocolError, match="schema v2"):
            feed.apply(json.dumps({"v": 2, "type": "snapshot", "seq": 1}))
