"""Scenario replays: the scenario format (`scenario.py`) and, later, the runner and its report."""

from risk_manager.replay.scenario import Scenario, ScenarioError, Step, load_scenario, parse_scenario

__all__ = ["Scenario", "ScenarioError", "Step", "load_scenario", "parse_scenario"]
