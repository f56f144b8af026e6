"""Cost of the commitment-mode check (`loosenings`) and of one validated rules edit, in ms.

The daemon may call `loosenings(old, new)` on every live reload, which must apply within 1 s, so the
target is a tenth of that. A session change is the slow case: windows are compared minute by minute
over two reference weeks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from risk_manager.admin.loosening import loosenings
from risk_manager.admin.rules_file import RulesDocument, parse_value
from risk_manager.benchkit import Figure, Progress, median, percentile
from risk_manager.engine.config import RiskConfig

DESCRIPTION = "commitment-mode check (loosenings) and one validated rules edit, ms"

_RISK = """\
# rules
rules:
  daily_realized_loss: {enabled: true, loss_limit: 500}   # dollars
  max_contracts: {enabled: true, limit: 4}
  symbol_blocks: {enabled: true, blocked: [RTY, "CL*"]}
  session_block_outside:
    enabled: true
    sessions: [{start: "08:30", end: "15:00"}]
"""


def _ms(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1000


def _edit() -> None:
    document = RulesDocument(Path("risk.yaml"), _RISK)
    document.set("daily_realized_loss", "loss_limit", parse_value("400"))
    document.validated()
    document.render()


def run(progress: Progress) -> list[Figure]:
    base = RiskConfig.model_validate({"rules": {"daily_realized_loss": {"enabled": True, "loss_limit": 500}}})
    limit = RiskConfig.model_validate({"rules": {"daily_realized_loss": {"enabled": True, "loss_limit": 600}}})
    session = RiskConfig.model_validate({"rules": {"session_block_outside": {
        "sessions": [{"start": "08:00", "end": "16:00"}]}}})
    simple, sessions, edits = [], [], []
    for i in range(15):
        progress(f"round {i + 1}/15")
        simple.append(_ms(lambda: loosenings(base, limit), 200))
        sessions.append(_ms(lambda: loosenings(base, session), 3))
        edits.append(_ms(_edit, 20))
    return [
        Figure("loosenings, a limit change, median", median(simple), "ms", target=100.0),
        Figure("loosenings, a session change, median", median(sessions), "ms", target=100.0),
        Figure("loosenings, a session change, p95 of rounds", percentile(sessions, 95), "ms", target=100.0),
        Figure("edit: load + set + validate + render (no disk), median", median(edits), "ms"),
    ]
