from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from risk_manager.domain import PositionType, UnknownContractError, VirtualClock, default_catalogue
from risk_manager.domain.ticks import fill_pnl, is_on_tick, offset_ticks, open_pnl, price_ticks, round_to_tick


def test_open_pnl_long_and_short_use_type_not_sign() -> None:
    # ES: 0.25 tick, $12.50 per tick. Long 2 @ 5000 marked at 5001 = 4 ticks × 12.5 × 2.
    assert open_pnl(5001.0, 5000.0, PositionType.LONG, 2, 0.25, 12.5) == pytest.approx(100.0)
    assert open_pnl(5001.0, 5000.0, PositionType.SHORT, 2, 0.25, 12.5) == pytest.approx(-100.0)
    assert price_ticks(19990.0, 20000.0, PositionType.LONG, 0.25) == pytest.approx(-40.0)
    assert fill_pnl(20000.0, 19990.0, PositionType.LONG, 3, 0.25, 0.5) == pytest.approx(-60.0)
    with pytest.raises(ValueError, match="no direction"):
        price_ticks(1.0, 1.0, PositionType.UNDEFINED, 0.25)
    with pytest.raises(ValueError, match="tick size must be positive"):
        price_ticks(1.0, 1.0, PositionType.LONG, 0.0)


def test_tick_rounding() -> None:
    assert round_to_tick(5000.13, 0.25) == 5000.25
    assert round_to_tick(5000.13, 0.25, "down") == 5000.0
    assert round_to_tick(5000.0, 0.25, "up") == 5000.0
    assert round_to_tick(0.30000000000000004, 0.1) == 0.3
    assert offset_ticks(62.00, -10, 0.01) == 61.90
    assert is_on_tick(5000.75, 0.25) and not is_on_tick(5000.1, 0.25)
    with pytest.raises(ValueError, match="mode"):
        round_to_tick(1.0, 0.25, "sideways")


def test_catalogue_has_the_required_contracts_in_real_form() -> None:
    cat = default_catalogue()
    for symbol in ("MNQ", "NQ", "MES", "ES", "M2K", "RTY", "MYM", "YM", "MCL", "CL", "MGC", "GC"):
        entry = cat.get(symbol)
        assert entry.contract.tick_size > 0 and entry.contract.tick_value > 0 and entry.fee > 0
        assert entry.contract.id.startswith("CON.F.US.")
        assert entry.contract.symbol == symbol
    assert cat.get("ES").contract.id.startswith("CON.F.US.EP.")
    assert cat.get("NQ").contract.id.startswith("CON.F.US.ENQ.")
    assert cat.get("ES").contract.tick_value == 12.5
    assert cat.get("mnq").full_size == "NQ"
    assert cat.get(cat.get("CL").contract.id).symbol == "CL"
    assert cat.get("ESZ6").symbol == "ES"
    with pytest.raises(UnknownContractError, match="no contract metadata for 'ZZZ'"):
        cat.get("ZZZ")


def test_virtual_clock_moves_only_forward() -> None:
    start = datetime(2026, 3, 3, 15, tzinfo=UTC)
    clock = VirtualClock(start)
    assert clock.advance(30) == start + timedelta(seconds=30)
    assert clock.timestamp() == (start + timedelta(seconds=30)).timestamp()
    with pytest.raises(ValueError, match="backwards"):
        clock.set(start)
    with pytest.raises(ValueError, match="aware"):
        VirtualClock(datetime(2026, 1, 1))
