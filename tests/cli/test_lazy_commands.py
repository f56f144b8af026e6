"""`risk-manager` imports a command's module only when that command runs (the daemon's memory bar)."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from risk_manager.cli.app import COMMANDS, app

PROBE = """
import sys
from typer.testing import CliRunner
from risk_manager.cli.app import app
result = CliRunner().invoke(app, [{args}])
assert result.exit_code == 0, result.output
print(",".join(sorted(m for m in sys.modules if m.split(".")[0] in ("aiohttp", "argon2", "textual")
                      or m.startswith(("risk_manager.sim", "risk_manager.cli.")))))
"""


def _modules_after(*args: str) -> set[str]:
    code = PROBE.format(args=", ".join(repr(a) for a in args))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return set(filter(None, out.stdout.strip().split(",")))


def test_run_loads_neither_the_simulator_nor_aiohttp_nor_the_dashboard_app() -> None:
    # argon2 may load: the daemon opens the credential vault (docs/security.md).
    loaded = _modules_after("run", "--help")
    assert "risk_manager.cli.run_cmd" in loaded
    assert not {m for m in loaded if m.startswith(("aiohttp", "textual", "risk_manager.sim"))}, loaded
    assert not {m for m in loaded if m.startswith("risk_manager.cli.") and m not in
                ("risk_manager.cli.app", "risk_manager.cli.run_cmd")}, loaded


def test_help_still_lists_every_command() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output
