"""Notifications to webhooks, Discord and Telegram: queued, rate limited, retried, secrets never logged."""

from risk_manager.notify.config import (
    DiscordChannelConfig,
    NotificationsConfig,
    RateLimitConfig,
    TelegramChannelConfig,
    WebhookChannelConfig,
    load_notifications,
)
from risk_manager.notify.disconnects import DisconnectWatch
from risk_manager.notify.errors import DeliveryError, NotificationConfigError, NotificationError
from risk_manager.notify.notifications import Notification, NotificationKind, Severity
from risk_manager.notify.notifier import ChannelCheck, ChannelStats, Notifier, send_test

__all__ = [
    "ChannelCheck",
    "ChannelStats",
    "DeliveryError",
    "DisconnectWatch",
    "DiscordChannelConfig",
    "Notification",
    "NotificationConfigError",
    "NotificationError",
    "NotificationKind",
    "NotificationsConfig",
    "Notifier",
    "RateLimitConfig",
    "Severity",
    "TelegramChannelConfig",
    "WebhookChannelConfig",
    "load_notifications",
    "send_test",
]
