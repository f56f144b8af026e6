"""A local HTTP receiver on 127.0.0.1 (ephemeral port) standing in for webhook, Discord and Telegram servers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Received:
    path: str
    body: dict[str, object]
    headers: dict[str, str]
    at: float


@dataclass
class Receiver:
    base: str = ""
    received: list[Received] = field(default_factory=list)
    # Scripted answers, first used first: (status, headers, JSON body or None); then 200 {"ok": true}.
    script: list[tuple[int, dict[str, str], object]] = field(default_factory=list)
    delay: float = 0.0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append(Received(request.path, body, dict(request.headers), asyncio.get_running_loop().time()))
        self.arrived.set()
        if self.delay:
            await asyncio.sleep(self.delay)
        status, headers, answer = self.script.pop(0) if self.script else (200, {}, {"ok": True})
        text = json.dumps(answer) if answer is not None else ""
        return web.Response(status=status, headers=headers, text=text, content_type="application/json")

    async def wait_for(self, count: int, seconds: float = 5.0) -> None:
        async with asyncio.timeout(seconds):
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()


@asynccontextmanager
async def running_receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    receiver.base = f"http://127.0.0.1:{port}"
    try:
        yield receiver
    finally:
        await runner.cleanup()
