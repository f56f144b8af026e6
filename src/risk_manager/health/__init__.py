"""The daemon's local health endpoint (liveness, readiness) and its Prometheus metrics.

```python
metrics = Metrics()                                  # its own CollectorRegistry
board = ReadinessBoard(metrics)                      # the `ready` callable
board.watch_hub(client.user_hub)                     # "user hub"
board.add_account("PRAC-1", ["user hub"]); board.set_fresh("PRAC-1", True)
tasks = LivenessMonitor(); tasks.watch(worker_task)  # the `live` callable
async with HealthServer("127.0.0.1", 8766, live=tasks, ready=board, metrics=metrics,
                        live_reasons=tasks.reasons):
    ...
```
"""

from risk_manager.health.config import (
    DEFAULT_PORT,
    ConfigFileError,
    HealthConfig,
    HealthConfigError,
    load_health_config,
    read_config_section,
    read_health_config,
)
from risk_manager.health.metrics import DisabledMetrics, Metrics
from risk_manager.health.probe import ReadinessProbe, probe_ready
from risk_manager.health.readiness import LivenessMonitor, ReadinessBoard, ReadyState
from risk_manager.health.server import HealthServer, HealthServerError

__all__ = [
    "DEFAULT_PORT",
    "ConfigFileError",
    "DisabledMetrics",
    "HealthConfig",
    "HealthConfigError",
    "HealthServer",
    "HealthServerError",
    "LivenessMonitor",
    "Metrics",
    "ReadinessBoard",
    "ReadinessProbe",
    "ReadyState",
    "load_health_config",
    "probe_ready",
    "read_config_section",
    "read_health_config",
]
