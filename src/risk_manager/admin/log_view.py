"""Reading the daemon's rotating log files (`risk_manager.service.logfiles`) with filters.

Each line is `<UTC time> <LEVEL> <logger> <event> key=value…`, one event per line (a traceback is
folded into the same line by the formatter). `--level` keeps lines at or above a level, `--grep`
keeps lines containing a text (case-insensitive), `--tail` keeps the last N of what is left.
`--days` adds the rotated files of the previous days (`daemon.log.2026-03-03`), oldest first.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

from risk_manager.admin.errors import AdminError

LOG_FILES = {"daemon": "daemon.log", "enforcement": "enforcement.log", "errors": "errors.log"}
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def line_level(line: str) -> int | None:
    """The level of a structured line (its second word); None for a line of another shape."""
    parts = line.split(" ", 2)
    if len(parts) >= 2 and parts[1] in LEVELS:
        level: int = logging.getLevelName(parts[1])
        return level
    return None


def log_files(directory: Path, which: str, days: int = 0) -> list[Path]:
    """The current file of `which` and up to `days` rotated ones before it, oldest first."""
    if which not in LOG_FILES:
        raise AdminError(f"no log file {which!r}", f"use one of: {', '.join(LOG_FILES)}")
    current = directory / LOG_FILES[which]
    rotated = sorted(directory.glob(f"{LOG_FILES[which]}.*")) if days > 0 else []
    files = [*rotated[-days:], current] if days > 0 else [current]
    existing = [f for f in files if f.is_file()]
    if not existing:
        raise AdminError(f"no log file {current} yet",
                         "the daemon writes it once it runs with `logging.files.enabled: true`; pass --log-dir if "
                         "its logs are elsewhere")
    return existing


def _lines(files: Iterable[Path]) -> Iterator[str]:
    for path in files:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                yield line.rstrip("\n")


def read_log(directory: Path, which: str = "daemon", *, level: str | None = None, grep: str | None = None,
             tail: int | None = None, days: int = 0) -> list[str]:
    """The lines of a log file that pass the filters, oldest first (the last `tail` of them)."""
    minimum = 0
    if level is not None:
        name = level.upper()
        if name not in LEVELS:
            raise AdminError(f"unknown level {level!r}", f"use one of: {', '.join(LEVELS)}")
        minimum = logging.getLevelName(name)
    needle = grep.lower() if grep else None
    kept: deque[str] = deque(maxlen=tail if tail and tail > 0 else None)
    for line in _lines(log_files(directory, which, days)):
        if minimum and (line_level(line) or 0) < minimum:
            continue
        if needle is not None and needle not in line.lower():
            continue
        kept.append(line)
    return list(kept)


__all__ = ["LEVELS", "LOG_FILES", "line_level", "log_files", "read_log"]
