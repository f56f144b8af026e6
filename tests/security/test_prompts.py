from __future__ import annotations

import io

import pytest

from risk_manager.security import prompts
from risk_manager.security.errors import PasswordInputError
from risk_manager.security.prompts import SecretReader


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_stdin_mode_reads_one_line_per_secret_and_keeps_inner_spaces() -> None:
    reader = SecretReader(True, io.StringIO("pass word one\r\nkey-2\n"))
    assert reader.read("?", "admin password") == "pass word one"
    assert reader.read_new("?", "API key") == "key-2"  # asked once from stdin
    with pytest.raises(PasswordInputError, match="stdin ended before the API key"):
        reader.read("?", "API key")


def test_empty_line_is_refused() -> None:
    with pytest.raises(PasswordInputError, match="the admin password is empty"):
        SecretReader(True, io.StringIO("\n")).read("?", "admin password")


def test_terminal_mode_uses_a_hidden_prompt_and_asks_twice_for_a_new_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter(["first-choice", "second-choice", "same-one-1", "same-one-1"])
    asked: list[str] = []

    def fake_getpass(prompt: str) -> str:
        asked.append(prompt)
        return next(answers)

    monkeypatch.setattr(prompts.getpass, "getpass", fake_getpass)
    reader = SecretReader(False, _Terminal())
    with pytest.raises(PasswordInputError, match="differ"):
        reader.read_new("New admin password: ", "new admin password")
    assert reader.read_new("New admin password: ", "new admin password") == "same-one-1"
    assert asked == ["New admin password: ", "Repeat it: "] * 2


def test_no_terminal_and_no_flag_is_refused_with_the_way_out() -> None:
    with pytest.raises(PasswordInputError, match="--password-stdin"):
        SecretReader(False, io.StringIO("secret\n")).read("?", "admin password")
