"""`risk-manager demo [--headless]`: simulator + daemon in one process, a trader breaking the rules.

In a terminal it shows the dashboard (`risk-manager status`'s app) while the script runs, the live log
going to a file; `--headless` (or output that is not a terminal) prints the log and exits."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

import typer

from risk_manager.logs import configure_logging


def _with_dashboard(speed: float, log_level: str, log_file: Path | None) -> bool:
    """The Textual dashboard in the terminal; the live log (and every log line) into a file, not over the TUI."""
    from risk_manager.daemon.demo_dashboard import DemoWithDashboard  # Textual: only for this mode

    if log_file is None:
        fd, name = tempfile.mkstemp(prefix="risk-manager-demo-", suffix=".log")
        os.close(fd)
        log_file = Path(name)
    typer.echo(f"demo log: {log_file}", err=True)
    with log_file.open("a", encoding="utf-8") as out:
        configure_logging(log_level.upper(), stream=out)
        ok = asyncio.run(DemoWithDashboard(out, speed).run())
    typer.echo(f"demo {'passed: every scripted breach was enforced' if ok else 'stopped or NOT all enforced'}; "
               f"log: {log_file}", err=True)
    return ok


def demo(
    headless: bool = typer.Option(False, "--headless", help="Print the log and exit at the end (0 = all enforced)."),
    speed: float = typer.Option(1.0, "--speed", help="Run the script this many times faster (1 = about a minute)."),
    log_level: str = typer.Option("ERROR", "--log-level", help="Structured logs at this level (stderr; with the "
                                  "dashboard, the --log-file)."),
    log_file: Path | None = typer.Option(None, "--log-file", help="With the dashboard: where the demo's live log "
                                         "and the structured logs go (default: a new file in the temp dir)."),
) -> None:
    """Watch the daemon enforce: oversize, no stop, a daily loss, trading while locked."""
    from risk_manager.daemon.demo_script import Demo  # the simulator: imported only by this command

    interactive = not headless and sys.stdout.isatty()
    try:
        if interactive:
            ok = _with_dashboard(speed, log_level, log_file)
        else:
            configure_logging(log_level.upper())
            ok = asyncio.run(Demo(sys.stdout, speed).run(None))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(0 if ok else 1)
