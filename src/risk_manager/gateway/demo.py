"""Runnable example of the Gateway client against the simulator (or any ProjectX Gateway).

    risk-manager sim serve --port 5100                       # terminal 1
    python -m risk_manager.gateway.demo --url http://127.0.0.1:5100 --user demo --key demo-key-123

It logs in, subscribes to the first account's orders/positions/trades and to quotes of one
contract, and prints every event, every hub state change and every reconciliation. Inject faults
into the simulator meanwhile (its control API, e.g. `POST /_sim/faults`) and watch it recover:
hubs reconnect with backoff, the reconciler reports missed fills, REST calls queue under the rate
limit and retry. Ctrl-C (or `--seconds N`) stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Sequence

from risk_manager.domain import (
    AccountEvent,
    GatewayEvent,
    LogoutEvent,
    OrderEvent,
    PositionEvent,
    QuoteEvent,
    TradeEvent,
    UserEvent,
)
from risk_manager.gateway.client import GatewayClient
from risk_manager.gateway.config import GatewayConfig
from risk_manager.gateway.errors import GatewayError
from risk_manager.gateway.reconcile import AccountMirror, Reconciler
from risk_manager.logs import configure_logging


def describe(event: GatewayEvent) -> str:
    if isinstance(event, OrderEvent):
        o = event.order
        return (f"order    #{o.id} {o.side.name} {o.size} {o.contract_id} {o.type.name} {o.status.name}"
                f" filled={o.fill_volume}@{o.filled_price}")
    if isinstance(event, TradeEvent):
        t = event.trade
        return (f"trade    #{t.id} {t.side.name} {t.size} {t.contract_id} @ {t.price} pnl={t.profit_and_loss}"
                f" fees={t.fees}")
    if isinstance(event, PositionEvent):
        p = event.position
        return f"position {p.contract_id} {p.type.name} size={p.size} avg={p.average_price}"
    if isinstance(event, AccountEvent):
        a = event.account
        return f"account  #{a.id} {a.name} balance={a.balance:.2f} canTrade={a.can_trade}"
    if isinstance(event, LogoutEvent):
        return f"logout   {event.reason or ''}"
    return repr(event)


async def run(url: str, user: str, key: str, account_id: int | None, symbol: str, seconds: float | None) -> int:
    config = GatewayConfig.for_server(url, {"authentication": {"storage": {"type": "memory"}}})
    client = GatewayClient(config, user, key)
    try:
        await client.start(connect_hubs=False)  # subscribe first, so the first connect includes them
        accounts = await client.search_accounts(only_active=True)
        if not accounts:
            print("no active account for this user", file=sys.stderr)
            return 1
        account = next((a for a in accounts if a.id == account_id), accounts[0]) if account_id else accounts[0]
        print(f"logged in as {user}; watching account {account.id} {account.name} balance={account.balance:.2f}")
        mirror = AccountMirror(account.id)

        async def apply(events: Sequence[UserEvent]) -> None:
            for event in events:
                print(f"[reconciled] {describe(event)}")
                mirror.apply(event)

        reconciler = Reconciler(client, [account.id], view=lambda _a: mirror, emit=apply)
        reconciler.on_fresh(lambda fresh: print("state: FRESH" if fresh else "state: STALE (reconciling)"))

        async def on_user(event: GatewayEvent) -> None:
            print(f"[user hub]   {describe(event)}")
            if isinstance(event, AccountEvent | OrderEvent | PositionEvent | TradeEvent):
                mirror.apply(event)

        last_quote: dict[str, float] = {}

        async def on_market(event: GatewayEvent) -> None:
            if isinstance(event, QuoteEvent):
                now = time.monotonic()
                if now - last_quote.get(event.contract_id, 0.0) >= 1.0:  # at most one line per second
                    last_quote[event.contract_id] = now
                    q = event.quote
                    print(f"[market hub] quote {event.contract_id} last={q.last_price} bid={q.best_bid}"
                          f" ask={q.best_ask}")

        client.user_hub.on_event(on_user)
        client.market_hub.on_event(on_market)
        client.user_hub.on_state(lambda state: print(f"user hub: {state.value}"))
        client.market_hub.on_state(lambda state: print(f"market hub: {state.value}"))
        reconciler.attach(client.user_hub)
        await client.user_hub.subscribe_account(account.id)
        contracts = await client.search_contracts(symbol)
        if contracts:
            await client.market_hub.subscribe_quotes(contracts[0].id)
            print(f"quotes of {contracts[0].id} ({contracts[0].description})")
        await client.start_hubs()

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C raises KeyboardInterrupt
                loop.add_signal_handler(sig, stop.set)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await stop.wait()
        await reconciler.aclose()
        print(f"positions={len(mirror.positions)} open orders={len(mirror.open_orders)} trades={len(mirror.trades)}"
              f" breaker={client.breaker.state.value} reconnects={client.user_hub.stats.reconnects}")
        return 0
    except GatewayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        await client.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m risk_manager.gateway.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:5100", help="server root (REST under /api, hubs /hubs/*)")
    parser.add_argument("--user", default="demo")
    parser.add_argument("--key", default="demo-key-123", help="API key (the simulator accepts any of ≥ 8 chars)")
    parser.add_argument("--account", type=int, default=None, help="account id (default: the first active one)")
    parser.add_argument("--symbol", default="ES", help="contract search text for the quote subscription")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    return asyncio.run(run(args.url, args.user, args.key, args.account, args.symbol, args.seconds))


if __name__ == "__main__":
    sys.exit(main())
