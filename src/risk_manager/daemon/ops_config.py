"""The operations sections of `config.yaml`: `health:`, `notifications:`, `logging.files:` and `dashboard:`.

```yaml
health: {enabled: true, host: 127.0.0.1, port: 8766, metrics: false}
notifications: {enabled: true, disconnect_after: 30s, channels: [...]}     # docs/operations.md
logging: {level: INFO, files: {enabled: true, retention_days: 14, level: INFO}}
dashboard: {enabled: true, host: 127.0.0.1, port: 8765, token_file: <data dir>/dashboard.token}
```

The models are the ones of the modules that use them (`HealthConfig`, `NotificationsConfig`,
`LogFilesConfig`); they are validated together with the rest of the configuration directory by
`load_config_dir`, so an error names `config.yaml` and the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from risk_manager.broadcast.server import DEFAULT_PORT as DASHBOARD_PORT
from risk_manager.broadcast.server import TOKEN_FILE_NAME
from risk_manager.health import HealthConfig
from risk_manager.health.config import check_loopback
from risk_manager.notify import NotificationsConfig
from risk_manager.service.logfiles import LogFilesConfig
from risk_manager.service.paths import ServiceMode, data_dir


class DashboardConfig(BaseModel):
    """`dashboard:`: the broadcast channel `risk-manager status` connects to (docs/dashboard.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(DASHBOARD_PORT, ge=0, le=65535)  # 0: any free port (tests)
    token_file: Path | None = None  # default: <data dir>/dashboard.token (where `status` looks for it)
    # A system service runs as its own user: 0640 lets the traders in its group read the token (else 0600).
    group_readable: bool = False

    @property
    def token_mode(self) -> int:
        return 0o640 if self.group_readable else 0o600

    @field_validator("host")
    @classmethod
    def _loopback(cls, value: str) -> str:
        try:
            return check_loopback(value)
        except ValueError:
            raise ValueError(f"must be a loopback address (127.0.0.1, ::1 or localhost), got {value!r}: the "
                             "dashboard channel is never exposed to the network") from None

    def token_path(self, config_dir: Path) -> Path:
        """The token file: as configured (relative to the config directory), else `<data dir>/dashboard.token`."""
        if self.token_file is None:
            return data_dir(ServiceMode.USER) / TOKEN_FILE_NAME
        path = self.token_file.expanduser()
        return path if path.is_absolute() else config_dir / path


@dataclass(frozen=True, slots=True)
class OpsConfig:
    """Everything `risk-manager run` serves besides protection itself."""

    health: HealthConfig = field(default_factory=lambda: HealthConfig.model_validate({}))
    notifications: NotificationsConfig = field(default_factory=NotificationsConfig)
    log_files: LogFilesConfig = field(default_factory=LogFilesConfig)
    dashboard: DashboardConfig = field(default_factory=lambda: DashboardConfig.model_validate({}))
