"""One TLS context for every Gateway connection of the process.

httpx and websockets each build a fresh `ssl.SSLContext` (loading the whole CA bundle, ~1 MB) per
client or connection when not given one. A daemon protecting ten accounts would hold ten of them;
sharing one keeps `risk-manager run` inside its memory budget (docs/performance.md). Verification is
unchanged: certificates are checked against certifi's CA bundle, as httpx does by default.
"""

from __future__ import annotations

import functools
import ssl

import certifi


@functools.cache
def shared_tls_context() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=certifi.where())
