"""docs/render_dashboard.py keeps working: the README's screenshot is the app's own rendering of a breach."""

from __future__ import annotations

import html
import importlib.util
import re
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "render_dashboard.py"


def svg_text(svg: str) -> str:
    """The text of the SVG's <text> elements, in order."""
    return "".join(html.unescape(m) for m in re.findall(r"<text[^>]*>(.*?)</text>", svg)).replace("\xa0", " ")


async def test_the_screenshot_shows_the_breach() -> None:
    spec = importlib.util.spec_from_file_location("render_dashboard", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    svg = await module.render()
    assert svg.startswith("<svg")
    text = svg_text(svg)
    for expected in ("LOCKED until_reset", "RULE-003", "realized -$600.00", "flatten_account", "ends in 8h 00m"):
        assert expected in text, expected
