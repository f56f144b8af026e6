"""The `notifications:` config section: channels, which kinds each gets, limits and retries.

Secret values (webhook URLs carry their token in the path; Telegram bot tokens) may be written as
`${ENV_NAME}` references, resolved when the section is loaded; a missing variable is refused with its
name. Every secret is registered with `risk_manager.logs.register_secret` as soon as a channel is
built, so no log line of any logger can show it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from risk_manager.domain.durations import parse_duration
from risk_manager.logs import register_secret
from risk_manager.notify.errors import NotificationConfigError
from risk_manager.notify.notifications import NotificationKind

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_CHAT_ID = re.compile(r"-?\d+|@[A-Za-z][A-Za-z0-9_]{3,}")

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]

_DEFAULT_KINDS = tuple(kind for kind in NotificationKind if kind is not NotificationKind.TEST)


def expand_env(value: Any, env: Mapping[str, str]) -> Any:
    """Replace every `${NAME}` in a string by the variable's value; refuse unset or empty variables."""
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        resolved = env.get(name)
        if not resolved:
            raise ValueError(f"environment variable {name} is not set (referenced as ${{{name}}}); "
                             f"export it in the service's environment or write the value directly")
        return resolved

    return _ENV_REF.sub(substitute, value)


def _env_of(info: ValidationInfo) -> Mapping[str, str]:
    context = info.context if isinstance(info.context, Mapping) else {}
    env = context.get("env")
    return env if isinstance(env, Mapping) else os.environ


def _check_http_url(url: str) -> str:
    if not url.startswith(("https://", "http://")):
        raise ValueError("must be an http(s) URL, e.g. https://discord.com/api/webhooks/<id>/<token>")
    return url


class RateLimitConfig(BaseModel):
    """At most `messages` per `per` on one channel (a leaky bucket: bursts up to `messages`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    messages: int = Field(ge=1, le=1000)
    per: Duration


class _ChannelBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, min_length=1, max_length=64)
    kinds: tuple[NotificationKind, ...] = _DEFAULT_KINDS
    timeout: Duration = timedelta(seconds=10)
    rate_limit: RateLimitConfig | None = None

    @property
    def label(self) -> str:
        return self.name or str(getattr(self, "type", "channel"))

    def secrets(self) -> list[str]:
        return []

    def wants(self, kind: NotificationKind) -> bool:
        return kind is NotificationKind.TEST or kind in self.kinds

    def model_post_init(self, context: Any, /) -> None:
        for secret in self.secrets():
            register_secret(secret)


class WebhookChannelConfig(_ChannelBase):
    """Generic webhook: a JSON POST of `Notification.to_json()`."""

    type: Literal["webhook"]
    url: SecretStr
    headers: dict[str, SecretStr] = Field(default_factory=dict)

    @field_validator("url", mode="before")
    @classmethod
    def _url(cls, value: Any, info: ValidationInfo) -> Any:
        return _check_http_url(str(expand_env(value, _env_of(info))))

    @field_validator("headers", mode="before")
    @classmethod
    def _headers(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, Mapping):
            return value
        env = _env_of(info)
        return {key: expand_env(item, env) for key, item in value.items()}

    def secrets(self) -> list[str]:
        return [self.url.get_secret_value(), *(h.get_secret_value() for h in self.headers.values())]


class DiscordChannelConfig(_ChannelBase):
    """Discord webhook (Server settings → Integrations → Webhooks → Copy URL)."""

    type: Literal["discord"]
    url: SecretStr
    username: str | None = Field(default=None, max_length=80)

    @field_validator("url", mode="before")
    @classmethod
    def _url(cls, value: Any, info: ValidationInfo) -> Any:
        return _check_http_url(str(expand_env(value, _env_of(info))))

    def secrets(self) -> list[str]:
        return [self.url.get_secret_value()]


class TelegramChannelConfig(_ChannelBase):
    """Telegram bot: `sendMessage` to one chat. `api_base` is only changed for tests or a local Bot API server."""

    type: Literal["telegram"]
    bot_token: SecretStr
    chat_id: str = Field(min_length=1)
    api_base: str = "https://api.telegram.org"

    @field_validator("bot_token", mode="before")
    @classmethod
    def _token(cls, value: Any, info: ValidationInfo) -> Any:
        token = expand_env(value, _env_of(info))
        if isinstance(token, str) and ":" not in token:
            raise ValueError("a Telegram bot token looks like 123456789:AA... (ask @BotFather)")
        return token

    @field_validator("chat_id", mode="before")
    @classmethod
    def _chat(cls, value: Any, info: ValidationInfo) -> Any:
        value = expand_env(value, _env_of(info))
        value = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
        if isinstance(value, str) and not _CHAT_ID.fullmatch(value):
            raise ValueError("a chat id is a number (a user, or -100... for a group or channel) or @channelname")
        return value

    @field_validator("api_base")
    @classmethod
    def _base(cls, value: str) -> str:
        return _check_http_url(value).rstrip("/")

    def secrets(self) -> list[str]:
        return [self.bot_token.get_secret_value()]


ChannelConfig = Annotated[
    WebhookChannelConfig | DiscordChannelConfig | TelegramChannelConfig, Field(discriminator="type")
]


class NotificationsConfig(BaseModel):
    """The `notifications:` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    channels: tuple[ChannelConfig, ...] = ()
    disconnect_after: Duration = timedelta(seconds=30)
    queue_size: int = Field(default=1000, ge=1, le=100_000)
    retries: int = Field(default=5, ge=0, le=20)
    backoff_base: Duration = timedelta(seconds=1)
    backoff_max: Duration = timedelta(seconds=60)

    @model_validator(mode="after")
    def _distinct_labels(self) -> NotificationsConfig:
        labels = [channel.label for channel in self.channels]
        for label in sorted({label for label in labels if labels.count(label) > 1}):
            raise ValueError(f"two channels are both called {label!r}: give each one its own `name`")
        return self


def load_notifications(
    data: Mapping[str, Any] | None, *, source: str = "config", env: Mapping[str, str] | None = None
) -> NotificationsConfig:
    """Validate a `notifications:` mapping; errors name the source, the key path and what is allowed."""
    try:
        return NotificationsConfig.model_validate(data or {}, context={"env": os.environ if env is None else env})
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False, include_input=False):
            path = ".".join(str(part) for part in ("notifications", *error["loc"]))
            problems.append(f"{path}: {error['msg']}")
        raise NotificationConfigError(source, problems) from None
