"""Per channel type: the HTTP request for a notification and the reading of the answer.

Documented limits (see docs/operations.md for the sources):
- Discord: per-route limits are announced in `X-RateLimit-*` headers (a webhook's bucket is 5 requests
  per 2 s in practice); a 429 carries `Retry-After` and a JSON `retry_after` in seconds.
- Telegram Bot API FAQ: "avoid sending more than one message per second" in a chat, 20/minute in a
  group; a 429 carries `parameters.retry_after`.
"""

from __future__ import annotations

import email.utils
import json
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from risk_manager.notify.config import (
    DiscordChannelConfig,
    RateLimitConfig,
    TelegramChannelConfig,
    WebhookChannelConfig,
)
from risk_manager.notify.errors import DeliveryError
from risk_manager.notify.notifications import Notification, Severity

AnyChannelConfig = WebhookChannelConfig | DiscordChannelConfig | TelegramChannelConfig

DEFAULT_RATE: dict[str, tuple[int, float]] = {
    "discord": (5, 2.0),  # webhook bucket: 5 requests / 2 s
    "telegram": (1, 1.0),  # Bot FAQ: at most one message per second in one chat
    "webhook": (10, 1.0),  # our own politeness towards an unknown receiver
}

_DISCORD_COLOUR = {Severity.CRITICAL: 0xE74C3C, Severity.WARNING: 0xF39C12, Severity.INFO: 0x3498DB}
_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    url: str
    body: dict[str, object]
    headers: dict[str, str]


def rate_of(config: AnyChannelConfig) -> RateLimitConfig:
    if config.rate_limit is not None:
        return config.rate_limit
    messages, per = DEFAULT_RATE[config.type]
    return RateLimitConfig.model_validate({"messages": messages, "per": per})


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def discord_body(config: DiscordChannelConfig, note: Notification) -> dict[str, object]:
    fields: list[dict[str, object]] = []
    if note.account:
        fields.append({"name": "Account", "value": _cut(note.account, 1024), "inline": True})
    if note.rules:
        fields.append({"name": "Rules", "value": _cut(", ".join(note.rules), 1024), "inline": True})
    for key, value in list(note.details.items())[: 25 - len(fields)]:
        fields.append({"name": _cut(key, 256), "value": _cut(value or "-", 1024), "inline": False})
    body: dict[str, object] = {
        "content": _cut(f"{note.title}: {note.message}", 2000),
        "embeds": [{
            "title": _cut(note.title, 256),
            "description": _cut(note.message, 4096),
            "color": _DISCORD_COLOUR[note.level],
            "timestamp": note.time.astimezone(UTC).isoformat(),
            "fields": fields,
        }],
        "allowed_mentions": {"parse": []},  # a rule name or message can never ping @everyone
    }
    if config.username:
        body["username"] = config.username
    return body


def telegram_body(config: TelegramChannelConfig, note: Notification) -> dict[str, object]:
    # Plain text (no parse_mode): nothing in a message can break Markdown/HTML parsing.
    return {
        "chat_id": config.chat_id,
        "text": _cut(note.to_text(), 4096),
        "link_preview_options": {"is_disabled": True},
    }


def prepare(config: AnyChannelConfig, note: Notification) -> PreparedRequest:
    headers = {"User-Agent": "risk-manager"}
    if isinstance(config, DiscordChannelConfig):
        return PreparedRequest(config.url.get_secret_value(), discord_body(config, note), headers)
    if isinstance(config, TelegramChannelConfig):
        url = f"{config.api_base}/bot{config.bot_token.get_secret_value()}/sendMessage"
        return PreparedRequest(url, telegram_body(config, note), headers)
    headers.update({key: value.get_secret_value() for key, value in config.headers.items()})
    return PreparedRequest(config.url.get_secret_value(), note.to_json(), headers)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds: a number, or an HTTP date (RFC 9110 §10.2.3)."""
    if value is None or not value.strip():
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _json(response: httpx.Response) -> dict[str, object]:
    try:
        data = json.loads(response.content or b"null")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _retry_after(config: AnyChannelConfig, response: httpx.Response) -> float | None:
    body = _json(response)
    if isinstance(config, TelegramChannelConfig):
        parameters = body.get("parameters")
        if isinstance(parameters, dict) and isinstance(parameters.get("retry_after"), int | float):
            return float(parameters["retry_after"])
    elif isinstance(config, DiscordChannelConfig) and isinstance(body.get("retry_after"), int | float):
        return float(body["retry_after"])  # type: ignore[arg-type]
    return parse_retry_after(response.headers.get("Retry-After"))


def pause_hint(response: httpx.Response) -> float | None:
    """Seconds to hold the next message when the server says its bucket is empty (Discord's headers)."""
    if response.headers.get("X-RateLimit-Remaining") == "0":
        try:
            return max(0.0, float(response.headers.get("X-RateLimit-Reset-After", "")))
        except ValueError:
            return None
    return None


def _problem(config: AnyChannelConfig, response: httpx.Response) -> str:
    body = _json(response)
    description = body.get("description") or body.get("message")
    text = f"HTTP {response.status_code}"
    if isinstance(description, str) and description:
        text += f": {description[:200]}"
    if isinstance(config, TelegramChannelConfig):
        parameters = body.get("parameters")
        if isinstance(parameters, dict) and "migrate_to_chat_id" in parameters:
            text += f" (the group became a supergroup: set chat_id to {parameters['migrate_to_chat_id']})"
        elif response.status_code == 401:
            text += " (the bot token is wrong or was revoked: ask @BotFather for the current one)"
    elif isinstance(config, DiscordChannelConfig) and response.status_code in (401, 404):
        text += " (the webhook was deleted or its URL is wrong: copy it again from the channel settings)"
    return text


def check_response(config: AnyChannelConfig, response: httpx.Response) -> None:
    """Return if the channel took the message; raise `DeliveryError` (transient or not) otherwise."""
    status = response.status_code
    if 200 <= status < 300:
        if isinstance(config, TelegramChannelConfig) and _json(response).get("ok") is False:
            raise DeliveryError(config.label, _problem(config, response), transient=False)
        return
    transient = status in _TRANSIENT_STATUS or status >= 500
    retry_after = _retry_after(config, response) if transient else None
    raise DeliveryError(config.label, _problem(config, response), transient=transient, retry_after=retry_after)
