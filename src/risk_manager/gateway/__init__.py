"""The resilient ProjectX Gateway client: tokens, REST, SignalR hubs, reconciliation.

Nothing here knows about rules. Public API (see docs/gateway-client.md)::

    from risk_manager.gateway import GatewayConfig, GatewayClient, HubState, Reconciler, AccountMirror

    config = GatewayConfig.load(yaml_dict, source="config.yaml")   # api, authentication, signalr,
                                            # errorHandling, orderManagement, stateReconciliation
    async with GatewayClient(config, user_name, api_key, clock=SystemClock(), token_store=None) as client:
        accounts = await client.search_accounts(only_active=True)          # -> list[Account]
        await client.user_hub.subscribe_account(account_id)                 # remembered across reconnects
        client.user_hub.on_event(handler)                                   # async handler(GatewayEvent), in order
        client.user_hub.on_state(listener)                                  # listener(HubState)
        result = await client.place_order(account_id, contract_id, OrderType.MARKET, OrderSide.ASK, 1,
                                          idempotency_key="flatten-1001-2026-03-03T15:00")   # -> PlaceResult
        await client.cancel_order(account_id, order_id)                     # -> MutationResult
        await client.close_position(account_id, contract_id)                # -> MutationResult
        client.breaker.state; client.limiter.stats(); client.stats

    reconciler = Reconciler(client, [account_id], view=lambda a: mirror, emit=apply_events)
    reconciler.attach(client.user_hub)       # stale on disconnect, snapshot + diff + fresh on reconnect
"""

from risk_manager.gateway.circuit_breaker import BreakerState, CircuitBreaker
from risk_manager.gateway.client import ClientStats, GatewayClient, MutationResult, PlaceResult, custom_tag_for
from risk_manager.gateway.config import GatewayConfig
from risk_manager.gateway.errors import (
    AuthenticationError,
    CircuitOpenError,
    GatewayConfigError,
    GatewayError,
    GatewayRequestError,
    HttpStatusError,
    HubError,
    OrderOutcomeUnknownError,
    PermanentHttpError,
    RateLimitQueueFullError,
    TokenStoreError,
    TransientError,
    TransportError,
)
from risk_manager.gateway.hubs import HubConnection, HubState, HubStats
from risk_manager.gateway.rate_limit import RateLimiter, SlidingWindowLimiter
from risk_manager.gateway.reconcile import AccountMirror, HeldView, Reconciler, ReconcileReport, cme_trading_day_start
from risk_manager.gateway.tokens import (
    EncryptedTokenStore,
    MemoryTokenStore,
    TokenManager,
    TokenStore,
    build_token_store,
    jwt_expiry,
)

__all__ = [
    "AccountMirror",
    "AuthenticationError",
    "BreakerState",
    "CircuitBreaker",
    "CircuitOpenError",
    "ClientStats",
    "EncryptedTokenStore",
    "GatewayClient",
    "GatewayConfig",
    "GatewayConfigError",
    "GatewayError",
    "GatewayRequestError",
    "HeldView",
    "HttpStatusError",
    "HubConnection",
    "HubError",
    "HubState",
    "HubStats",
    "MemoryTokenStore",
    "MutationResult",
    "OrderOutcomeUnknownError",
    "PermanentHttpError",
    "PlaceResult",
    "RateLimitQueueFullError",
    "RateLimiter",
    "ReconcileReport",
    "Reconciler",
    "SlidingWindowLimiter",
    "TokenManager",
    "TokenStore",
    "TokenStoreError",
    "TransientError",
    "TransportError",
    "build_token_store",
    "cme_trading_day_start",
    "custom_tag_for",
    "jwt_expiry",
]
