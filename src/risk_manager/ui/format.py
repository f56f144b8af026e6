"""Pure text formatting for the dashboard: money, durations, rule bars and their colours."""

from __future__ import annotations

from rich.text import Text

BAR_WIDTH = 20


def money(value: float | None) -> str:
    if value is None:
        return "—"
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}"


def pnl_text(value: float | None) -> Text:
    """Money, green when positive, red when negative."""
    style = "" if value is None or value == 0 else ("green" if value > 0 else "red")
    return Text(money(value), style=style)


def duration(seconds: float, *, countdown: bool = True) -> str:
    """`1h 02m 03s`, `4m 05s`, `12s` (never negative: a past deadline shows `0s`).

    A countdown rounds up (it shows 1s until the last fraction has passed); an age rounds down.
    """
    total = max(0, int(seconds + 0.999) if countdown else int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def bar_colour(fraction: float) -> str:
    """green below 50 %, yellow from 50 % to 80 %, red above 80 % of the limit."""
    if fraction > 0.8:
        return "red"
    if fraction >= 0.5:
        return "yellow"
    return "green"


def rule_bar(fraction: float, width: int = BAR_WIDTH) -> Text:
    """`█████░░░░░  52%` coloured by distance to the limit."""
    shown = min(max(fraction, 0.0), 1.0)
    filled = round(shown * width)
    colour = bar_colour(fraction)
    text = Text("█" * filled, style=colour)
    text.append("░" * (width - filled), style="grey37")
    text.append(f" {fraction * 100:4.0f}%", style=colour)
    return text


def number(value: float) -> str:
    return f"{value:,.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{int(value):,}"
