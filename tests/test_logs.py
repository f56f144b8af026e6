from __future__ import annotations

import io
import logging

from risk_manager.logs import configure_logging, log_event, redact


def test_secrets_are_redacted_everywhere() -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    text = f'Bearer {jwt} ?access_token={jwt}&id=1 {{"apiKey": "abc123456"}} apiKey=zzz'
    out = redact(text)
    assert jwt not in out and "abc123456" not in out and "zzz" not in out


def test_log_event_is_one_structured_line() -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream)
    logger = logging.getLogger("risk_manager.test")
    log_event(logger, "request_rejected", path="/api/Order/place", status=400, token="secret-token",
              reason="bad json here")
    line = stream.getvalue().strip()
    assert "\n" not in line
    assert "request_rejected path=/api/Order/place status=400 token=***" in line
    assert 'reason="bad json here"' in line
    assert "secret-token" not in line
