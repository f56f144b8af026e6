"""`risk-manager status --json / --watch / --schema` as a trader's shell runs them (a real process)."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from risk_manager.broadcast import Snapshot, ensure_token_file, json_schema
from risk_manager.cli.app import app
from risk_manager.cli.status_cmd import account_lines
from tests.broadcast.desk import Desk


@pytest.fixture
async def desk(tmp_path: Path) -> AsyncIterator[Desk]:
    d = await Desk(tmp_path / "dashboard.token").start()
    yield d
    await d.server.aclose()


async def run_cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "risk_manager", "status", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_json_prints_one_snapshot_valid_against_the_schema(desk: Desk) -> None:
    desk.open_long(2)
    desk.lose(-600.0)
    desk.publish()
    code, out, err = await run_cli("--json", "--url", desk.url, "--token-file", str(desk.server.token_file))
    assert code == 0, err
    data = json.loads(out)
    jsonschema.validate(data, json_schema())
    assert data["v"] == 1 and data["source"] == "daemon"
    assert data["accounts"]["1001"]["locks"][0]["rules"] == ["RULE-003"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_json_when_the_daemon_is_unreachable(tmp_path: Path) -> None:
    token = tmp_path / "dashboard.token"
    ensure_token_file(token)
    url = f"ws://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(app, ["status", "--json", "--url", url, "--token-file", str(token)])
    assert result.exit_code == 1 and result.stdout == ""
    assert f"error: no daemon answers at {url}" in result.stderr and "risk-manager run" in result.stderr


def test_json_with_a_missing_token_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["status", "--json", "--token-file", str(tmp_path / "nope")])
    assert result.exit_code == 1 and "does not exist: start the daemon once" in result.stderr


def test_schema_option_prints_the_schema() -> None:
    result = CliRunner().invoke(app, ["status", "--schema"])
    assert result.exit_code == 0 and json.loads(result.stdout) == json.loads(json.dumps(json_schema()))


async def test_watch_prints_a_line_per_change(desk: Desk) -> None:
    desk.open_long(2)
    desk.publish()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "risk_manager", "status", "--watch", "--url", desk.url,
        "--token-file", str(desk.server.token_file), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert " 1001 connected fresh pos=2 " in first and "locks=-" in first
        desk.lose(-600.0)
        desk.publish()
        line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
        assert "realized=-$600.00" in line and "locks=until_reset(RULE-003) 8h 00m 00s" in line
        actions = [(await asyncio.wait_for(proc.stdout.readline(), 10)).decode() for _ in range(3)]
        assert all(" 1001 ACTION " in a and "RULE-003 done" in a for a in actions)
    finally:
        proc.terminate()
        await proc.wait()


def test_account_lines_only_for_changes(tmp_path: Path) -> None:
    d = Desk(tmp_path / "t")
    d.accounts = [1001, 2002]
    one = Snapshot.model_validate(d.snapshot())
    assert len(account_lines(None, one)) == 2
    assert account_lines(one, one) == []
    d.lose(-100.0)
    two = Snapshot.model_validate(d.snapshot())
    [line] = account_lines(one, two)
    assert " 1001 " in line and "realized=-$100.00" in line
