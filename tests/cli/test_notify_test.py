"""`risk-manager admin notify-test` against a local receiver on 127.0.0.1: every channel is tried, the
result is printed per channel, and no URL token, bot token or header secret ever reaches the output."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from risk_manager.cli import admin_cmd
from risk_manager.cli.app import app
from risk_manager.logs import StructuredFormatter
from risk_manager.security.admin_directory import AdminDirectory
from risk_manager.security.paths import AdminPaths
from tests.notify.receiver import running_receiver
from tests.security.conftest import ADMIN_PW

runner = CliRunner()
HOOK_TOKEN = "hookSecret9f3a7Qz"
BOT_TOKEN = "123456789:AAbotSecretTokenXYZ"
BEARER = "bearerSecret77"
SECRETS = (HOOK_TOKEN, BOT_TOKEN, BEARER)


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admin_cmd, "configure_logging", lambda *args, **kwargs: None)
    monkeypatch.setenv("RM_TEST_HOOK_TOKEN", HOOK_TOKEN)
    monkeypatch.setenv("RM_TEST_BOT_TOKEN", BOT_TOKEN)


def config_yaml(base: str, *, enabled: bool = True) -> str:
    return f"""\
api: {{url: http://127.0.0.1:1}}
notifications:
  enabled: {str(enabled).lower()}
  backoff_base: 10ms
  channels:
    - type: webhook
      name: ops-pager
      url: {base}/hooks/${{RM_TEST_HOOK_TOKEN}}
      headers: {{Authorization: "Bearer {BEARER}"}}
    - type: discord
      url: {base}/api/webhooks/42/${{RM_TEST_HOOK_TOKEN}}
    - type: telegram
      bot_token: ${{RM_TEST_BOT_TOKEN}}
      chat_id: "-1001234567890"
      api_base: {base}
"""


async def notify_test(config: Path, stdin: str = f"{ADMIN_PW}\n") -> Result:
    # In a worker thread: the command runs its own event loop while the receiver serves on this one.
    return await asyncio.to_thread(runner.invoke, app, ["admin", "notify-test", "--config", str(config),
                                                        "--password-stdin"], input=stdin)


def assert_no_secret(result: Result) -> None:
    for secret in SECRETS:
        assert secret not in result.output


async def test_every_channel_gets_a_test_and_the_output_has_no_secret(admin_dir: Path,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_receiver() as receiver:
        (admin_dir / "config.yaml").write_text(config_yaml(receiver.base))
        receiver.script = [(200, {}, None), (404, {}, {"message": "Unknown Webhook"})]
        result = await notify_test(admin_dir)
    assert result.exit_code == 4, result.output  # one channel failed
    lines = [line for line in result.stdout.splitlines() if "│" in line]
    assert any("ops-pager" in line and "ok" in line and "delivered" in line for line in lines), result.stdout
    assert any("discord" in line and "failed" in line and "HTTP 404: Unknown Webhook" in line for line in lines)
    assert any("telegram" in line and "ok" in line for line in lines)
    assert_no_secret(result)
    formatted = "\n".join(StructuredFormatter().format(record) for record in caplog.records)
    assert "notification_test channel=discord ok=False" in formatted
    assert HOOK_TOKEN in caplog.text  # httpx logs request URLs: the raw record has the token ...
    assert not [s for s in SECRETS if s in formatted]  # ... and the project's formatter masks it
    hook, discord, telegram = receiver.received
    assert hook.path == f"/hooks/{HOOK_TOKEN}" and hook.headers["Authorization"] == f"Bearer {BEARER}"
    assert hook.body["kind"] == "test" and hook.body["source"] == "risk-manager"
    assert discord.path == f"/api/webhooks/42/{HOOK_TOKEN}" and "embeds" in discord.body
    assert telegram.path == f"/bot{BOT_TOKEN}/sendMessage" and telegram.body["chat_id"] == "-1001234567890"
    assert any(e.what == "notify.test" for e in AdminDirectory(AdminPaths(admin_dir)).audit.entries())


async def test_all_delivered_is_exit_0_and_a_dead_receiver_names_no_secret(admin_dir: Path) -> None:
    async with running_receiver() as receiver:
        (admin_dir / "config.yaml").write_text(config_yaml(receiver.base, enabled=False))
        result = await notify_test(admin_dir)
    assert result.exit_code == 0, result.output
    assert "notifications.enabled is false" in result.stderr and len(receiver.received) == 3

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
    (admin_dir / "config.yaml").write_text(config_yaml(dead))
    result = await notify_test(admin_dir)
    assert result.exit_code == 4
    assert result.stdout.count("network error ConnectError") == 3, result.stdout
    assert_no_secret(result)


async def test_refusals(admin_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = await notify_test(admin_dir, "wrong-password\n")
    assert result.exit_code == 3 and "wrong admin password" in result.stderr

    result = await notify_test(admin_dir)
    assert result.exit_code == 1 and "no notification channels in" in result.stderr

    monkeypatch.delenv("RM_TEST_BOT_TOKEN")
    (admin_dir / "config.yaml").write_text(config_yaml("http://127.0.0.1:9"))
    result = await notify_test(admin_dir)
    assert result.exit_code == 1
    assert "notifications.channels.2.telegram.bot_token" in result.stderr and "RM_TEST_BOT_TOKEN" in result.stderr
    assert_no_secret(result)

    (admin_dir / "config.yaml").write_text("notifications: [oops]\n")
    result = await notify_test(admin_dir)
    assert result.exit_code == 1 and "notifications: must be a mapping" in result.stderr
