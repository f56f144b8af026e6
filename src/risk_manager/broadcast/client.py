"""A dashboard's side of the broadcast channel: connect, authenticate, apply snapshot + diffs.

    async with await SnapshotFeed.connect(url, token) as feed:   # DaemonUnreachableError / AuthRefusedError
        print(feed.snapshot)                                       # the initial Snapshot
        while True:
            snapshot = await feed.next()                           # the whole state after the next change

An unexpected message (not JSON, unknown type, invalid content, another schema version in a diff)
is logged and ignored; the state stays as it was. A gap in `seq` raises `ProtocolError` (reconnect to
get a fresh snapshot); the daemon going away raises `DaemonUnreachableError`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from types import TracebackType
from typing import Any, Self

from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from risk_manager.broadcast.errors import AuthRefusedError, DaemonUnreachableError, ProtocolError
from risk_manager.broadcast.schema import SCHEMA_VERSION, Snapshot
from risk_manager.broadcast.server import CLOSE_AUTH
from risk_manager.logs import log_event

log = logging.getLogger("risk_manager.broadcast")

DEFAULT_URL = "ws://127.0.0.1:8765"


class SnapshotFeed:
    def __init__(self, ws: ClientConnection, url: str) -> None:
        self._ws = ws
        self.url = url
        self.state: dict[str, Any] = {}
        self.snapshot: Snapshot | None = None
        self.seq = -1
        self.ignored = 0  # messages logged and ignored

    @classmethod
    async def connect(cls, url: str, token: str, *, timeout_s: float = 3.0) -> SnapshotFeed:
        """Connected, authenticated, holding the initial snapshot."""
        try:
            ws = await asyncio.wait_for(connect(url, open_timeout=timeout_s, max_size=2**24, compression=None),
                                        timeout_s)
        except InvalidURI as exc:
            raise DaemonUnreachableError(f"{url} is not a WebSocket URL (expected ws://127.0.0.1:PORT)") from exc
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise DaemonUnreachableError(f"no daemon answers at {url} ({exc or type(exc).__name__}): is "
                                         "`risk-manager run` running, with the broadcast on this port?") from exc
        feed = cls(ws, url)
        try:
            await ws.send(json.dumps({"v": SCHEMA_VERSION, "type": "hello", "token": token}))
            while feed.snapshot is None:
                await feed._receive(timeout_s)
        except BaseException:
            await ws.close()
            raise
        return feed

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._ws.close()

    async def next(self, timeout_s: float | None = None) -> Snapshot:
        """The whole state after the next message that changed it."""
        while not await self._receive(timeout_s):
            pass
        assert self.snapshot is not None
        return self.snapshot

    async def _receive(self, timeout_s: float | None) -> bool:
        try:
            raw = await asyncio.wait_for(self._ws.recv(), timeout_s)
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
            if code == CLOSE_AUTH:
                raise AuthRefusedError(f"the daemon at {self.url} refused the token: check --token-file "
                                       "(the daemon's token file, readable by your user)") from None
            reason = exc.rcvd.reason if exc.rcvd is not None and exc.rcvd.reason else "connection closed"
            raise DaemonUnreachableError(f"the daemon at {self.url} went away ({reason})") from None
        except TimeoutError:
            raise DaemonUnreachableError(f"the daemon at {self.url} sent nothing for {timeout_s:g} s") from None
        return self.apply(raw)

    def apply(self, raw: str | bytes) -> bool:
        """Apply one server message; True when the state changed. Never raises on bad content."""
        try:
            message = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return self._ignore("not JSON", raw)
        if not isinstance(message, dict):
            return self._ignore("not an object", raw)
        kind = message.get("type")
        if kind == "error":
            if message.get("code") == "auth":
                raise AuthRefusedError(f"the daemon at {self.url} refused the token ({message.get('message')}): "
                                       "check --token-file")
            return self._ignore("error message from the daemon", raw)
        if message.get("v") != SCHEMA_VERSION:
            if kind == "snapshot":
                raise ProtocolError(f"the daemon speaks snapshot schema v{message.get('v')}; this dashboard "
                                    f"knows v{SCHEMA_VERSION}: install the same risk-manager version as the daemon")
            return self._ignore(f"schema version {message.get('v')!r}", raw)
        seq = message.get("seq")
        candidate: dict[str, Any] | None
        if kind == "snapshot":
            candidate = {k: v for k, v in message.items() if k not in ("type", "seq")}
        elif kind == "diff":
            if self.snapshot is None:
                return self._ignore("diff before the snapshot", raw)
            if not isinstance(seq, int) or seq != self.seq + 1:
                raise ProtocolError(f"missed messages from the daemon (seq {self.seq} → {seq}): reconnect")
            self.seq = seq  # received: even if its content is refused below, the next diff follows it
            candidate = _apply_diff(self.state, message)
        else:
            return self._ignore(f"unknown message type {kind!r}", raw)
        if candidate is None:
            return self._ignore("malformed diff", raw)
        try:
            snapshot = Snapshot.model_validate(candidate)
        except ValidationError as exc:
            return self._ignore(f"invalid content ({exc.error_count()} errors: {exc.errors()[0]['loc']})", raw)
        self.state, self.snapshot = candidate, snapshot
        if kind == "snapshot":
            self.seq = seq if isinstance(seq, int) else 0
        return True

    def _ignore(self, why: str, raw: str | bytes) -> bool:
        self.ignored += 1
        log_event(log, "broadcast_message_ignored", logging.WARNING, reason=why, size=len(raw))
        return False


def _apply_diff(state: dict[str, Any], diff: dict[str, Any]) -> dict[str, Any] | None:
    accounts, removed = diff.get("accounts", {}), diff.get("removed", [])
    if not isinstance(accounts, dict) or not isinstance(removed, list):
        return None
    merged = {k: v for k, v in state.get("accounts", {}).items() if k not in removed}
    merged.update(accounts)
    out = {**state, "accounts": merged, "at": diff.get("at", state.get("at"))}
    if "source" in diff:
        out["source"] = diff["source"]
    if "daemon" in diff:
        out["daemon"] = diff["daemon"]
    return out


async def fetch_snapshot(url: str, token: str, *, timeout_s: float = 3.0) -> dict[str, Any]:
    """One snapshot (the JSON `status --json` prints), or DaemonUnreachableError / AuthRefusedError."""
    async with await SnapshotFeed.connect(url, token, timeout_s=timeout_s) as feed:
        return feed.state
