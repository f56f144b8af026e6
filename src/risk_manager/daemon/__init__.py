"""The daemon: the composition root (docs/daemon.md).

```python
from risk_manager.daemon import Daemon, DaemonOptions, load_config_dir

config = load_config_dir(Path("cfg"))           # config.yaml + accounts.yaml + risk file; DaemonConfigError
daemon = Daemon(DaemonOptions.from_config(config))
await daemon.start()                             # config → token → limiter/breaker → store → accounts →
                                                 # engines restored → enforcers resumed → hubs → reconcile
daemon.status(); daemon.subscribe_status(cb); daemon.subscribe_activity(cb); daemon.stale
await daemon.idle(); daemon.next_deadline(); await daemon.on_clock_advanced()   # virtual clock
await daemon.aclose(timeout_s=5.0)
```
"""

from risk_manager.daemon.config_dir import (
    AccountSpec,
    Credential,
    DaemonConfig,
    DaemonConfigError,
    load_config_dir,
)
from risk_manager.daemon.daemon import AlertRecord, Daemon, DaemonOptions, DaemonStartError, DaemonStats

__all__ = [
    "AccountSpec",
    "AlertRecord",
    "Credential",
    "Daemon",
    "DaemonConfig",
    "DaemonConfigError",
    "DaemonOptions",
    "DaemonStartError",
    "DaemonStats",
    "load_config_dir",
]
