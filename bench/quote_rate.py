"""Sustained market-hub quote rate: the daemon protecting 10 accounts, each with an MNQ position open.

The simulator runs in its own process (bench/_quote_feeder.py) and publishes MNQ quotes at a fixed
offered rate; every quote is evaluated by all ten accounts' engines (open P&L, every rule) and
journalled. The daemon runs in this process. Every 0.1 s the feeder reports how many quotes it has
sent and we read how many the daemon has processed: backlog = sent − processed. The rate is
sustained if the backlog does not grow: its slope over the second half of the window (quotes/s)
stays near zero and the daemon drains what is left within a fraction of a second after the feed
stops. Figures are medians over ROUNDS rounds.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from risk_manager.benchkit import Figure, Progress, median
from risk_manager.daemon.config_dir import AccountSpec, Credential
from risk_manager.daemon.daemon import Daemon, DaemonOptions
from risk_manager.engine import parse_rules_block
from risk_manager.gateway import GatewayConfig, MemoryTokenStore
from risk_manager.logs import configure_logging

DESCRIPTION = ("sustained quote rate: 10 accounts with a position open, quotes/s processed at an offered 2,500/s "
               "and 5,000/s, backlog growth (target ≥ 2,000/s, no growth)")

OFFERED = (2_500.0, 5_000.0)   # the target with margin, and twice that for the headroom
SECONDS = 6.0
ROUNDS = 3
ACCOUNTS = list(range(3001, 3011))
FEEDER = Path(__file__).with_name("_quote_feeder.py")
RULES = {"daily_unrealized_loss": {"enabled": True, "loss_limit": 100_000},
         "max_unrealized_profit": {"enabled": True, "target": 100_000},
         "max_contracts": {"enabled": True, "limit": 50},
         "daily_realized_loss": {"enabled": True, "loss_limit": 100_000}}


def _daemon(url: str, workdir: Path) -> Daemon:
    gateway = GatewayConfig.for_server(url, {
        "authentication": {"storage": {"type": "memory"}},
        "errorHandling": {"rateLimit": {"general": {"requests": 1_000_000, "windowSeconds": 60}}}})
    credential = Credential("bench", "bench", "bench-api-key")
    risk = parse_rules_block(RULES, "bench")
    specs = tuple(AccountSpec(a, None, credential, risk) for a in ACCOUNTS)
    return Daemon(DaemonOptions(gateway=gateway, accounts=specs, database_path=workdir / "risk.db",
                                token_store=MemoryTokenStore))


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (t, backlog): quotes/s of backlog growth."""
    if len(points) < 2:
        return 0.0
    ts = [t for t, _ in points]
    ys = [y for _, y in points]
    mt, my = statistics.fmean(ts), statistics.fmean(ys)
    den = sum((t - mt) ** 2 for t in ts)
    return sum((t - mt) * (y - my) for t, y in points) / den if den else 0.0


async def _round(workdir: Path, offered: float) -> dict[str, float]:
    feeder = await asyncio.create_subprocess_exec(
        sys.executable, str(FEEDER), str(offered), str(SECONDS), *map(str, ACCOUNTS),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert feeder.stdin is not None and feeder.stdout is not None
    daemon: Daemon | None = None
    try:
        first = (await asyncio.wait_for(feeder.stdout.readline(), 30)).decode().split()
        if first[:1] != ["url"]:
            raise RuntimeError(f"bench: the quote feeder did not start: {first}")
        daemon = _daemon(first[1], workdir)
        await daemon.start()
        deadline = time.monotonic() + 10
        while not all(daemon.accounts[a].mirror.positions for a in ACCOUNTS):
            if time.monotonic() > deadline:
                raise RuntimeError("bench: the daemon did not see the ten positions")
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)   # subscriptions settle
        await daemon.idle()
        base = daemon.stats.events_processed
        feeder.stdin.write(b"go\n")
        await feeder.stdin.drain()
        points: list[tuple[float, float]] = []
        t0 = None
        sent = 0
        while True:
            line = (await asyncio.wait_for(feeder.stdout.readline(), 30)).decode().split()
            if not line:
                raise RuntimeError("bench: the quote feeder stopped early")
            sent = int(line[1])
            now = float(line[2])   # perf_counter is system-wide on Linux: one clock for both processes
            t0 = now if t0 is None else t0
            points.append((now - t0, sent - (daemon.stats.events_processed - base)))
            if line[0] == "done":
                break
        stopped = time.perf_counter()
        while daemon.stats.events_processed - base < sent:
            if time.perf_counter() - stopped > 30:
                raise RuntimeError("bench: the daemon never caught up with the quotes")
            await asyncio.sleep(0.001)
        drained = time.perf_counter() - stopped
        processed = daemon.stats.events_processed - base
        window = points[-1][0] or SECONDS
        second_half = [p for p in points if p[0] >= window / 2]
        return {"offered": sent / window, "processed": processed / (window + drained),
                "slope": _slope(second_half), "backlog_end": points[-1][1], "drain_ms": drained * 1000}
    finally:
        if daemon is not None:
            await daemon.aclose()
        if feeder.returncode is None:
            feeder.stdin.close()
            try:
                await asyncio.wait_for(feeder.wait(), 10)
            except TimeoutError:
                feeder.kill()


async def _all(progress: Progress) -> list[Figure]:
    configure_logging("ERROR")
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="bench-quotes-") as tmp:
        for offered in OFFERED:
            rounds = []
            for i in range(ROUNDS):
                workdir = Path(tmp) / f"{offered:.0f}-{i}"
                workdir.mkdir()
                rounds.append(await _round(workdir, offered))
                progress(f"offered {offered:.0f}/s, round {i + 1}/{ROUNDS}: {rounds[-1]['processed']:.0f} "
                         f"quotes/s, backlog slope {rounds[-1]['slope']:.1f}/s")
            figures += _figures(offered, rounds)
    return figures


def _figures(offered: float, rounds: list[dict[str, float]]) -> list[Figure]:
    def med(key: str) -> float:
        return median([r[key] for r in rounds])

    at = f"at {offered:.0f}/s offered"
    target = 2000.0 if offered == OFFERED[0] else None
    return [
        Figure(f"{at}: quotes/s offered (measured)", med("offered"), "quotes/s"),
        Figure(f"{at}: quotes/s processed (10 accounts, 10 positions)", med("processed"), "quotes/s", target,
               "higher"),
        Figure(f"{at}: backlog growth, 2nd half of the window", med("slope"), "quotes/s",
               0.01 * offered if target else None, note="least-squares slope of sent − processed; ≈ 0 when sustained"),
        Figure(f"{at}: backlog when the feed stopped", med("backlog_end"), "quotes"),
        Figure(f"{at}: drain time after the feed stopped", med("drain_ms"), "ms"),
    ]


def run(progress: Progress) -> list[Figure]:
    return asyncio.run(_all(progress))
