"""`risk-manager demo [--headless]`: simulator + daemon in one process, a trader breaking the rules."""

from __future__ import annotations

import asyncio
import sys

import typer

from risk_manager.logs import configure_logging


async def _forever() -> None:
    await asyncio.Event().wait()


def demo(
    headless: bool = typer.Option(False, "--headless", help="Print the log and exit at the end (0 = all enforced)."),
    speed: float = typer.Option(1.0, "--speed", help="Run the script this many times faster (1 = about a minute)."),
    log_level: str = typer.Option("ERROR", "--log-level", help="Structured logs to stderr at this level."),
) -> None:
    """Watch the daemon enforce: oversize, no stop, a daily loss, trading while locked."""
    from risk_manager.daemon.demo_script import Demo  # the simulator: imported only by this command

    configure_logging(log_level.upper())
    interactive = not headless and sys.stdout.isatty()
    try:
        ok = asyncio.run(Demo(sys.stdout, speed).run(_forever if interactive else None))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(0 if ok else 1)
