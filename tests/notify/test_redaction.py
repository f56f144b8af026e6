"""The additions to `risk_manager.logs.redact` that notification secrets rely on."""

from __future__ import annotations

from risk_manager.logs import redact, register_secret


def test_telegram_tokens_are_redacted_even_inside_urls() -> None:
    token = "987654321:AAE-zzYYxxWWvvUUttSSrrQQppOOnnMMll"
    out = redact(f"POST https://api.telegram.org/bot{token}/sendMessage and {token}")
    assert token not in out and out.count("***") == 2
    assert redact("at 2026-03-03T15:00:30Z id=12345:short") == "at 2026-03-03T15:00:30Z id=12345:short"


def test_discord_webhook_tokens_are_redacted() -> None:
    out = redact("https://discord.com/api/webhooks/112233/AbC-dEf_123.xyz?wait=true")
    assert out == "https://discord.com/api/webhooks/112233/***?wait=true"


def test_registered_secrets_are_redacted_literally() -> None:
    url = "https://hooks.example.test/services/T000/B000/registered-literal-7781"
    assert url in redact(f"posting to {url}")
    register_secret(url)
    register_secret("")  # ignored
    register_secret("abc")  # too short to be a secret worth matching everywhere: ignored
    assert redact(f"posting to {url}!") == "posting to ***!"
    assert redact("abc stays") == "abc stays"
