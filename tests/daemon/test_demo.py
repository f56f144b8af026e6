"""`risk-manager demo --headless`: every scripted breach is enforced and the command exits 0."""

from __future__ import annotations

from typer.testing import CliRunner

from risk_manager.cli.app import app


def test_demo_headless_enforces_every_scripted_breach() -> None:
    result = CliRunner().invoke(app, ["demo", "--headless", "--speed", "8"])
    assert result.exit_code == 0, result.stdout
    out = result.stdout
    for title in ("oversize: 8 MNQ reduced to 5", "no stop: MES closed after the grace period",
                  "daily loss: locked until the reset and flattened", "trade while locked: position closed at once",
                  "order while locked: cancelled at once"):
        assert f"ENFORCED     {title}" in out
    assert "NOT ENFORCED" not in out
    assert "duplicate orders: 0" in out


def test_demo_refuses_a_bad_speed() -> None:
    result = CliRunner().invoke(app, ["demo", "--headless", "--speed", "0"])
    assert result.exit_code == 2
