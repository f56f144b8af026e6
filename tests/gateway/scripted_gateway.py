"""A loopback REST front for the simulator that answers chosen requests with scripted responses.

The simulator covers the Gateway's normal answers and its fault kinds (cuts, 5xx, 429, lost
responses, expired tokens). Some answers a real server may give are not among them — 403, a 200
whose body is not JSON or not an envelope, a payload with a broken field, a slow answer to one
endpoint. `ScriptedGateway` listens on 127.0.0.1 (ephemeral port), forwards every request to the
simulator unchanged, except that a response queued with `script(path, ...)` answers the next
request to that path instead (once per queued response).
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any, Self

import httpx
from aiohttp import web


@dataclass(frozen=True, slots=True)
class Scripted:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    delay_s: float = 0.0


class ScriptedGateway:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.requests: list[str] = []
        self._script: dict[str, deque[Scripted]] = defaultdict(deque)
        self._runner: web.AppRunner | None = None
        self.port = 0

    def script(self, path: str, status: int = 200, body: Any = None, *, raw: bytes | None = None,
               delay_s: float = 0.0, times: int = 1) -> None:
        """Answer the next `times` requests to `/api/{path}` with this response (JSON `body`, or `raw` bytes)."""
        payload = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        content_type = "text/html" if raw is not None else "application/json"
        for _ in range(times):
            self._script[path.lower()].append(Scripted(status, payload, content_type, delay_s))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> None:
        """Listen on 127.0.0.1:`port` (0: an ephemeral one; a stopped front's port to bring it back)."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path.removeprefix("/api/")
        self.requests.append(path)
        queued = self._script.get(path.lower())
        if queued:
            answer = queued.popleft()
            if answer.delay_s:
                await asyncio.sleep(answer.delay_s)
            return web.Response(status=answer.status, body=answer.body, content_type=answer.content_type)
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
        async with httpx.AsyncClient(timeout=10.0) as http:
            upstream = await http.request(request.method, self.upstream + request.path_qs, content=body,
                                          headers=headers)
        return web.Response(status=upstream.status_code, body=upstream.content,
                            content_type=upstream.headers.get("content-type", "application/json").split(";")[0])
