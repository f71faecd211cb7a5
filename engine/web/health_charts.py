"""Health drawn on the server: a tiny trend line per customer row, and a customer's score
history with each measure's share of it.

The sparkline is a hand-written ``<svg>`` polyline (a few hundred bytes, so a list of 500
customers stays light); the history chart is a pygal stacked area like the report charts
(`engine.web.charts`: no script, nothing fetched).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import pygal
from markupsafe import Markup, escape
from pygal.style import Style

from engine.store.health_trends import Point, change_over
from engine.store.models import HealthScore
from engine.web.charts import SCRIPT, STYLE

SPARK_WIDTH, SPARK_HEIGHT = 96, 24
FALLING, RISING, FLAT = "#b91c1c", "#15803d", "#4b5563"


def sparkline(points: Sequence[Point], since: date, until: date) -> Markup:
    """``points`` (scores 0-100) over the days from ``since`` to ``until`` as a small inline
    SVG line, red when it fell, green when it rose; empty without two known points."""
    known = [p for p in points if p.score is not None]
    if len(known) < 2:
        return Markup("")
    span = max((until - since).days, 1)

    def xy(p: Point) -> str:
        x = (p.day - since).days / span * (SPARK_WIDTH - 2) + 1
        y = (100 - (p.score or 0)) / 100 * (SPARK_HEIGHT - 2) + 1
        return f"{x:.1f},{y:.1f}"

    change = change_over(known) or 0
    color = FALLING if change < 0 else RISING if change > 0 else FLAT
    first, last = known[0].score, known[-1].score
    label = f"Health {first} to {last} over {span} days"
    return Markup(
        f'<svg class="spark" width="{SPARK_WIDTH}" height="{SPARK_HEIGHT}" '
        f'viewBox="0 0 {SPARK_WIDTH} {SPARK_HEIGHT}" role="img" aria-label="{escape(label)}">'
        f"<title>{escape(label)}</title>"
        f'<polyline fill="none" stroke="{color}" stroke-width="1.5" '
        f'points="{" ".join(xy(p) for p in known)}"/></svg>'
    )


def contributions(point: HealthScore) -> dict[str, float]:
    """Each known measure's share of the day's score (points x weight / known weight), so
    the shares add up to the score."""
    known = {
        name: m
        for name, m in (point.measures or {}).items()
        if m.get("points") is not None and m.get("weight")
    }
    weight = sum(float(m["weight"]) for m in known.values())
    if not weight:
        return {}
    return {name: float(m["points"]) * float(m["weight"]) / weight for name, m in known.items()}


def history_chart(points: Sequence[HealthScore], labels: dict[str, str]) -> Markup:
    """The score per day, stacked from each measure's contribution (a measure unknown on a
    day adds nothing that day); ``labels`` names the measures. Empty without points."""
    if not points:
        return Markup("")
    shares = [contributions(p) for p in points]
    names = sorted({name for day in shares for name in day})
    graph = pygal.StackedLine(
        js=[],
        disable_xml_declaration=True,
        width=760,
        height=300,
        explicit_size=False,
        fill=True,
        style=Style(**{**STYLE.to_dict(), "opacity": ".6", "opacity_hover": ".8"}),
        title="Health score by measure",
        legend_at_bottom=True,
        show_dots=len(points) < 20,
        range=(0, 100),
        x_label_rotation=0,
        show_minor_x_labels=False,
        truncate_label=12,
    )
    graph.x_labels = [p.day.strftime("%d %b") for p in points]
    every = max(1, len(points) // 6)
    graph.x_labels_major = graph.x_labels[::every]
    for name in names:
        graph.add(
            labels.get(name, name.replace("_", " ")),
            [round(day.get(name, 0.0), 1) for day in shares],
        )
    svg = SCRIPT.sub("", graph.render(is_unicode=True))
    return Markup(svg)  # pygal escapes labels and titles


def window(today: date, days: int) -> tuple[date, date]:
    """The first and last day of a trend over ``days`` ending ``today``."""
    return today - timedelta(days=days), today
