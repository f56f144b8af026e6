"""Child process for test_crash: writes to a store forever, printing the last seq it flushed.

Run as `python crash_writer.py DB`; each printed line `N` means journal entries 1..N and the claim
of `key-N` were reported durable (claim and flush returned). The parent kills it with SIGKILL.
"""

from __future__ import annotations

import asyncio
import sys

from risk_manager.domain import SystemClock
from risk_manager.store import Store


async def main(path: str) -> None:
    store = await Store.open(path, SystemClock())
    while True:
        for _ in range(50):
            seq = store.journal_seq + 1
            store.append_journal("test", {"n": seq, "pad": "x" * 200}, account_id=1)
        claimed = await store.claim(f"key-{store.journal_seq}", 1, {"seq": store.journal_seq})
        assert claimed
        await store.flush()
        print(store.journal_seq, flush=True)
        for _ in range(50):  # more writes in flight when the kill lands
            seq = store.journal_seq + 1
            store.append_journal("unflushed", {"n": seq}, account_id=1)
        await asyncio.sleep(0)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
