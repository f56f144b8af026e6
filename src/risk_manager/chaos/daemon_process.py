"""The daemon of a `chaos --kill` run in a child process, so that it can be killed with SIGKILL.

`ProcessDaemon` is a `DaemonHandle` (see `risk_manager.replay.runner`): the child runs the real
`Daemon` (the `DaemonOptions` the runner built) with its own `VirtualClock`, talking to the parent's
in-process simulator over loopback REST + SignalR like any daemon. The parent drives it over a
control channel — a socket pair carrying one JSON object per line each way (request
`{"op": ..., ...}`, answer `{"ok": value}` or `{"error": type, "message": text}`), served by a
`LocalDaemon` in the child, so the daemon's side of the runner's logic is the same code in both modes.
The parent sets the child's clock (`set_time`) whenever the virtual clock moves, before the
simulator runs what is due and before `on_clock_advanced`.

Children are forked from a `multiprocessing` fork server that has the daemon's modules imported
already (`set_forkserver_preload`), so a start costs a fork plus the daemon's own start-up (login,
store, hubs, reconciliation), not an interpreter start and the imports. `kill()` is a real
`os.kill(pid, SIGKILL)`: no flush, no close, the database files as they are — what the next child
starts from.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import signal
import socket
import time
from dataclasses import replace
from datetime import datetime
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from typing import Any

from risk_manager.daemon.daemon import Daemon, DaemonOptions, DaemonStartError
from risk_manager.domain import VirtualClock
from risk_manager.logs import configure_logging, log_event
from risk_manager.replay.runner import LocalDaemon, ReplayError, Settled

log = logging.getLogger("risk_manager.chaos.process")

# Imported once by the fork server; every child is a fork of it with these loaded: the daemon's modules,
# what httpx imports only when its first client is made (~45 ms), and the `risk-manager` command's own
# module (multiprocessing runs the parent's main script again in every child: cheap once it is loaded).
PRELOAD = ["risk_manager.chaos.daemon_process", "risk_manager.daemon.daemon", "risk_manager.gateway",
           "risk_manager.engine", "risk_manager.enforcement", "risk_manager.store", "aiohttp", "httpx",
           "httpcore", "h11", "anyio", "anyio._backends._asyncio", "sniffio", "websockets", "pydantic",
           "risk_manager.cli.app"]
CALL_TIMEOUT_S = 60.0    # a control call's answer (settle waits at most the runner's quiet timeout itself)
CLOSE_TIMEOUT_S = 10.0
_LINE_LIMIT = 16 * 1024 * 1024   # a report of a long run is one line

_context: ForkServerContext | None = None


def _fork_server() -> ForkServerContext:
    global _context
    if _context is None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        _context = context
    return _context


class ProcessDaemon:
    """The daemon for `options` in a child process (`options.clock` gives the start time)."""

    def __init__(self, options: DaemonOptions) -> None:
        self.options = options
        self.process: BaseProcess | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()
        self.killed = False

    async def start(self) -> None:
        parent_end, child_end = socket.socketpair()
        now = self.options.clock.now()
        options = replace(self.options, clock=VirtualClock(now))
        level = logging.getLogger("risk_manager").getEffectiveLevel()
        process = _fork_server().Process(target=_child_main, args=(child_end, options, level),
                                         name="risk-manager-chaos-daemon", daemon=True)
        started = time.perf_counter()
        try:
            await asyncio.to_thread(process.start)
        except BaseException:
            parent_end.close()
            raise
        finally:
            child_end.close()
        forked = time.perf_counter()
        self.process = process
        self._reader, self._writer = await asyncio.open_unix_connection(sock=parent_end, limit=_LINE_LIMIT)
        protecting_after_s = await self._call("start")
        # fork_ms: `Process.start()` (the fork server forks a ready child); start_ms: the child's start-up
        # until the daemon protects, of which daemon_start_ms is the daemon's own (login … reconciliation).
        log_event(log, "chaos_daemon_process_started", pid=process.pid, at=now.isoformat(),
                  fork_ms=round((forked - started) * 1000, 1), start_ms=round((time.perf_counter() - forked) * 1000, 1),
                  daemon_start_ms=None if protecting_after_s is None else round(protecting_after_s * 1000, 1))

    def kill(self) -> None:
        """`kill -9` the child: nothing of its own runs after this."""
        assert self.process is not None and self.process.pid is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.killed = True
        log_event(log, "chaos_daemon_process_killed", pid=self.process.pid)

    async def wait_dead(self) -> None:
        """Until the child has exited (its sockets closed by the kernel) and the channel is closed."""
        if self.process is not None:
            await asyncio.to_thread(self.process.join)
        self._close_channel()

    async def aclose(self) -> None:
        if self.process is None:
            return
        if not self.killed and self.process.is_alive() and self._writer is not None:
            try:
                await asyncio.wait_for(self._call("close"), CLOSE_TIMEOUT_S)
            except (ReplayError, TimeoutError, ConnectionError) as exc:
                log_event(log, "chaos_daemon_process_close_failed", logging.WARNING, pid=self.process.pid,
                          error=str(exc))
        await asyncio.to_thread(self.process.join, CLOSE_TIMEOUT_S)
        if self.process.is_alive():
            self.kill()
            await asyncio.to_thread(self.process.join)
        self._close_channel()

    def _close_channel(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._reader = None

    async def _call(self, op: str, **args: Any) -> Any:
        async with self._lock:
            reader, writer = self._reader, self._writer
            if reader is None or writer is None or self.killed:
                raise ReplayError(f"the daemon process is gone (asked for {op})")
            try:
                writer.write(json.dumps({"op": op, **args}).encode() + b"\n")
                await writer.drain()
                line = await asyncio.wait_for(reader.readline(), CALL_TIMEOUT_S)
            except ConnectionError:   # the child is gone: as an end of file
                line = b""
        if not line:
            code = self.process.exitcode if self.process is not None else None
            raise ReplayError(f"the daemon process died while asked for {op} (exit code {code})")
        answer = json.loads(line)
        if "error" in answer:
            if answer["error"] == "DaemonStartError":
                raise DaemonStartError(answer["message"])
            if answer["error"] == "ReplayError":
                raise ReplayError(answer["message"])
            raise ReplayError(f"the daemon process failed on {op}: {answer['error']}: {answer['message']}")
        return answer["ok"]

    # -------------------------------------------------------------------------- DaemonHandle
    async def set_time(self, now: datetime) -> None:
        await self._call("set_time", now=now.isoformat())

    async def next_deadline(self) -> datetime | None:
        value = await self._call("next_deadline")
        return None if value is None else datetime.fromisoformat(value)

    async def on_clock_advanced(self) -> None:
        await self._call("on_clock_advanced")

    async def settle(self, hub_sent: int, *, reconcile: bool, market: bool, timeout_s: float) -> Settled:
        settled: Settled = await self._call("settle", hub_sent=hub_sent, reconcile=reconcile, market=market,
                                            timeout_s=timeout_s)
        return settled

    async def locks(self) -> list[str]:
        rows: list[str] = await self._call("locks")
        return rows

    async def report(self) -> dict[str, Any]:
        rows: dict[str, Any] = await self._call("report")
        return rows


# ------------------------------------------------------------------------------ the child's side
def _child_main(channel: socket.socket, options: DaemonOptions, log_level: int) -> None:
    """The child process: serve the control channel until `close` (or the parent's end closes)."""
    configure_logging(log_level)
    asyncio.run(_serve(channel, options))


async def _serve(channel: socket.socket, options: DaemonOptions) -> None:
    reader, writer = await asyncio.open_unix_connection(sock=channel, limit=_LINE_LIMIT)
    assert isinstance(options.clock, VirtualClock)   # the runner's `set_time` moves it
    local = LocalDaemon(Daemon(options))
    started = False
    try:
        while line := await reader.readline():
            request = json.loads(line)
            op = request.pop("op")
            try:
                result = await _answer(local, op, request)
                if op == "start":
                    started = True
                answer: dict[str, Any] = {"ok": result}
            except Exception as exc:  # the parent gets it as a typed error
                log_event(log, "chaos_daemon_process_call_failed", logging.ERROR, op=op,
                          error=f"{type(exc).__name__}: {exc}")
                answer = {"error": type(exc).__name__, "message": str(exc)}
            if op == "close":
                started = False
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
            if op == "close":
                break
    finally:
        if started:
            await local.aclose()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _answer(local: LocalDaemon, op: str, args: dict[str, Any]) -> Any:
    if op == "set_time":
        await local.set_time(datetime.fromisoformat(args["now"]))
        return None
    if op == "next_deadline":
        deadline = await local.next_deadline()
        return None if deadline is None else deadline.isoformat()
    if op == "on_clock_advanced":
        await local.on_clock_advanced()
        return None
    if op == "settle":
        return await local.settle(int(args["hub_sent"]), reconcile=bool(args["reconcile"]),
                                  market=bool(args["market"]), timeout_s=float(args["timeout_s"]))
    if op == "locks":
        return await local.locks()
    if op == "report":
        return await local.report()
    if op == "start":
        await local.start()
        return local.daemon.protecting_after_s
    if op == "close":
        await local.aclose()
        return None
    raise ValueError(f"unknown control operation {op!r}")


__all__ = ["PRELOAD", "ProcessDaemon"]
