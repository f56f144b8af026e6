"""Scenario replays: the scenario format (`scenario.py`), the runner (`runner.py`) and its report (`report.py`).

```python
from risk_manager.replay import load_scenario, replay
result = await replay(load_scenario(Path("scenarios/rule-03-daily-loss-breach.yaml")), check=True)
result.report      # the JSON document of scenarios.md; render_table(result.report) for the readable form
result.problems    # `expect:` mismatches (check=True)
```
"""

from risk_manager.replay.report import build_report, render_table
from risk_manager.replay.runner import ReplayError, ReplayResult, ReplayRunner, replay, scenario_risk
from risk_manager.replay.scenario import Scenario, ScenarioError, Step, load_scenario, parse_scenario

__all__ = [
    "ReplayError",
    "ReplayResult",
    "ReplayRunner",
    "Scenario",
    "ScenarioError",
    "Step",
    "build_report",
    "load_scenario",
    "parse_scenario",
    "render_table",
    "replay",
    "scenario_risk",
]
