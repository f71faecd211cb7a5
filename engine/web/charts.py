"""Charts of the report pages: SVG drawn on the server by pygal, inlined in the page.

Nothing is fetched from elsewhere and no script runs: pygal's tooltip script (from a CDN by
default) is switched off and its inline configuration script removed, so the charts work
offline and under the UI's Content-Security-Policy (``script-src 'none'``; inline styles,
which the SVG uses, are allowed).
"""

from __future__ import annotations

import re

import pygal
from markupsafe import Markup
from pygal.style import Style

from engine.services.reports.model import Chart, Table

SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.DOTALL | re.IGNORECASE)
STYLE = Style(
    background="transparent",
    plot_background="transparent",
    font_family="system-ui, sans-serif",
    colors=("#2563eb", "#16a34a", "#f59e0b", "#dc2626", "#6b7280", "#9333ea"),
    label_font_size=12,
    major_label_font_size=12,
    legend_font_size=12,
    title_font_size=14,
)
BAND_COLORS = {"red": "#dc2626", "yellow": "#eab308", "green": "#16a34a", "unknown": "#9ca3af"}
KINDS = {"bar": pygal.Bar, "hbar": pygal.HorizontalBar, "stacked": pygal.StackedBar}


def _number(value: object, rate: bool) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return round(float(value) * 100, 1) if rate else float(value)
    return None


def render_chart(table: Table, chart: Chart) -> Markup:
    """``table`` drawn as ``chart``: an inline ``<svg>`` element, safe to put in a page."""
    rates = {c.key for c in table.columns if c.kind == "rate"}
    labels = {c.key: c.label for c in table.columns}
    colors = tuple(BAND_COLORS.get(s, STYLE.colors[i % 6]) for i, s in enumerate(chart.series))
    style = Style(**{**STYLE.to_dict(), "colors": colors})
    rows = table.rows if chart.type != "hbar" else list(reversed(table.rows))
    graph = KINDS[chart.type](
        js=[],
        disable_xml_declaration=True,
        width=760,
        height=max(260, 28 * len(rows) + 80) if chart.type == "hbar" else 300,
        explicit_size=False,
        style=style,
        title=chart.title,
        legend_at_bottom=True,
        print_values=False,
        x_label_rotation=0 if len(rows) < 7 else 30,
        truncate_label=28,
    )
    graph.x_labels = [str(row[chart.label].value) if chart.label in row else "" for row in rows]
    for series in chart.series:
        rate = series in rates
        name = labels.get(series, series.replace("_", " ").title())
        graph.add(
            name,
            [_number(row[series].value, rate) if series in row else None for row in rows],
        )
    svg = SCRIPT.sub("", graph.render(is_unicode=True))
    return Markup(svg)  # pygal escapes labels and titles (it writes the SVG with etree)
