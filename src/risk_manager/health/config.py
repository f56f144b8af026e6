"""The `health:` section of `config.yaml`, and reading one section of that file.

```yaml
health:
  enabled: true        # the local HTTP endpoint (/health/live, /health/ready)
  host: 127.0.0.1      # loopback only: 127.0.0.1, ::1 or localhost
  port: 8766
  metrics: false       # also serve Prometheus text on /metrics
```
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

CONFIG_FILE = "config.yaml"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8766


class ConfigFileError(ValueError):
    """`config.yaml` cannot be read or a section of it is invalid; the message names the file and key."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


class HealthConfigError(ConfigFileError):
    """The `health:` section is invalid."""


def check_loopback(host: str) -> str:
    """`host` if it is a loopback address (or `localhost`); the endpoints are for this machine only."""
    if host == "localhost":
        return host
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"must be a loopback address (127.0.0.1, ::1 or localhost), got {host!r}: the health "
                         "and metrics endpoints are never exposed to the network")
    return host


class HealthConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    host: str = DEFAULT_HOST
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)  # 0: any free port (tests)
    metrics: bool = False

    @field_validator("host")
    @classmethod
    def _loopback(cls, value: str) -> str:
        return check_loopback(value)


def load_health_config(data: Mapping[str, Any] | None, *, source: str = "config") -> HealthConfig:
    """Validate a `health:` mapping; errors name the source, the key path and what is allowed."""
    try:
        return HealthConfig.model_validate(data or {})
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in ('health', *e['loc']))}: {e['msg']}"
                    for e in exc.errors(include_url=False, include_input=False)]
        raise HealthConfigError(source, problems) from None


def read_config_section(config_dir: Path, key: str) -> tuple[Mapping[str, Any] | None, str]:
    """The `key:` mapping of `<config_dir>/config.yaml` (None when the file or the key is absent), and the
    file's path for messages. An unreadable or malformed file raises `ConfigFileError`."""
    path = config_dir / CONFIG_FILE
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, source
    except OSError as exc:
        raise ConfigFileError(source, [f"cannot read the file ({exc.strerror}); run the command as a user "
                                         "who may read it (the system config is readable by root only)"]) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigFileError(source, [f"not valid YAML: {exc}"]) from None
    if document is None:
        return None, source
    if not isinstance(document, Mapping):
        raise ConfigFileError(source, ["the top level must be a mapping of sections (api:, notifications:, ...)"])
    section = document.get(key)
    if section is not None and not isinstance(section, Mapping):
        raise ConfigFileError(source, [f"{key}: must be a mapping, got {type(section).__name__}"])
    return section, source


def read_health_config(config_dir: Path) -> HealthConfig:
    """The `health:` section of `<config_dir>/config.yaml`, defaults when absent."""
    section, source = read_config_section(config_dir, "health")
    return load_health_config(section, source=source)
