"""Showing a secret without revealing it (for `admin accounts list` and error messages)."""

from __future__ import annotations

SHOW_ENDS_FROM = 20  # only keys at least this long show their first and last 4 characters


def mask_secret(secret: str) -> str:
    """`abcd…wxyz` for a long secret (16 of ≥ 20 characters stay hidden), `***` for anything shorter."""
    if len(secret) >= SHOW_ENDS_FROM:
        return f"{secret[:4]}…{secret[-4:]}"
    return "***"
