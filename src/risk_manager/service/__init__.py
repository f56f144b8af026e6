"""Running as a service: platform directories, rotating log files, systemd (Linux), the Windows service, sd_notify.

Linux: `risk_manager.service.systemd` (`render_unit`, `install`, `uninstall`, `start`, `stop`, `status`).
Windows: `risk_manager.service.windows` (same verbs; needs the `windows` extra).
"""

from risk_manager.service.logfiles import LogFiles, LogFilesConfig, install_log_files
from risk_manager.service.paths import ServiceMode, config_dir, data_dir, log_dir
from risk_manager.service.sdnotify import SdNotify, run_watchdog, watchdog_interval
from risk_manager.service.status import ServiceError, ServiceStatus

__all__ = [
    "LogFiles",
    "LogFilesConfig",
    "SdNotify",
    "ServiceError",
    "ServiceMode",
    "ServiceStatus",
    "config_dir",
    "data_dir",
    "install_log_files",
    "log_dir",
    "run_watchdog",
    "watchdog_interval",
]
