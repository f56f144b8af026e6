"""The admin side of a running daemon: live reload, the admin inbox, the pid and status files.

```python
services = AdminServices(daemon, config, load=lambda: load_config_dir(config.directory))
await daemon.start(); services.start()
...
await services.aclose(); await daemon.aclose()
```

Everything the admin side exchanges with the daemon goes through files: the risk file and
accounts.yaml (live reload), `admin-inbox/` (lock/unlock) and `daemon.pid` / `daemon-status.json`
(daemon control), the last three in the daemon's state directory (`state_dir(config)`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from risk_manager.daemon.admin_inbox import AdminInbox
from risk_manager.daemon.config_dir import ACCOUNTS_FILE, DaemonConfig
from risk_manager.daemon.daemon import Daemon, DaemonStartError
from risk_manager.daemon.live_reload import LiveReload
from risk_manager.daemon.runtime_files import RuntimeFiles, pid_alive, read_pid


def state_dir(database_path: Path) -> Path:
    """The daemon's state directory: where its database is (`state/` in the config directory by default)."""
    return database_path.parent


class AdminServices:
    def __init__(self, daemon: Daemon, config: DaemonConfig, load: Callable[[], DaemonConfig]) -> None:
        directory = state_dir(config.database_path)
        self.reload = LiveReload(daemon, load, [config.risk_file, config.directory / ACCOUNTS_FILE])
        self.inbox = AdminInbox(daemon, directory)
        self.files = RuntimeFiles(daemon, directory)
        self._started = False

    def ensure_alone(self) -> None:
        """Before `daemon.start()`: refuse when another live daemon holds this state directory's pid file."""
        other = read_pid(self.files.state_dir)
        if other is not None and other != os.getpid() and pid_alive(other):
            raise DaemonStartError(f"another daemon (pid {other}) already protects the accounts of this config "
                                   "directory; stop it first (risk-manager admin daemon stop) or use another --config")

    def start(self) -> None:
        """After `daemon.start()`: commands queued while the daemon was down are applied at once."""
        self._started = True
        self.files.start()
        self.reload.start()
        self.inbox.start()

    async def aclose(self) -> None:
        if not self._started:
            return
        self._started = False
        await self.inbox.aclose()
        await self.reload.aclose()
        await self.files.aclose()


__all__ = ["AdminServices", "state_dir"]
