"""Structured logging: one line per event, `key=value` fields, secrets redacted.

Use `log_event(logger, "event_name", key=value, ...)`; the formatter prints
`2026-03-03T15:00:30.123Z INFO risk_manager.sim event_name key=value ...`. Anything that looks
like a secret (tokens, API keys, passwords, bearer headers, JWTs) is replaced by `***` in every
line, whatever logger or call produced it.
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

SECRET_KEYS = frozenset({
    "token", "newtoken", "apikey", "api_key", "password", "secret", "authorization", "access_token",
    "accesstoken", "key", "bot_token", "webhook_url",
})

_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',]+")
_QUERY_TOKEN = re.compile(r"(?i)(access_token=)[^&\s\"']+")
_JSON_SECRET = re.compile(r'(?i)("(?:apiKey|token|newToken|password|access_token)"\s*:\s*")[^"]*(")')
_KV_SECRET = re.compile(r"(?i)\b(apiKey|api_key|token|newToken|password|access_token|secret)=([^\s,]+)")
# Telegram bot tokens (`123456:AA...`, also inside `/bot<token>/` URLs) and Discord webhook URLs.
_TELEGRAM_TOKEN = re.compile(r"(?<![0-9])\d{5,}:[A-Za-z0-9_-]{30,}")
_DISCORD_WEBHOOK = re.compile(r"(?i)(/api/webhooks/\d+/)[A-Za-z0-9_.-]+")

# Literal secrets registered at run time (webhook URLs of any shape, tokens): replaced wherever they appear.
_registered: tuple[str, ...] = ()


def register_secret(value: str | None) -> None:
    """Have `redact` mask `value` literally from now on (values shorter than 6 characters are ignored)."""
    global _registered
    if value and len(value) >= 6 and value not in _registered:
        _registered = tuple(sorted((*_registered, value), key=len, reverse=True))


def redact(text: str) -> str:
    """`text` with every recognisable secret replaced by `***`."""
    for secret in _registered:
        if secret in text:
            text = text.replace(secret, "***")
    text = _JWT.sub("***", text)
    text = _TELEGRAM_TOKEN.sub("***", text)
    text = _DISCORD_WEBHOOK.sub(r"\1***", text)
    text = _BEARER.sub(r"\1***", text)
    text = _QUERY_TOKEN.sub(r"\1***", text)
    text = _JSON_SECRET.sub(r"\1***\2", text)
    return _KV_SECRET.sub(r"\1=***", text)


def _render(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=\n\t'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one structured event; fields named like secrets are masked before formatting."""
    if not logger.isEnabledFor(level):
        return
    parts = [event]
    for key, value in fields.items():
        shown = "***" if key.lower() in SECRET_KEYS and value not in (None, "") else value
        parts.append(f"{key}={_render(shown)}")
    logger.log(level, " ".join(parts))


class StructuredFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        message = record.getMessage()
        line = f"{stamp} {record.levelname} {record.name} {message}"
        if record.exc_info:
            line += " exc=" + _render(self.formatException(record.exc_info).replace("\n", " | "))
        return redact(line)


def configure_logging(level: str | int = "INFO", stream: Any = None) -> None:
    """Install the structured, redacting formatter on the root logger (idempotent)."""
    root = logging.getLogger()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(StructuredFormatter())
    handler._risk_manager = True  # type: ignore[attr-defined]
    for old in [h for h in root.handlers if getattr(h, "_risk_manager", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    # Libraries' chatter at INFO is noise on a trader's terminal.
    for noisy in ("aiohttp.access", "httpx", "httpcore", "websockets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
