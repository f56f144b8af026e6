"""The simulator side of bench/quote_rate.py, in its own process (so the daemon cannot slow the sender).

`python _quote_feeder.py RATE SECONDS ACCOUNT…`: starts the simulator on loopback, opens one MNQ
position per account, prints `url <base_url>`, waits for a line on stdin, then publishes MNQ quotes
at RATE per second for SECONDS (paced every 5 ms), printing `sent <n> <perf_counter>` every 0.1 s
and `done <n>` at the end; then waits for stdin to close.
"""

from __future__ import annotations

import asyncio
import sys
import time

from risk_manager.sim import SimAccount, SimConfig, Simulator

BIG_LIMIT = (1_000_000, 60.0)


async def _main(rate: float, seconds: float, accounts: list[int]) -> None:
    sim = Simulator(SimConfig(accounts=[SimAccount(a, f"BENCH-{a}", balance=1e9) for a in accounts],
                              quote_feed="scripted", fees=False, rate_limit_general=BIG_LIMIT))
    await sim.start()
    sim.market.set_quote("MNQ", 20000.0)
    for account in accounts:
        sim.trader.place_order(account, "MNQ", side="buy", size=1, type="market")
    print("url", sim.base_url, flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    sent = 0
    start = time.perf_counter()
    print("sent", 0, start, flush=True)
    next_report = start + 0.1
    while (now := time.perf_counter()) - start < seconds:
        due = int((now - start) * rate)
        while sent < due:
            sim.market.set_quote("MNQ", 20000.0 + (sent % 8 - 4) * 0.25)
            sent += 1
        if now >= next_report:
            print("sent", sent, now, flush=True)
            next_report += 0.1
        await asyncio.sleep(0.005)
    print("done", sent, time.perf_counter(), flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
    await sim.stop()


if __name__ == "__main__":
    asyncio.run(_main(float(sys.argv[1]), float(sys.argv[2]), [int(a) for a in sys.argv[3:]]))
