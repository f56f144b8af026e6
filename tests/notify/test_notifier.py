from __future__ import annotations

import asyncio
import io
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest

from risk_manager.logs import StructuredFormatter
from risk_manager.notify import (
    DisconnectWatch,
    Notification,
    NotificationConfigError,
    NotificationKind,
    Notifier,
    load_notifications,
    send_test,
)
from tests.notify.receiver import Receiver, running_receiver

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawXYZ"
DISCORD_TOKEN = "dIsCoRdSeCrEt-TOKEN_abcdefghijklmnop"
HOOK_SECRET = "hook-secret-0f9e8d7c6b5a"
SECRETS = (TOKEN, DISCORD_TOKEN, HOOK_SECRET, "Bearer-header-secret-99")

NOTE = Notification(NotificationKind.ENFORCEMENT, "flattened 2 MNQ: daily loss -1,000.00 reached", account="PRAC-1",
                    rules=("daily_realized_loss",), time=datetime(2026, 3, 3, 15, 0, 30, tzinfo=UTC),
                    details={"action": "flatten"})


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as r:
        yield r


@pytest.fixture
def all_logs() -> Iterator[io.StringIO]:
    """Every log line of every logger, at DEBUG, through the project's formatter (as the log files get them)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(StructuredFormatter())
    root = logging.getLogger()
    old_levels = {name: logging.getLogger(name).level for name in ("", "httpx", "httpcore")}
    root.addHandler(handler)
    for name in old_levels:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        for name, level in old_levels.items():
            logging.getLogger(name).setLevel(level)


def config_for(receiver: Receiver, **extra: object) -> dict[str, object]:
    return {
        "channels": [
            {"type": "webhook", "name": "hook", "url": f"{receiver.base}/hook/{HOOK_SECRET}",
             "headers": {"Authorization": "${HOOK_AUTH}"}},
            {"type": "discord", "url": f"{receiver.base}/api/webhooks/42/{DISCORD_TOKEN}", "username": "risk"},
            {"type": "telegram", "bot_token": "${TG_TOKEN}", "chat_id": -100123, "api_base": receiver.base},
        ],
        "backoff_base": "10ms",
        "backoff_max": "50ms",
        **extra,
    }


ENV = {"TG_TOKEN": TOKEN, "HOOK_AUTH": "Bearer-header-secret-99"}


async def test_each_channel_gets_its_payload(receiver: Receiver, all_logs: io.StringIO) -> None:
    config = load_notifications(config_for(receiver), env=ENV)
    async with Notifier(config) as notifier:
        notifier.notify(NOTE)
        await receiver.wait_for(3)
    by_path = {r.path: r for r in receiver.received}

    hook = by_path[f"/hook/{HOOK_SECRET}"]
    assert hook.body == {"source": "risk-manager", "kind": "enforcement", "severity": "critical",
                         "account": "PRAC-1", "rules": ["daily_realized_loss"], "message": NOTE.message,
                         "time": "2026-03-03T15:00:30Z", "details": {"action": "flatten"}}
    assert hook.headers["Authorization"] == "Bearer-header-secret-99"

    discord = by_path[f"/api/webhooks/42/{DISCORD_TOKEN}"].body
    assert discord["content"] == f"risk-manager enforcement · PRAC-1: {NOTE.message}"
    assert discord["username"] == "risk"
    assert discord["allowed_mentions"] == {"parse": []}
    [embed] = discord["embeds"]  # type: ignore[misc]
    assert embed["description"] == NOTE.message and embed["color"] == 0xE74C3C
    assert {"name": "Rules", "value": "daily_realized_loss", "inline": True} in embed["fields"]

    telegram = by_path[f"/bot{TOKEN}/sendMessage"].body
    assert telegram["chat_id"] == "-100123"
    assert telegram["text"] == ("risk-manager enforcement · PRAC-1\n" + NOTE.message +
                                "\nrules: daily_realized_loss\naction: flatten\n2026-03-03 15:00:30 UTC")

    assert notifier.stats["telegram"].sent == 1 and notifier.stats["hook"].sent == 1
    logged = all_logs.getvalue()
    assert "notifier_started" in logged and "HTTP Request" in logged  # httpx did log its URLs at DEBUG...
    for secret in SECRETS:
        assert secret not in logged  # ...and no secret made it into any line


async def test_kinds_filter_channels(receiver: Receiver) -> None:
    config = load_notifications({"channels": [
        {"type": "webhook", "name": "locks-only", "url": f"{receiver.base}/a", "kinds": ["lock"]},
        {"type": "webhook", "name": "all", "url": f"{receiver.base}/b"},
    ]})
    async with Notifier(config) as notifier:
        notifier.notify(NOTE)
        notifier.notify(Notification(NotificationKind.LOCK, "locked until 17:00", account="PRAC-1"))
        await receiver.wait_for(3)
    assert sorted((r.path, r.body["kind"]) for r in receiver.received) == [
        ("/a", "lock"), ("/b", "enforcement"), ("/b", "lock")]


async def test_500_is_retried_with_backoff_then_delivered(receiver: Receiver, all_logs: io.StringIO) -> None:
    receiver.script = [(500, {}, {"message": "oops"}), (503, {}, None)]
    config = load_notifications({**config_for(receiver), "channels": config_for(receiver)["channels"][:1]}, env=ENV)
    async with Notifier(config) as notifier:
        notifier.notify(NOTE)
        await receiver.wait_for(3)
    await asyncio.sleep(0)
    assert [r.body["kind"] for r in receiver.received] == ["enforcement"] * 3
    assert notifier.stats["hook"].retries == 2 and notifier.stats["hook"].sent == 1
    logged = all_logs.getvalue()
    assert logged.count("notification_retry") == 2 and 'problem="HTTP 500: oops"' in logged
    assert HOOK_SECRET not in logged


@pytest.mark.parametrize(("channel", "answer", "expected_wait"), [
    ("webhook", (429, {"Retry-After": "7"}, None), 7.0),
    ("discord", (429, {"Retry-After": "3"}, {"message": "You are being rate limited.", "retry_after": 2.5,
                                            "global": False}), 2.5),
    ("telegram", (429, {}, {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 4",
                            "parameters": {"retry_after": 4}}), 4.0),
])
async def test_429_waits_what_the_server_asks(receiver: Receiver, channel: str,
                                              answer: tuple[int, dict[str, str], object],
                                              expected_wait: float) -> None:
    receiver.script = [answer]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    channels = {c["type"]: c for c in config_for(receiver)["channels"]}  # type: ignore[attr-defined]
    config = load_notifications({"channels": [channels[channel]], "backoff_base": "10ms"}, env=ENV)
    async with Notifier(config, sleep=sleep) as notifier:
        notifier.notify(NOTE)
        await receiver.wait_for(2)
    assert waits[0] == expected_wait
    assert len(receiver.received) == 2


async def test_retry_after_is_honoured_in_real_time(receiver: Receiver) -> None:
    receiver.script = [(429, {"Retry-After": "0.4"}, None)]
    config = load_notifications({"channels": [{"type": "webhook", "url": f"{receiver.base}/x"}]})
    async with Notifier(config) as notifier:
        notifier.notify(NOTE)
        await receiver.wait_for(2)
    first, second = receiver.received
    assert second.at - first.at >= 0.38


async def test_permanent_error_is_not_retried(receiver: Receiver, all_logs: io.StringIO) -> None:
    receiver.script = [(404, {}, {"message": "Unknown Webhook", "code": 10015})]
    config = load_notifications({"channels": [config_for(receiver)["channels"][1]]}, env=ENV)  # type: ignore[index]
    async with Notifier(config) as notifier:
        notifier.notify(NOTE)
        await receiver.wait_for(1)
        await asyncio.sleep(0.05)
    assert len(receiver.received) == 1
    assert notifier.stats["discord"].failed == 1
    logged = all_logs.getvalue()
    assert "notification_failed channel=discord" in logged and "webhook was deleted" in logged
    assert DISCORD_TOKEN not in logged


async def test_network_errors_retry_then_give_up_without_leaking(all_logs: io.StringIO) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = load_notifications({"channels": [{"type": "telegram", "bot_token": TOKEN, "chat_id": "1",
                                               "api_base": f"http://127.0.0.1:{port}",
                                               "rate_limit": {"messages": 10, "per": "1s"}}],
                                 "retries": 2, "backoff_base": "5ms", "backoff_max": "10ms"})
    async with Notifier(config) as notifier:
        notifier.notify(NOTE)
        for _ in range(200):
            if notifier.stats["telegram"].failed:
                break
            await asyncio.sleep(0.01)
    assert notifier.stats["telegram"].failed == 1 and notifier.stats["telegram"].retries == 2
    logged = all_logs.getvalue()
    assert "network error ConnectError" in logged
    assert TOKEN not in logged


async def test_full_queue_drops_with_a_log_line_and_never_blocks(receiver: Receiver,
                                                                 all_logs: io.StringIO) -> None:
    config = load_notifications({"channels": [{"type": "webhook", "name": "hook", "url": f"{receiver.base}/q"}],
                                 "queue_size": 2})
    notifier = Notifier(config)
    for i in range(5):  # not started: nothing drains, so the third and later do not fit
        notifier.notify(Notification(NotificationKind.WARN, f"warn {i}"))
    assert notifier.stats["hook"].dropped == 3
    logged = all_logs.getvalue()
    assert logged.count("notification_dropped channel=hook kind=warn") == 3 and "reason=queue_full" in logged
    await notifier.start()
    await receiver.wait_for(2)
    await notifier.aclose()
    assert [r.body["message"] for r in receiver.received] == ["warn 0", "warn 1"]


async def test_rate_limit_spaces_messages(receiver: Receiver) -> None:
    config = load_notifications({"channels": [{"type": "webhook", "url": f"{receiver.base}/r",
                                               "rate_limit": {"messages": 2, "per": "500ms"}}]})
    async with Notifier(config) as notifier:
        for i in range(6):
            notifier.notify(Notification(NotificationKind.WARN, f"w{i}"))
        await receiver.wait_for(6)
    span = receiver.received[-1].at - receiver.received[0].at
    # a burst of 2, then one every 250 ms: the last of 6 leaves ~1 s after the first
    assert span >= 0.85


async def test_close_drains_the_stop_message(receiver: Receiver) -> None:
    receiver.delay = 0.05
    config = load_notifications({"channels": [{"type": "webhook", "url": f"{receiver.base}/s"}]})
    notifier = Notifier(config)
    await notifier.start()
    notifier.notify(Notification(NotificationKind.DAEMON, "risk-manager stopping"))
    await notifier.aclose(drain_timeout=2)
    assert [r.body["message"] for r in receiver.received] == ["risk-manager stopping"]


async def test_send_test_reports_each_channel(receiver: Receiver) -> None:
    receiver.script = [(200, {}, {"ok": True}), (401, {}, {"ok": False, "error_code": 401,
                                                           "description": "Unauthorized"})]
    raw = config_for(receiver)["channels"]
    config = load_notifications({"channels": [raw[0], raw[2]]}, env=ENV)  # type: ignore[index]
    results = await send_test(config)
    assert [(r.channel, r.ok) for r in results] == [("hook", True), ("telegram", False)]
    assert "bot token is wrong" in results[1].detail
    hook, telegram = receiver.received
    assert hook.body["kind"] == "test" and str(telegram.body["text"]).startswith("risk-manager test\n")


def test_config_errors_name_the_key_and_what_is_allowed() -> None:
    with pytest.raises(NotificationConfigError) as missing:
        load_notifications({"channels": [{"type": "telegram", "bot_token": "${NOPE_TOKEN}", "chat_id": 1}]},
                           source="/etc/risk-manager/config.yaml", env={})
    text = str(missing.value)
    assert "/etc/risk-manager/config.yaml" in text and "notifications.channels.0.telegram.bot_token" in text
    assert "NOPE_TOKEN is not set" in text

    with pytest.raises(NotificationConfigError, match=r"notifications\.channels\.0\.webhook\.urll"):
        load_notifications({"channels": [{"type": "webhook", "urll": "https://x.example/hook"}]})
    with pytest.raises(NotificationConfigError, match="'enforcement', 'lock'"):
        load_notifications({"channels": [{"type": "webhook", "url": "https://x.example/hook",
                                          "kinds": ["everything"]}]})
    with pytest.raises(NotificationConfigError, match="must be an http"):
        load_notifications({"channels": [{"type": "discord", "url": "discord.com/api/webhooks/1/secret-ish"}]})
    with pytest.raises(NotificationConfigError, match="duration like"):
        load_notifications({"disconnect_after": "soon"})
    with pytest.raises(NotificationConfigError, match="chat id is a number"):
        load_notifications({"channels": [{"type": "telegram", "bot_token": TOKEN, "chat_id": "my group"}]})
    with pytest.raises(NotificationConfigError, match="both called 'discord'"):
        load_notifications({"channels": [{"type": "discord", "url": "https://one.example/hook-1"},
                                          {"type": "discord", "url": "https://two.example/hook-2"}]})
    with pytest.raises(NotificationConfigError, match="expected tags: 'webhook', 'discord', 'telegram'"):
        load_notifications({"channels": [{"type": "email", "url": "https://x.example/hook"}]})


def test_secret_values_never_appear_in_repr_or_errors() -> None:
    config = load_notifications({"channels": [{"type": "telegram", "bot_token": TOKEN, "chat_id": 5}]})
    assert TOKEN not in repr(config) and TOKEN not in str(config.model_dump())
    with pytest.raises(NotificationConfigError) as bad:
        load_notifications({"channels": [{"type": "telegram", "bot_token": "no-colon-secret", "chat_id": 5}]})
    assert "no-colon-secret" not in str(bad.value)


async def test_disconnect_watch_alerts_only_after_the_threshold(receiver: Receiver) -> None:
    config = load_notifications({"channels": [{"type": "webhook", "url": f"{receiver.base}/d"}],
                                 "disconnect_after": "100ms"})
    async with Notifier(config) as notifier:
        watch = DisconnectWatch(notifier)
        watch.lost("user hub", account="PRAC-1")
        await asyncio.sleep(0.02)
        watch.restored("user hub")  # a blip: nothing
        watch.lost("market hub", reason="connection reset")
        watch.lost("market hub")  # already down: keeps the first time
        await receiver.wait_for(1)
        watch.restored("market hub")
        await receiver.wait_for(2)
        watch.close()
    first, second = (r.body for r in receiver.received)
    assert first["kind"] == "disconnect" and first["severity"] == "critical"
    assert first["message"] == ("market hub disconnected for more than 100ms (connection reset); "
                                "protection is degraded until it reconnects")
    assert second["message"] == "market hub reconnected after 0s" and second["severity"] == "info"


async def test_disabled_section_sends_nothing(receiver: Receiver) -> None:
    config = load_notifications({"enabled": False, "channels": [{"type": "webhook", "url": f"{receiver.base}/z"}]})
    async with Notifier(config) as notifier:
        notifier.notify(NOTE)
        await asyncio.sleep(0.05)
    assert receiver.received == [] and notifier.stats == {}
