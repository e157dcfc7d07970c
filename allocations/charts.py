"""A server-side SVG of cumulative SU use: no chart library, no JavaScript."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

WIDTH, HEIGHT, PAD = 640, 180, 28


def usage_chart_svg(*, daily: list[tuple[date, Decimal]], awarded: Decimal, used_before: Decimal) -> dict:
    """Points for a polyline of cumulative usage, scaled to the award; returns template data."""
    total = used_before
    points = []
    cumulative = []
    for _, sus in daily:
        total += sus
        cumulative.append(total)
    top = max([awarded, *cumulative, Decimal(1)])
    n = max(len(cumulative) - 1, 1)
    for i, value in enumerate(cumulative):
        x = PAD + (WIDTH - 2 * PAD) * i / n
        y = HEIGHT - PAD - float(value / top) * (HEIGHT - 2 * PAD)
        points.append(f"{x:.1f},{y:.1f}")
    award_y = HEIGHT - PAD - float(awarded / top) * (HEIGHT - 2 * PAD) if awarded else None
    return {
        "width": WIDTH, "height": HEIGHT, "pad": PAD, "points": " ".join(points), "award_y": award_y,
        "first_day": daily[0][0] if daily else None, "last_day": daily[-1][0] if daily else None,
        "baseline_y": HEIGHT - PAD, "right_x": WIDTH - PAD, "top": top,
    }
