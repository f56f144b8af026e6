"""`risk-manager run`: --sim end to end in a subprocess (start, protect, SIGTERM → exit 0); exit 2 on bad input."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from risk_manager.cli.app import app
from risk_manager.daemon.config_templates import write_example_config


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_run_sim_protects_then_stops_on_sigterm(tmp_path: Path) -> None:
    config = tmp_path / "cfg"
    write_example_config(config)
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "risk_manager", "run", "--config", str(config), "--sim"],
                                   stdout=out, stderr=out)
        try:
            deadline = time.monotonic() + 20
            while "daemon_protecting" not in log.read_text():
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            process.send_signal(signal.SIGTERM)
            assert process.wait(6) == 0
        finally:
            if process.poll() is None:
                process.kill()
    text = log.read_text()
    assert "protecting 1 account(s)" in text and "daemon_stopped" in text
    assert (config / "state" / "risk.db").exists()


def test_run_refuses_bad_input(tmp_path: Path) -> None:
    config = tmp_path / "cfg"
    write_example_config(config)
    both = CliRunner().invoke(app, ["run", "--config", str(config), "--sim", "--gateway", "http://127.0.0.1:1"])
    assert both.exit_code == 2
    (config / "risk.yaml").write_text("rules: {max_contracts: {enabled: true, limit: -1}}\n")
    bad = CliRunner().invoke(app, ["run", "--config", str(config), "--sim"])
    assert bad.exit_code == 2
    assert "risk.yaml: rules.max_contracts.limit" in bad.stderr
