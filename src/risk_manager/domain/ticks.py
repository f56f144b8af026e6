"""Tick math (rules.md § Shared vocabulary). Tick size and value always come from contract metadata."""

from __future__ import annotations

import math

from risk_manager.domain.enums import PositionType

# Prices are floats; comparisons against tick multiples allow this much rounding noise.
_EPS = 1e-9


def price_ticks(price: float, average_price: float, position_type: PositionType, tick_size: float) -> float:
    """Ticks of profit of a position at `price`: (price − avg)/tick for long, (avg − price)/tick for short."""
    if tick_size <= 0:
        raise ValueError(f"tick size must be positive, got {tick_size}")
    if position_type == PositionType.LONG:
        return (price - average_price) / tick_size
    if position_type == PositionType.SHORT:
        return (average_price - price) / tick_size
    raise ValueError(f"position type {position_type!r} has no direction")


def open_pnl(price: float, average_price: float, position_type: PositionType, size: int,
             tick_size: float, tick_value: float) -> float:
    """Open P&L in dollars: ticks × tick value × size."""
    return price_ticks(price, average_price, position_type, tick_size) * tick_value * size


def fill_pnl(entry_price: float, exit_price: float, closed_type: PositionType, size: int,
             tick_size: float, tick_value: float) -> float:
    """Realized P&L of closing `size` contracts of a `closed_type` position opened at `entry_price`."""
    return open_pnl(exit_price, entry_price, closed_type, size, tick_size, tick_value)


def round_to_tick(price: float, tick_size: float, mode: str = "nearest") -> float:
    """`price` on the tick grid: mode `nearest`, `up` (ceil) or `down` (floor)."""
    if tick_size <= 0:
        raise ValueError(f"tick size must be positive, got {tick_size}")
    ticks = price / tick_size
    if mode == "nearest":
        n = round(ticks)
    elif mode == "up":
        n = math.ceil(ticks - _EPS)
    elif mode == "down":
        n = math.floor(ticks + _EPS)
    else:
        raise ValueError(f"mode must be nearest, up or down, got {mode!r}")
    # Round the product to the tick's own decimals so 0.1 * 3 prints as 0.3.
    return round(n * tick_size, _decimals(tick_size))


def offset_ticks(price: float, ticks: float, tick_size: float) -> float:
    """`price` moved by `ticks` ticks (negative moves down), rounded to the tick grid."""
    return round_to_tick(price + ticks * tick_size, tick_size)


def is_on_tick(price: float, tick_size: float) -> bool:
    ticks = price / tick_size
    return abs(ticks - round(ticks)) < 1e-6


def _decimals(tick_size: float) -> int:
    text = f"{tick_size:.10f}".rstrip("0")
    return len(text.split(".")[1]) if "." in text else 0
