"""ReadinessBoard: what is named when not ready; config of the endpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from risk_manager.health import (
    ConfigFileError,
    HealthConfigError,
    ReadinessBoard,
    load_health_config,
    read_health_config,
)


def test_accounts_need_their_hubs_and_a_fresh_state() -> None:
    board = ReadinessBoard()
    board.set_hub("user hub", "connected")
    board.set_hub("market hub", "connected")
    board.add_account("PRAC-1", ["user hub", "market hub"])
    board.add_account("EVAL-2", ["user hub"])
    state = board()
    assert not state.ready
    assert state.reasons == ["account PRAC-1: waiting for the first reconciliation",
                             "account EVAL-2: waiting for the first reconciliation"]
    board.set_fresh("PRAC-1", True)
    board.set_fresh("EVAL-2", True)
    assert board().ready and board().reasons == []
    board.set_hub("market hub", "reconnecting")
    board.set_fresh("PRAC-1", False, "reconciling after a gap")
    state = board()
    assert state.reasons == ["account PRAC-1: market hub is reconnecting; reconciling after a gap"]
    assert state.accounts["EVAL-2"]["ready"] is True
    assert state.accounts["PRAC-1"]["hubs"] == {"user hub": "connected", "market hub": "reconnecting"}
    assert state.hubs == {"user hub": "connected", "market hub": "reconnecting"}
    board.remove_account("PRAC-1")
    assert board().reasons == ["market hub is reconnecting (for 0.0 s)"]


def test_board_refusals() -> None:
    board = ReadinessBoard()
    with pytest.raises(ValueError, match="not watched yet: user hub"):
        board.add_account("PRAC-1", ["user hub"])
    with pytest.raises(KeyError, match="add_account"):
        board.set_fresh("PRAC-1", True)


def test_health_config(tmp_path: Path) -> None:
    assert read_health_config(tmp_path).port == 8766  # no config.yaml: defaults
    (tmp_path / "config.yaml").write_text("health:\n  port: 9100\n  metrics: true\napi: {}\n")
    config = read_health_config(tmp_path)
    assert (config.port, config.metrics, config.host, config.enabled) == (9100, True, "127.0.0.1", True)
    with pytest.raises(HealthConfigError, match=r"health\.host: Value error, must be a loopback address"):
        load_health_config({"host": "0.0.0.0"}, source="c.yaml")
    with pytest.raises(HealthConfigError, match=r"c\.yaml: health\.prot: Extra inputs are not permitted"):
        load_health_config({"prot": 1}, source="c.yaml")
    (tmp_path / "config.yaml").write_text("health: [1]\n")
    with pytest.raises(ConfigFileError, match="health: must be a mapping"):
        read_health_config(tmp_path)
    (tmp_path / "config.yaml").write_text("health: {port: [\n")
    with pytest.raises(ConfigFileError, match="not valid YAML"):
        read_health_config(tmp_path)
