"""Any JSON payload comes back from the journal exactly as it went in, in order."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from risk_manager.domain import VirtualClock
from risk_manager.store import Store
from tests.store.conftest import START

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text() | st.just("lone surrogate \ud800 and ünïcödé"),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


async def _round_trip(path: Path, payloads: list[Any]) -> list[Any]:
    store = await Store.open(path, VirtualClock(START))
    try:
        for payload in payloads:
            store.append_journal("e", payload)
        return [entry.payload for entry in await store.journal()]
    finally:
        await store.close()


@settings(max_examples=25, deadline=None)
@given(st.lists(_json, min_size=1, max_size=20))
@example(["lone surrogate \ud800", {"ünïcödé": [1.5, None, True]}])
def test_journal_payloads_round_trip(payloads: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        assert asyncio.run(_round_trip(Path(tmp) / "j.db", payloads)) == payloads
