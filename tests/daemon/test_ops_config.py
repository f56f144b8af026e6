"""config.yaml's operations sections (health, notifications, logging.files, dashboard): validated with the rest,
errors naming the file and the key; the `init` template's commented block is valid once uncommented."""

from __future__ import annotations

from pathlib import Path

import pytest

from risk_manager.daemon.config_dir import DaemonConfigError, load_config_dir
from risk_manager.daemon.config_templates import write_example_config
from risk_manager.daemon.gateway_target import SimulatorEnvironment

ENV = {"RISK_DISCORD_WEBHOOK": "https://discord.com/api/webhooks/1/abc", "RISK_TELEGRAM_TOKEN": "123:AA",
       "TOPSTEPX_USER": "user", "TOPSTEPX_API_KEY": "key"}


def uncommented_operations(template: str) -> str:
    """The template with its operations block (health, dashboard, notifications) uncommented."""
    head, _, block = template.partition("# --- operations")
    lines = []
    for line in block.splitlines()[1:]:
        if line.startswith("# logging.files"):
            break
        if line.startswith("# "):
            lines.append(line[2:])
    return head + "\n".join(lines) + "\n"


def test_defaults_and_the_template_block(tmp_path: Path) -> None:
    write_example_config(tmp_path)
    defaults = load_config_dir(tmp_path, ENV).ops
    assert defaults.health.port == 8766 and not defaults.health.metrics
    assert defaults.dashboard.enabled and defaults.dashboard.port == 8765
    assert defaults.log_files.enabled and not defaults.notifications.channels
    config = tmp_path / "config.yaml"
    config.write_text(uncommented_operations(config.read_text()))
    ops = load_config_dir(tmp_path, ENV).ops
    assert [c.type for c in ops.notifications.channels] == ["discord", "telegram", "webhook"]
    assert ops.dashboard.token_path(tmp_path) == Path("~/.local/state/risk-manager/dashboard.token").expanduser()
    assert ops.dashboard.token_mode == 0o600
    config.write_text(config.read_text().replace("  group_readable: false", "  group_readable: true"))
    assert load_config_dir(tmp_path, ENV).ops.dashboard.token_mode == 0o640
    config.write_text(config.read_text().replace("level: INFO  ", "level: INFO\n  files: {retention_days: 3}\n  ", 1))
    assert load_config_dir(tmp_path, ENV).ops.log_files.retention_days == 3


@pytest.mark.parametrize(("extra", "key", "allowed"), [
    ("health: {port: 70000}", "health.port", "less than or equal to 65535"),
    ("health: {host: 0.0.0.0}", "health.host", "loopback"),
    ("dashboard: {host: 192.168.1.4}", "dashboard.host", "dashboard channel is never exposed"),
    ("dashboard: {tokenfile: x}", "dashboard.tokenfile", "unknown key"),
    ("notifications: {channels: [{type: webhook, url: 'ftp://x'}]}", "notifications.channels[0].webhook.url",
     "http(s) URL"),
    ("notifications: {channels: [{type: telegram, bot_token: '${NOPE_UNSET}', chat_id: 1}]}",
     "notifications.channels[0].bot_token", "NOPE_UNSET is not set"),
])
def test_bad_values_name_the_file_and_key(tmp_path: Path, extra: str, key: str, allowed: str) -> None:
    write_example_config(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(config.read_text() + extra + "\n")
    with pytest.raises(DaemonConfigError) as caught:
        load_config_dir(tmp_path, {**ENV, **SimulatorEnvironment()})
    assert caught.value.file == str(config)
    assert caught.value.key == key
    assert allowed in caught.value.message
