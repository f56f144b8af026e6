"""Typed errors of a command become one red line and an exit code; anything else is a bug and propagates."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape

from risk_manager.security.errors import PasswordBackoffError, SecurityError, WrongPasswordError


@contextmanager
def refusals(err: Console, *refused: type[Exception]) -> Iterator[None]:
    """Wrong password or back-off → exit 3; a `SecurityError` or one of `refused` → exit 1. The message is
    printed escaped (an error text with `[boot]` in it must not be read as markup) and never wrapped."""
    caught: tuple[type[Exception], ...] = (SecurityError, *refused)
    try:
        yield
    except (WrongPasswordError, PasswordBackoffError) as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(3) from None
    except caught as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
