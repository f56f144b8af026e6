"""Reading the admin password and API keys: a hidden interactive prompt, or one line from stdin.

Never from argv or an environment variable (visible in `ps`, shell history, `/proc/*/environ`).
`--password-stdin` reads one line per secret asked, in the order the command documents, for
scripts and tests (`printf '%s\\n' "$PW" | risk-manager admin … --password-stdin`).
"""

from __future__ import annotations

import getpass
import sys
from typing import TextIO

from risk_manager.security.errors import PasswordInputError


class SecretReader:
    def __init__(self, from_stdin: bool, stdin: TextIO | None = None) -> None:
        self.from_stdin = from_stdin
        self._stdin = stdin

    @property
    def stdin(self) -> TextIO:
        return self._stdin if self._stdin is not None else sys.stdin

    def read(self, prompt: str, what: str) -> str:
        """One secret. `what` names it in errors ("admin password", "API key")."""
        if self.from_stdin:
            line = self.stdin.readline()
            if not line:
                raise PasswordInputError(f"stdin ended before the {what} was given",
                                         "give one line per secret the command asks for")
            value = line.rstrip("\r\n")
        else:
            if not self.stdin.isatty():
                raise PasswordInputError(f"no terminal to ask for the {what}",
                                         "run the command in a terminal, or pipe the secrets in and add "
                                         "--password-stdin")
            value = getpass.getpass(prompt)
        if not value:
            raise PasswordInputError(f"the {what} is empty", f"enter the {what}")
        return value

    def read_new(self, prompt: str, what: str) -> str:
        """A new secret: asked twice at a terminal (must match), once from stdin."""
        value = self.read(prompt, what)
        if not self.from_stdin and self.read("Repeat it: ", what) != value:
            raise PasswordInputError(f"the two {what}s differ", "nothing was changed; try again")
        return value
