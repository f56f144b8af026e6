"""The local health endpoint: HTTP on a loopback address only (aiohttp).

| route | answer |
| --- | --- |
| `GET /health/live` | 200 `{"live": true}` while the loop turns and the daemon's tasks are alive, else 503 + reasons |
| `GET /health/ready` | 200 when connected and every account's state is fresh, else 503 naming each account/hub |
| `GET /metrics` | Prometheus text, only when a `Metrics` object is given (else 404) |

A probe that raises is answered 503 with the error's type, and logged: a broken check never
looks healthy.
"""

from __future__ import annotations

import errno
import json
import logging
from collections.abc import Callable
from types import TracebackType
from typing import Any

from aiohttp import web

from risk_manager.health.config import DEFAULT_HOST, DEFAULT_PORT, check_loopback
from risk_manager.health.metrics import CONTENT_TYPE, Metrics
from risk_manager.health.readiness import ReadyState
from risk_manager.logs import log_event

log = logging.getLogger("risk_manager.health")

_NO_STORE = {"Cache-Control": "no-store"}


class HealthServerError(RuntimeError):
    """The endpoint could not start; the message says what to change."""


def _json(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json", headers=_NO_STORE)


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
        self._runner: web.AppRunner | None = None
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
        app = web.Application()
        app.router.add_get("/health/live", self._handle_live)
        app.router.add_get("/health/ready", self._handle_ready)
        if self._metrics is not None:
            app.router.add_get("/metrics", self._handle_metrics)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._requested_port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            hint = ("another process listens there (a second daemon?): stop it or set health.port in config.yaml"
                    if exc.errno == errno.EADDRINUSE else "check health.host/health.port in config.yaml")
            raise HealthServerError(f"cannot listen on {self.host}:{self._requested_port} ({exc.strerror}); "
                                    f"{hint}") from None
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        log_event(log, "health_server_started", url=self.url, metrics=self._metrics is not None)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            log_event(log, "health_server_stopped", port=self._port)

    async def __aenter__(self) -> HealthServer:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    # --- handlers ----------------------------------------------------------------------------------

    async def _handle_live(self, _request: web.Request) -> web.Response:
        try:
            live = bool(self._live())
            reasons = [] if live or self._live_reasons is None else self._live_reasons()
        except Exception as exc:
            log_event(log, "health_check_failed", logging.ERROR, check="live", error=repr(exc))
            return _json(503, {"live": False, "reasons": [f"the liveness check failed: {type(exc).__name__}"]})
        return _json(200 if live else 503, {"live": live, "reasons": reasons})

    async def _handle_ready(self, _request: web.Request) -> web.Response:
        try:
            state = self._ready()
        except Exception as exc:
            log_event(log, "health_check_failed", logging.ERROR, check="ready", error=repr(exc))
            return _json(503, {"ready": False, "reasons": [f"the readiness check failed: {type(exc).__name__}"],
                               "hubs": {}, "accounts": {}})
        return _json(200 if state.ready else 503, state.to_json())

    async def _handle_metrics(self, _request: web.Request) -> web.Response:
        assert self._metrics is not None  # the route exists only with metrics
        return web.Response(body=self._metrics.exposition(), headers={"Content-Type": CONTENT_TYPE, **_NO_STORE})
