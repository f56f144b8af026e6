"""The local health endpoint: HTTP on a loopback address only.

| route | answer |
| --- | --- |
| `GET /health/live` | 200 `{"live": true}` while the loop turns and the daemon's tasks are alive, else 503 + reasons |
| `GET /health/ready` | 200 when connected and every account's state is fresh, else 503 naming each account/hub |
| `GET /metrics` | Prometheus text, only when a `Metrics` object is given (else 404) |

A probe that raises is answered 503 with the error's type, and logged: a broken check never
looks healthy.

Why a small HTTP/1.1 responder on `asyncio.start_server` instead of a web framework: it answers
three GET routes to local probes (systemd, monitoring, `risk-manager service status`), one request
per connection, and importing aiohttp's server into the daemon cost ~14 MB of its 60 MB budget
(docs/performance.md). Requests are bounded (8 KiB of head, 5 s) and anything unexpected gets a
plain 4xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
from collections.abc import Callable
from types import TracebackType
from typing import Any

from risk_manager.health.config import DEFAULT_HOST, DEFAULT_PORT, check_loopback
from risk_manager.health.metrics import Metrics, content_type
from risk_manager.health.readiness import ReadyState
from risk_manager.logs import log_event

log = logging.getLogger("risk_manager.health")

_HEAD_LIMIT = 8192
_READ_TIMEOUT_S = 5.0
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
_JSON = "application/json"

Response = tuple[int, bytes, str]   # status, body, content type


class HealthServerError(RuntimeError):
    """The endpoint could not start; the message says what to change."""


def _json(status: int, body: dict[str, Any]) -> Response:
    return status, json.dumps(body).encode(), _JSON


def _encode(response: Response) -> bytes:
    status, body, content_type = response
    head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n")
    return head.encode("ascii") + body


class HealthServer:
    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, live: Callable[[], bool],
                 ready: Callable[[], ReadyState], metrics: Metrics | None = None,
                 live_reasons: Callable[[], list[str]] | None = None) -> None:
        try:
            self.host = check_loopback(host)
        except ValueError as exc:
            raise HealthServerError(f"health endpoint host {exc}") from None
        self._requested_port = port
        self._live = live
        self._live_reasons = live_reasons
        self._ready = ready
        self._metrics = metrics
        self._server: asyncio.Server | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The bound port (the real one when started with port 0)."""
        if self._port is None:
            raise RuntimeError("the health server is not started")
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        try:
            server = await asyncio.start_server(self._serve, self.host, self._requested_port, reuse_address=True,
                                                limit=_HEAD_LIMIT)
        except OSError as exc:
            hint = ("another process listens there (a second daemon?): stop it or set health.port in config.yaml"
                    if exc.errno == errno.EADDRINUSE else "check health.host/health.port in config.yaml")
            raise HealthServerError(f"cannot listen on {self.host}:{self._requested_port} ({exc.strerror}); "
                                    f"{hint}") from None
        self._server = server
        self._port = int(server.sockets[0].getsockname()[1])
        log_event(log, "health_server_started", url=self.url, metrics=self._metrics is not None)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            log_event(log, "health_server_stopped", port=self._port)

    async def __aenter__(self) -> HealthServer:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    # --- requests ----------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            response = await asyncio.wait_for(self._answer(reader), _READ_TIMEOUT_S)
            writer.write(_encode(response))
            await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass  # a probe that hung up, dawdled or sent an oversized head gets nothing more
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> Response:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return 400, b"", "text/plain"
        method, target = parts[0], parts[1].split("?", 1)[0]
        routes = {"/health/live": self._live_answer, "/health/ready": self._ready_answer}
        if self._metrics is not None:
            routes["/metrics"] = self._metrics_answer
        if target not in routes:
            return 404, b"", "text/plain"
        if method != "GET":
            return 405, b"", "text/plain"
        return routes[target]()

    def _live_answer(self) -> Response:
        try:
            live = bool(self._live())
            reasons = [] if live or self._live_reasons is None else self._live_reasons()
        except Exception as exc:
            log_event(log, "health_check_failed", logging.ERROR, check="live", error=repr(exc))
            return _json(503, {"live": False, "reasons": [f"the liveness check failed: {type(exc).__name__}"]})
        return _json(200 if live else 503, {"live": live, "reasons": reasons})

    def _ready_answer(self) -> Response:
        try:
            state = self._ready()
        except Exception as exc:
            log_event(log, "health_check_failed", logging.ERROR, check="ready", error=repr(exc))
            return _json(503, {"ready": False, "reasons": [f"the readiness check failed: {type(exc).__name__}"],
                               "hubs": {}, "accounts": {}})
        return _json(200 if state.ready else 503, state.to_json())

    def _metrics_answer(self) -> Response:
        assert self._metrics is not None  # the route exists only with metrics
        return 200, self._metrics.exposition(), content_type()
