"""Hub events per second the simulator sustains to one SignalR client over loopback.

User hub: the scripted trader fills market orders (5 user events each: order Open, order Filled,
trade, position, account); one WebSocket client subscribed to everything counts the records it
receives. Market hub: `set_quote` on MNQ (each runs the matching engine against 10 resting orders)
with the client subscribed to MNQ quotes. A round ends when the client has every event;
events/s = events / elapsed. The client shares the simulator's process and event loop, so the
figures are lower bounds.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from risk_manager.benchkit import Figure, Progress, median, percentile
from risk_manager.sim import SimConfig, Simulator

DESCRIPTION = "hub events/s the simulator sustains to one client: user events, market quotes (target >= 5,000/s)"

ROUNDS = 7
ORDERS_PER_ROUND = 4_000  # 20,000 events
EVENTS_PER_ORDER = 5
QUOTES_PER_ROUND = 20_000
RS = "\x1e"


async def _connect(http: aiohttp.ClientSession, url: str, token: str,
                   calls: list[tuple[str, str]]) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(f"{url}?access_token={token}")
    await ws.send_str('{"protocol":"json","version":1}' + RS)
    await ws.receive()
    for i, (method, args) in enumerate(calls):
            await ws.send_str(f'{{"type":1,"target":"{method}","arguments":{args},"invocationId":"{i}"}}' + RS)
    acks = 0
    while acks < len(calls):
        acks += (await ws.receive()).data.count('"type":3')
    return ws


async def _measure(progress: Progress) -> tuple[list[float], list[float]]:
    user_rates: list[float] = []
    quote_rates: list[float] = []
    async with Simulator(SimConfig(quote_feed="scripted")) as sim, aiohttp.ClientSession() as http:
        login = await http.post(sim.api_url + "/Auth/loginKey", json={"userName": "bench", "apiKey": "bench-key-1"})
        token = (await login.json())["token"]
        ws = await _connect(http, sim.user_hub_url, token, [("SubscribeAccounts", "[]")] + [
            (m, "[1001]") for m in ("SubscribeOrders", "SubscribeTrades", "SubscribePositions")])
        market = await _connect(http, sim.market_hub_url, token,
                                [("SubscribeContractQuotes", '["CON.F.US.MNQ.Z26"]')])
        received = 0
        done = asyncio.Event()
        expected = 0

        async def count(socket: aiohttp.ClientWebSocketResponse) -> None:
            nonlocal received
            async for msg in socket:
                received += msg.data.count(RS) - msg.data.count('"type":6')
                if received >= expected:
                    done.set()

        task = asyncio.create_task(count(ws))
        side = "buy"
        for round_no in range(ROUNDS):
            progress(f"user hub, round {round_no + 1}/{ROUNDS}")
            received = 0
            expected = ORDERS_PER_ROUND * EVENTS_PER_ORDER
            done.clear()
            start = time.perf_counter()
            for n in range(ORDERS_PER_ROUND):
                sim.trader.place_order(1001, "MNQ", side, 1)
                side = "sell" if side == "buy" else "buy"
                if n % 100 == 99:
                    await asyncio.sleep(0)  # let the writer and the client run, as a live feed would
            await asyncio.wait_for(done.wait(), timeout=120)
            user_rates.append(expected / (time.perf_counter() - start))
        task.cancel()
        await ws.close()

        sim.trader.close_position(1001, "MNQ")
        for i in range(10):  # resting orders the matching engine checks on every quote
            sim.trader.place_order(1001, "MNQ", "buy", 1, type="limit", limit_price=15_000.0 + i)
        task = asyncio.create_task(count(market))
        for round_no in range(ROUNDS):
            progress(f"market hub, round {round_no + 1}/{ROUNDS}")
            received = 0
            expected = QUOTES_PER_ROUND
            done.clear()
            start = time.perf_counter()
            for n in range(QUOTES_PER_ROUND):
                sim.market.set_quote("MNQ", 20_000.0 + (n % 40) * 0.25)
                if n % 100 == 99:
                    await asyncio.sleep(0)
            await asyncio.wait_for(done.wait(), timeout=120)
            quote_rates.append(expected / (time.perf_counter() - start))
        task.cancel()
        await market.close()
    return user_rates, quote_rates


def run(progress: Progress) -> list[Figure]:
    user_rates, quote_rates = asyncio.run(_measure(progress))
    note = f"{ROUNDS} rounds of {ORDERS_PER_ROUND * EVENTS_PER_ORDER} events; client in the same process"
    quote_note = f"{ROUNDS} rounds of {QUOTES_PER_ROUND} quotes, 10 resting orders; client in the same process"
    return [
        Figure("user-hub events/s to one client, median", median(user_rates), "events/s", target=5000.0,
               better="higher", note=note),
        Figure("user-hub events/s, slowest round", percentile(user_rates, 0), "events/s", target=5000.0,
               better="higher", note=note),
        Figure("market-hub quotes/s to one client, median", median(quote_rates), "quotes/s", target=5000.0,
               better="higher", note=quote_note),
        Figure("market-hub quotes/s, slowest round", percentile(quote_rates, 0), "quotes/s", target=5000.0,
               better="higher", note=quote_note),
    ]
