"""docs/configuration.md is generated from the schema: the committed file must match it."""

from __future__ import annotations

from pathlib import Path

from risk_manager.engine.config import RulesConfig
from risk_manager.engine.config_docs import render_configuration_reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_committed_reference_matches_the_schema() -> None:
    assert DOC.read_text(encoding="utf-8") == render_configuration_reference(), (
        "docs/configuration.md is out of date: run `risk-manager config docs > docs/configuration.md`")


def test_reference_names_every_rule_block_and_key() -> None:
    text = render_configuration_reference()
    for name, field in RulesConfig.model_fields.items():
        assert f"### `{name}`" in text
        model = field.annotation
        assert isinstance(model, type)
        for key in model.model_fields:  # type: ignore[attr-defined]
            assert f"| `{key}` |" in text
