from __future__ import annotations

import logging

import pytest

from risk_manager.domain import VirtualClock
from risk_manager.security.audit_file import AuditFile
from risk_manager.security.paths import AdminPaths


def test_entries_are_appended_private_and_read_back(paths: AdminPaths, clock: VirtualClock,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    audit = AuditFile(paths.audit_file, clock)
    assert list(audit.entries()) == []
    audit.append("accounts.add", "user name and API key stored", account="main", who="coach", terminal="/dev/pts/1")
    clock.advance(60)
    audit.append("admin.password_changed", "token=abc123 leaked by mistake")
    with paths.audit_file.open("a") as handle:
        handle.write("{half a line\n\n")
    audit.append("accounts.remove", account="main")
    entries = list(audit.entries())
    assert [e.what for e in entries] == ["accounts.add", "admin.password_changed", "accounts.remove"]
    assert entries[0].who == "coach" and entries[0].terminal == "/dev/pts/1" and entries[0].account == "main"
    assert entries[1].at == "2026-03-03T15:01:00.000000+00:00"
    assert entries[1].why == "token=*** leaked by mistake"  # the redactor runs over free text too
    assert entries[2].who  # the OS user
    assert paths.audit_file.stat().st_mode & 0o777 == 0o600
    assert any("admin_audit_line_unreadable" in r.getMessage() and "line=3" in r.getMessage()
               for r in caplog.records if r.levelno == logging.WARNING)
