"""A raw SignalR-over-WebSocket test client (aiohttp), to check the wire byte by byte."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp

RS = "\x1e"


class RawHub:
    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.session = session
        self.ws = ws
        self.pending: list[dict[str, Any]] = []
        self.frames = 0

    @classmethod
    async def connect(cls, url: str, token: str | None = None, *, header_token: bool = False, version: int = 1,
                      handshake: bool = True) -> RawHub:
        session = aiohttp.ClientSession()
        query = f"?access_token={token}" if token and not header_token else ""
        headers = {"Authorization": f"Bearer {token}"} if token and header_token else {}
        try:
            ws = await session.ws_connect(url + query, headers=headers, autoping=False)
        except BaseException:
            await session.close()
            raise
        hub = cls(session, ws)
        if handshake:
            await hub.send_raw(json.dumps({"protocol": "json", "version": version}) + RS)
            reply = await hub.next()
            assert reply == {}, reply
        return hub

    async def send_raw(self, text: str) -> None:
        await self.ws.send_str(text)

    async def invoke(self, target: str, *arguments: Any, invocation_id: str | None = None) -> None:
        msg: dict[str, Any] = {"type": 1, "target": target, "arguments": list(arguments)}
        if invocation_id is not None:
            msg["invocationId"] = invocation_id
        await self.send_raw(json.dumps(msg) + RS)

    async def next(self, timeout: float = 3.0) -> dict[str, Any]:  # noqa: ASYNC109 - test helper
        while not self.pending:
            msg = await self.ws.receive(timeout=timeout)
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise ConnectionError(f"expected a text frame, got {msg.type!r}")
            self.frames += 1
            assert msg.data.endswith(RS), msg.data
            self.pending.extend(json.loads(part) for part in msg.data.split(RS) if part)
        return self.pending.pop(0)

    async def until(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 3.0,  # noqa: ASYNC109
                    skip_pings: bool = True) -> list[dict[str, Any]]:
        """Every message received up to and including the first that satisfies `predicate`."""
        seen: list[dict[str, Any]] = []
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.next(timeout)
                if skip_pings and msg.get("type") == 6:
                    continue
                seen.append(msg)
                if predicate(msg):
                    return seen

    async def close(self) -> None:
        await self.ws.close()
        await self.session.close()


def targets(messages: list[dict[str, Any]]) -> list[str]:
    return [m["target"] for m in messages if m.get("type") == 1]
