"""`risk-manager sim serve` and the accounts file."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from risk_manager.cli.app import app
from risk_manager.sim import SimAccount, SimConfig, SimConfigError, SimUser, parse_accounts, parse_duration


def test_serve_logs_urls_answers_and_stops_on_sigterm(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text("users:\n  - {userName: alice, apiKey: alice-key-1, accounts: [7]}\n"
                        "accounts:\n  - {id: 7, name: PRAC-7, balance: 1000, canTrade: false}\n")
    proc = subprocess.Popen([sys.executable, "-m", "risk_manager", "sim", "serve", "--port", "0", "--accounts",
                             str(accounts), "--feed", "scripted"], stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 20
        url = None
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            match = re.search(r"sim_started rest=(\S+)/api user_hub=(\S+) market_hub=(\S+)", line)
            if match:
                url = match.group(1)
        assert url is not None, "no sim_started line"
        with httpx.Client(base_url=url) as client:
            assert client.get("/api/Status/ping").json() == "pong"
            login = client.post("/api/Auth/loginKey", json={"userName": "alice", "apiKey": "alice-key-1"})
            token = login.json()["token"]
            accounts_found = client.post("/api/Account/search", json={"onlyActiveAccounts": True},
                                         headers={"Authorization": f"Bearer {token}"}).json()["accounts"]
            assert accounts_found == [{"id": 7, "name": "PRAC-7", "balance": 1000.0, "canTrade": False,
                                       "isVisible": True, "simulated": True}]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        rest = proc.stderr.read()
        assert "sim_stopped" in rest and "Traceback" not in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(("content", "message"), [
    ("accounts:\n  - {id: 1, name: A, cantrade: true}\n", "accounts[0].cantrade: unknown key"),
    ("accounts:\n  - {id: x, name: A}\n", "accounts[0].id"),
    ("accounts: [{id: 1, name: A}, {id: 1, name: B}]\n", "unique"),
    ("users:\n  - {userName: u, apiKey: k, accounts: [9]}\n", "users[0].accounts: unknown account id(s) [9]"),
    ("- just a list\n", "expected a mapping"),
    ("accounts: [\n", "not valid YAML"),
])
def test_bad_accounts_file_exits_2_naming_file_and_key(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    result = CliRunner().invoke(app, ["sim", "serve", "--accounts", str(path)])
    assert result.exit_code == 2
    assert str(path) in result.output and message in result.output


def test_bad_options_exit_2() -> None:
    result = CliRunner().invoke(app, ["sim", "serve", "--token-lifetime", "forever"])
    assert result.exit_code == 2 and "--token-lifetime" in result.output
    result = CliRunner().invoke(app, ["sim", "serve", "--feed", "csv"])
    assert result.exit_code == 2 and "--feed" in result.output


def test_parse_accounts_defaults_and_values() -> None:
    accounts, users = parse_accounts(None, "x.yaml")
    assert accounts == [SimAccount(1001, "SIM-1001", 50_000.0, True)] and users == []
    accounts, users = parse_accounts({"users": [{"userName": "u", "apiKey": "k", "accounts": [5]}],
                                      "accounts": [{"id": 5, "name": "A", "balance": 10, "canTrade": False}]}, "x")
    assert accounts == [SimAccount(5, "A", 10.0, False)] and users == [SimUser("u", "k", (5,))]


def test_parse_duration() -> None:
    assert parse_duration("500ms") == timedelta(milliseconds=500)
    assert parse_duration("24h") == timedelta(hours=24)
    assert parse_duration("5m") == timedelta(minutes=5)
    assert parse_duration(3) == timedelta(seconds=3)
    with pytest.raises(SimConfigError):
        parse_duration("-5s")


def test_config_validation() -> None:
    with pytest.raises(SimConfigError, match="quote_feed"):
        SimConfig(quote_feed="csv")  # type: ignore[arg-type]
    with pytest.raises(SimConfigError, match="unique"):
        SimConfig(accounts=[SimAccount(1, "a"), SimAccount(1, "b")])
    with pytest.raises(SimConfigError, match="unknown account"):
        SimConfig(users=[SimUser("u", "k", (5,))])
