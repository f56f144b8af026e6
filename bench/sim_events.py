"""Hub events per second the simulator sustains to one SignalR client over loopback.

The scripted trader fills market orders (5 user events each: order Open, order Filled, trade,
position, account); one WebSocket client subscribed to everything on the user hub counts the
records it receives. A round ends when the client has every event; events/s = events / elapsed.
The client shares the simulator's process and event loop, so the figure is a lower bound.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from risk_manager.benchkit import Figure, Progress, median, percentile
from risk_manager.sim import SimConfig, Simulator

DESCRIPTION = "user-hub events/s the simulator sustains to one client (target >= 5,000/s)"

ROUNDS = 7
ORDERS_PER_ROUND = 4_000  # 20,000 events
EVENTS_PER_ORDER = 5
RS = "\x1e"


async def _measure(progress: Progress) -> list[float]:
    rates: list[float] = []
    async with Simulator(SimConfig(quote_feed="scripted")) as sim, aiohttp.ClientSession() as http:
        login = await http.post(sim.api_url + "/Auth/loginKey", json={"userName": "bench", "apiKey": "bench-key-1"})
        token = (await login.json())["token"]
        ws = await http.ws_connect(f"{sim.user_hub_url}?access_token={token}")
        await ws.send_str('{"protocol":"json","version":1}' + RS)
        await ws.receive()
        calls = [("SubscribeAccounts", "[]")] + [(m, "[1001]") for m in ("SubscribeOrders", "SubscribeTrades",
                                                                           "SubscribePositions")]
        for i, (method, args) in enumerate(calls):
            await ws.send_str(f'{{"type":1,"target":"{method}","arguments":{args},"invocationId":"{i}"}}' + RS)
        acks = 0
        while acks < len(calls):
            acks += (await ws.receive()).data.count('"type":3')
        received = 0
        done = asyncio.Event()
        expected = 0

        async def reader() -> None:
            nonlocal received
            async for msg in ws:
                received += msg.data.count(RS) - msg.data.count('"type":6')
                if received >= expected:
                    done.set()

        task = asyncio.create_task(reader())
        side = "buy"
        for round_no in range(ROUNDS):
            progress(f"round {round_no + 1}/{ROUNDS}")
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
            rates.append(expected / (time.perf_counter() - start))
        task.cancel()
        await ws.close()
    return rates


def run(progress: Progress) -> list[Figure]:
    rates = asyncio.run(_measure(progress))
    note = f"{ROUNDS} rounds of {ORDERS_PER_ROUND * EVENTS_PER_ORDER} events; client in the same process"
    return [
        Figure("user-hub events/s to one client, median", median(rates), "events/s", target=5000.0,
               better="higher", note=note),
        Figure("user-hub events/s, slowest round (p0)", percentile(rates, 0), "events/s", target=5000.0,
               better="higher", note=note),
    ]
