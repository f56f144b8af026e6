from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from risk_manager.domain import VirtualClock
from risk_manager.store import Store

START = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(START)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "risk.db"


@pytest.fixture
async def store(db_path: Path, clock: VirtualClock) -> AsyncIterator[Store]:
    opened = await Store.open(db_path, clock)
    yield opened
    await opened.close()
