from __future__ import annotations

import ssl

from risk_manager.gateway.hubs import websocket_url
from risk_manager.gateway.tls import shared_tls_context


def test_one_verifying_tls_context_for_the_whole_process() -> None:
    context = shared_tls_context()
    assert context is shared_tls_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] > 0   # the CA bundle is loaded
    assert websocket_url("https://rtc.example.invalid/hubs/user", "t").startswith("wss:")
