"""`kill -9` in the middle of writes: the file reopens clean and everything flushed is there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from risk_manager.domain import VirtualClock
from risk_manager.store import Store

WRITER = Path(__file__).with_name("crash_writer.py")


def _run_and_kill(db_path: Path, min_seq: int) -> list[int]:
    """Start the writer, SIGKILL it once it has flushed `min_seq` entries; the seqs it reported durable."""
    child = subprocess.Popen([sys.executable, str(WRITER), str(db_path)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None
    reported = [0]
    deadline = time.monotonic() + 30
    try:
        while reported[-1] < min_seq:
            line = child.stdout.readline()
            if not line:
                errors = child.stderr.read() if child.stderr else ""
                raise AssertionError(f"writer exited early with {child.wait()}: {errors}")
            reported.append(int(line))
            assert time.monotonic() < deadline, "writer too slow"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        out, _ = child.communicate(timeout=10)
    assert child.returncode == -signal.SIGKILL
    reported.extend(int(line) for line in out.split())  # reported before the kill, still in the pipe
    return reported[1:]


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")
@pytest.mark.parametrize("rounds", [2])
async def test_kill_9_mid_writes_loses_nothing_that_was_flushed(db_path: Path, clock: VirtualClock,
                                                                rounds: int) -> None:
    for round_number in range(rounds):
        reported = _run_and_kill(db_path, min_seq=2000 * (round_number + 1))
        store = await Store.open(db_path, clock)  # quick_check runs here: raises if corrupt
        try:
            entries = await store.journal()
            seqs = [e.seq for e in entries]
            assert seqs == list(range(1, len(seqs) + 1)), "a gap or a reordering in the journal"
            assert len(seqs) >= reported[-1]
            assert all(e.payload["n"] == e.seq for e in entries)
            for seq in reported:
                assert not await store.claim(f"key-{seq}", 1, {}), f"key-{seq} claimed twice"
            assert len(await store.unfinished_actions()) >= len(reported)
        finally:
            await store.close()
