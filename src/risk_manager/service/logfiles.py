"""Rotating log files: daemon.log (everything), enforcement.log (enforcement only), errors.log (WARNING+).

Rotation is by time, at midnight UTC, keeping `retention_days` old files per log: a trader or admin
looks for "what happened on Tuesday", and a day per file answers that directly; retention in days is
what the config says. (A size cap would split a busy day across files and make retention a guess.)
Every line goes through `StructuredFormatter`, so secrets are redacted. Files are created 0600 and
the directory 0700 (on Windows the ProgramData ACLs apply instead).
"""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from risk_manager.logs import StructuredFormatter
from risk_manager.service.paths import ServiceMode, log_dir

ENFORCEMENT_LOGGER = "risk_manager.enforcement"
_MARK = "_risk_manager_file"


class LogFilesConfig(BaseModel):
    """The `logging.files:` config section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    directory: Path | None = None  # default: <data dir>/logs for the mode
    retention_days: int = Field(default=14, ge=1, le=3650)
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class PrivateTimedRotatingFileHandler(logging.handlers.TimedRotatingFileHandler):
    """`TimedRotatingFileHandler` whose files are created (and kept) owner-only, 0600."""

    def _open(self) -> io.TextIOWrapper:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)  # a file left by an older version or another umask
        return open(fd, "a", encoding=self.encoding or "utf-8", errors=self.errors)


@dataclass
class LogFiles:
    directory: Path
    handlers: dict[str, logging.Handler] = field(default_factory=dict)

    def close(self) -> None:
        for name, handler in self.handlers.items():
            target = logging.getLogger(ENFORCEMENT_LOGGER if name == "enforcement.log" else None)
            target.removeHandler(handler)
            handler.close()
        self.handlers.clear()


def _remove_previous() -> None:
    for logger in (logging.getLogger(), logging.getLogger(ENFORCEMENT_LOGGER)):
        for handler in [h for h in logger.handlers if getattr(h, _MARK, False)]:
            logger.removeHandler(handler)
            handler.close()


def install_log_files(config: LogFilesConfig, mode: ServiceMode = ServiceMode.USER) -> LogFiles | None:
    """Attach the three rotating files (replacing any installed before); None when disabled.

    The logger levels stay as `configure_logging` set them: call it first with the same level.
    """
    _remove_previous()
    if not config.enabled:
        return None
    directory = config.directory or log_dir(mode)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if os.name == "posix":
        directory.chmod(0o700)
    formatter = StructuredFormatter()
    level = logging.getLevelName(config.level)
    routes = (
        ("daemon.log", logging.getLogger(), level),
        ("enforcement.log", logging.getLogger(ENFORCEMENT_LOGGER), level),
        ("errors.log", logging.getLogger(), logging.WARNING),
    )
    files = LogFiles(directory)
    for name, logger, handler_level in routes:
        handler = PrivateTimedRotatingFileHandler(directory / name, when="midnight", utc=True,
                                                  backupCount=config.retention_days, encoding="utf-8")
        handler.setFormatter(formatter)
        handler.setLevel(handler_level)
        setattr(handler, _MARK, True)
        logger.addHandler(handler)
        files.handlers[name] = handler
    return files
