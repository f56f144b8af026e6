"""The benchmark harness behind `risk-manager bench`.

Benchmarks are not tests. Each lives in `bench/<name>.py` at the project root and defines

    DESCRIPTION = "one line"
    def run(progress: Progress) -> list[Figure]: ...

`risk-manager bench [NAME…] [--json FILE] [--compare FILE]` runs them, prints a table per
benchmark and writes JSON (figures + machine description + git commit) to `bench/results/` and,
with `--json`, to FILE. Figures are medians or percentiles of repeated measurements, never a
single timing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured figure. `target` with `better` ("lower"/"higher") says whether it is met."""

    name: str
    value: float
    unit: str
    target: float | None = None
    better: str = "lower"
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.value <= self.target if self.better == "lower" else self.value >= self.target


Progress = Callable[[str], None]


def percentile(samples: Sequence[float], pct: float) -> float:
    """The `pct` percentile (0–100) of `samples`, nearest-rank."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(pct / 100.0 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def machine_description() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
    }


def git_commit(root: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def find_bench_dir(start: Path | None = None) -> Path:
    """The project's `bench/` directory: from `start` (default: cwd) upwards, then next to the package."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "bench").is_dir() and (candidate / "pyproject.toml").is_file():
            return candidate / "bench"
    package_root = Path(__file__).resolve().parents[2]
    if (package_root / "bench").is_dir():
        return package_root / "bench"
    raise FileNotFoundError(
        "no bench/ directory found: run `risk-manager bench` from the project checkout (benchmarks are "
        "not installed with the package)")


def available(bench_dir: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(bench_dir.glob("*.py")) if not p.stem.startswith("_")}


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"risk_manager_bench_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load benchmark {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "run", None)):
        raise ImportError(f"benchmark {path} has no run(progress) function")
    return module


def result_document(results: dict[str, list[Figure]], root: Path) -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_description(),
        "commit": git_commit(root),
        "benchmarks": {name: [asdict(f) | {"met": f.met} for f in figs] for name, figs in results.items()},
    }


def write_json(document: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def compare(document: dict[str, Any], baseline: dict[str, Any]) -> list[tuple[str, str, float, float, float]]:
    """(benchmark, figure, value, baseline value, ratio) for every figure present in both."""
    rows = []
    base = baseline.get("benchmarks", {})
    for bench, figures in document.get("benchmarks", {}).items():
        old = {f["name"]: f for f in base.get(bench, [])}
        for fig in figures:
            if fig["name"] in old and old[fig["name"]]["value"]:
                b = float(old[fig["name"]]["value"])
                rows.append((bench, fig["name"], float(fig["value"]), b, float(fig["value"]) / b))
    return rows
