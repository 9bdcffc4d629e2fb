"""Charts for the PDF reports, drawn with reportlab's own graphics (vector, no image files, no
extra dependency): a grouped bar chart of money per group, e.g. committed and paid per budget
category.

Values come in as integer cents; the chart draws whole euros (``cents // 100``: a bar is a picture,
the exact figures stand in the table beside it) and labels its axis in the report's locale.
"""

from __future__ import annotations

from collections.abc import Sequence

from babel import Locale
from babel.numbers import format_currency

SERIES_COLOURS = ("#1f4e79", "#7fb3d5", "#c0504d", "#9bbb59")


def _short(label: str, limit: int = 22) -> str:
    label = str(label)
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _whole_euros(euros: int, locale: str) -> str:
    """An axis label: whole euros in the locale's currency pattern (``€200,000`` / ``200.000 €``)."""
    pattern = Locale.parse(locale or "de").currency_formats["standard"].pattern.replace(".00", "")
    return format_currency(euros, "EUR", locale=locale or "de", format=pattern, currency_digits=False)


def money_bar_chart(
    groups: Sequence[str],
    series: Sequence[tuple[str, Sequence[int]]],
    locale: str,
    *,
    width: float = 480,
    height: float = 220,
):
    """A reportlab ``Drawing`` (a flowable): one cluster of bars per group, one bar per series
    (``(name, [cents per group])``), a legend with the series names and the value axis in euros."""
    from reportlab.graphics.charts.barcharts import VerticalBarChart
    from reportlab.graphics.charts.legends import Legend
    from reportlab.graphics.shapes import Drawing
    from reportlab.lib import colors

    drawing = Drawing(width, height)
    chart = VerticalBarChart()
    chart.x, chart.y = 60, 60
    chart.width, chart.height = width - 80, height - 95
    data = [[int(cents) // 100 for cents in values] for _name, values in series]
    chart.data = data or [[0]]
    highest = max([0, *(v for row in data for v in row)])
    lowest = min([0, *(v for row in data for v in row)])
    chart.valueAxis.valueMin = lowest
    chart.valueAxis.valueMax = highest if highest > lowest else lowest + 1
    chart.valueAxis.labelTextFormat = lambda value: _whole_euros(int(value), locale)
    chart.valueAxis.labels.fontName = "Helvetica"
    chart.valueAxis.labels.fontSize = 7
    chart.categoryAxis.categoryNames = [_short(g) for g in groups] or [""]
    chart.categoryAxis.labels.fontName = "Helvetica"
    chart.categoryAxis.labels.fontSize = 7
    chart.categoryAxis.labels.angle = 20
    chart.categoryAxis.labels.boxAnchor = "ne"
    chart.categoryAxis.labels.dy = -2
    chart.groupSpacing = 8
    chart.barSpacing = 1
    for index in range(len(data)):
        chart.bars[index].fillColor = colors.HexColor(SERIES_COLOURS[index % len(SERIES_COLOURS)])
        chart.bars[index].strokeColor = None
    drawing.add(chart)

    legend = Legend()
    legend.x, legend.y = 60, height - 12
    legend.alignment = "right"
    legend.columnMaximum = 1
    legend.deltax = 110
    legend.fontName = "Helvetica"
    legend.fontSize = 8
    legend.colorNamePairs = [
        (colors.HexColor(SERIES_COLOURS[i % len(SERIES_COLOURS)]), str(name))
        for i, (name, _values) in enumerate(series)
    ]
    drawing.add(legend)
    return drawing
