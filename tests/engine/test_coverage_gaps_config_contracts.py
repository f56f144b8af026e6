"""Contract metadata and config-loading behaviour the earlier engine tests left out: contracts learned
at runtime (micro twins, bad tick data refused, unknown ids never guessed) and config errors inside
list items (the key path names the item; unknown keys list what is allowed there)."""

from __future__ import annotations

from pathlib import Path

import pytest

from risk_manager.domain import Contract, UnknownContractError
from risk_manager.engine.config_loader import load_risk_config, parse_risk_config, parse_rules_block
from risk_manager.engine.contracts import ContractBook
from risk_manager.engine.errors import ConfigError


def contract(cid: str, symbol: str, tick_size: float = 0.25, tick_value: float = 5.0) -> Contract:
    return Contract.from_wire({"id": cid, "name": symbol + "Z6", "description": symbol, "tickSize": tick_size,
                               "tickValue": tick_value, "activeContract": True, "symbolId": f"F.US.{symbol}"})


def test_contracts_learned_at_runtime() -> None:
    nq = contract("CON.F.US.NQ.Z26", "NQ")
    book = ContractBook({nq.id: nq})
    assert len(book) == 1 and nq.id in book and "CON.F.US.ES.Z26" not in book
    micro = book.register(contract("CON.F.US.MNQ.Z26", "MNQ", tick_value=0.5))
    assert (micro.symbol, micro.full_size, micro.tick_value) == ("MNQ", "NQ", 0.5)
    again = book.register(contract("CON.F.US.MNQ.Z26", "MNQ", tick_value=0.5))  # refreshed: keeps its twin
    assert again.full_size == "NQ"
    alone = ContractBook([contract("CON.F.US.MES.Z26", "MES", tick_value=1.25)])
    assert alone.get("CON.F.US.MES.Z26").full_size is None  # no ES known: not treated as a micro of anything
    assert alone.find("CON.F.US.XX.Z26") is None
    with pytest.raises(UnknownContractError):
        alone.get("CON.F.US.XX.Z26")
    with pytest.raises(ValueError, match=r"CON.F.US.BAD.Z26: tick size and tick value must be positive \(got 0"):
        ContractBook([contract("CON.F.US.BAD.Z26", "BAD", tick_size=0)])
    assert len(ContractBook()) == 0


def _load(tmp_path: Path, text: str) -> ConfigError:
    path = tmp_path / "risk.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_risk_config(path)
    return info.value


def test_errors_inside_list_items_name_the_item(tmp_path: Path) -> None:
    unknown = _load(tmp_path, "rules: {session_block_outside: {enabled: true, sessions: "
                              "[{start: '08:00', end: '15:00', colour: red}]}}")
    assert unknown.key_path == "rules.session_block_outside.sessions[0].colour"
    assert "unknown key; allowed here: days, end, start, timezone" in str(unknown)
    missing = _load(tmp_path, "rules: {session_block_outside: {enabled: true, sessions: [{start: '08:00'}]}}")
    assert missing.key_path == "rules.session_block_outside.sessions[0].end"
    assert "required key is missing" in str(missing)
    per_symbol = _load(tmp_path, "rules: {session_block_outside: {enabled: true, symbol_sessions: "
                                 "{ES: [{start: '08:00', end: '15:00', colour: red}]}}}")
    assert per_symbol.key_path == "rules.session_block_outside.symbol_sessions.ES[0].colour"
    assert "unknown key" in str(per_symbol)


def test_empty_documents_mean_defaults_and_wrong_shapes_are_named() -> None:
    assert parse_risk_config(None).timezone == "America/Chicago"
    assert not parse_rules_block(None).rules.daily_realized_loss.enabled
    with pytest.raises(ConfigError, match="expected a mapping of rule blocks, got list") as info:
        parse_rules_block(["daily_realized_loss"], file="scenario.yaml")
    assert info.value.key_path == "rules" and info.value.file == "scenario.yaml"
