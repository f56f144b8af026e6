"""Asking a running daemon how it is: `GET /health/ready` on its local endpoint (for `service status`)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from risk_manager.health.config import DEFAULT_HOST, DEFAULT_PORT


@dataclass(frozen=True, slots=True)
class ReadinessProbe:
    url: str
    reachable: bool
    ready: bool
    reasons: tuple[str, ...] = ()
    detail: str = ""  # why it is unreachable, or what was odd in the answer

    def describe(self) -> str:
        if not self.reachable:
            return f"unreachable ({self.detail})"
        if self.ready:
            return "ready"
        return "not ready: " + ("; ".join(self.reasons) or self.detail or "no reason given")


def probe_ready(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, timeout_s: float = 2.0) -> ReadinessProbe:
    """One `GET /health/ready`; never raises for a daemon that is down, slow or answering nonsense."""
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/health/ready"
    try:
        answer = httpx.get(url, timeout=timeout_s)
    except httpx.ConnectError:
        return ReadinessProbe(url, False, False, detail="nothing listens there: the daemon is not running, or "
                                                        "its health endpoint is disabled or on another port")
    except httpx.TimeoutException:
        return ReadinessProbe(url, False, False, detail=f"no answer within {timeout_s:g} s: the daemon is stuck")
    except httpx.HTTPError as exc:
        return ReadinessProbe(url, False, False, detail=f"{type(exc).__name__}: {exc}")
    try:
        body = answer.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or answer.status_code not in (200, 503):
        return ReadinessProbe(url, True, False, detail=f"unexpected answer (HTTP {answer.status_code}): is another "
                                                       "program using this port?")
    reasons = tuple(str(r) for r in body.get("reasons", []) if r)
    return ReadinessProbe(url, True, answer.status_code == 200 and body.get("ready") is True, reasons)
