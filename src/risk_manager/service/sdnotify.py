"""systemd's notification protocol (sd_notify): READY=1, WATCHDOG=1, STOPPING=1, STATUS=...

A datagram to the unix socket named by `$NOTIFY_SOCKET` (a leading '@' means the abstract namespace).
Written with the stdlib: the protocol is one `sendto`, and the `sdnotify` package has had no release
since 2017. Sending never raises: a daemon must not die because its supervisor's socket went away.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from collections.abc import Callable, Mapping

from risk_manager.logs import log_event

logger = logging.getLogger("risk_manager.service")


class SdNotify:
    """Talks to systemd when started by it (`Type=notify`); does nothing anywhere else."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        raw = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
        self.address: str | None = None
        if raw.startswith("@"):
            self.address = "\0" + raw[1:]
        elif raw.startswith("/"):
            self.address = raw
        elif raw:
            log_event(logger, "sd_notify_unsupported_socket", logging.WARNING, socket=raw,
                      hint="only unix sockets are supported")

    @property
    def enabled(self) -> bool:
        return self.address is not None and sys.platform != "win32"

    def send(self, *assignments: str) -> bool:
        """Send `KEY=value` lines in one datagram; True when sent."""
        if sys.platform == "win32" or self.address is None or not assignments:
            return False
        payload = "\n".join(assignments).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                # Never block the event loop: a unix datagram send waits when the receiver's queue is
                # full (a stalled supervisor); a ping that cannot go now is logged and dropped.
                sock.setblocking(False)
                sock.sendto(payload, self.address)
        except OSError as exc:
            log_event(logger, "sd_notify_failed", logging.WARNING, state=assignments[0], error=str(exc))
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        return self.send("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text.replace(chr(10), ' ')}")


def watchdog_interval(env: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of `WatchdogSec`), or None when no watchdog is armed for us."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    owner = env.get("WATCHDOG_PID", "")
    if owner.isdigit() and int(owner) != (os.getpid() if pid is None else pid):
        return None
    return int(usec) / 2 / 1_000_000


async def run_watchdog(notify: SdNotify, healthy: Callable[[], bool], interval: float | None = None) -> None:
    """Ping the watchdog every `interval` (default: `watchdog_interval()`) while `healthy()` says so.

    `healthy()` should mean "this process still does its job" (event loop turning, core tasks alive,
    store writable), not "the broker is reachable": an exchange outage is not cured by a restart.
    When it is False the ping is withheld, so systemd kills and restarts the daemon after WatchdogSec.
    Returns at once when no watchdog is armed; otherwise runs until cancelled.
    """
    period = interval if interval is not None else watchdog_interval()
    if period is None or not notify.enabled:
        return
    withheld = False
    while True:
        if healthy():
            if withheld:
                log_event(logger, "watchdog_resumed")
            withheld = False
            notify.watchdog()
        elif not withheld:
            withheld = True
            log_event(logger, "watchdog_withheld", logging.ERROR,
                      hint="the daemon is unhealthy; systemd will restart it when WatchdogSec runs out")
        await asyncio.sleep(period)
