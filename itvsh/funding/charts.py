"""Bar charts drawn by the app itself: the geometry of a horizontal grouped bar chart, computed here
and rendered as inline SVG by the macro in ``templates/admin/funding/dashboard_charts.html``.

No JavaScript library and nothing from a CDN. Labels are plain strings that the template escapes;
nothing here builds markup. Values are integer cents; the bars are scaled to a "nice" axis maximum
(1, 2, 2.5 or 5 times a power of ten), with grid lines at round steps labelled in whole euros.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from babel import Locale
from babel.numbers import format_currency

from itvsh.core.money import format_money

WIDTH = 860  # viewBox units; the SVG scales to the width of its container
LABEL_WIDTH = 310
RIGHT_MARGIN = 20
TOP = 34  # room for the legend
BOTTOM = 22  # room for the axis labels
BAR_HEIGHT = 11
BAR_GAP = 2
ROW_GAP = 10
LABEL_CHARS = 48


@dataclass(frozen=True)
class Series:
    """One kind of bar (e.g. committed): ``key`` names its CSS class ``itvsh-bar-<key>``."""

    key: str
    label: str


@dataclass(frozen=True)
class Bar:
    series: str
    x: float
    y: float
    width: float
    height: float
    title: str  # "<row>: <series> <amount>", the tooltip and the accessible name


@dataclass(frozen=True)
class Row:
    label: str
    full_label: str
    label_y: float
    bars: tuple[Bar, ...]


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True)
class LegendItem:
    series: str
    label: str
    x: float


@dataclass(frozen=True)
class BarChart:
    title: str
    width: int
    height: float
    plot_left: int
    plot_right: int
    plot_top: int
    plot_bottom: float
    rows: tuple[Row, ...]
    ticks: tuple[Tick, ...]
    legend: tuple[LegendItem, ...]


def nice_ceiling(cents: int) -> int:
    """The smallest 1, 2, 2.5 or 5 times a power of ten euros, at least 10 €, that is at least
    ``cents`` (as cents); 100 € for nothing at all. From 10 € on, every tick is whole euros."""
    if cents <= 0:
        return 100_00
    step = 10
    while True:
        for factor in (1, 2, 2.5, 5):
            candidate = int(step * factor) * 100
            if candidate >= cents:
                return candidate
        step *= 10


def tick_count(top_cents: int) -> int:
    """Steps of the axis up to a nice maximum: 2 -> 0.5 steps (4), otherwise 5 steps (1 -> 0.2,
    2.5 -> 0.5, 5 -> 1), so every grid line falls on a round amount."""
    leading = str(top_cents // 100).rstrip("0")
    return 4 if leading == "2" else 5


def euros(cents: int, locale: str) -> str:
    """Whole euros in ``locale``: ``1.500.000 €`` (de), ``€1,500,000`` (en)."""
    pattern = Locale.parse(locale).currency_formats["standard"].pattern
    whole = pattern.split(";")[0].replace(".00", "")
    return format_currency(Decimal(cents // 100), "EUR", format=whole, locale=locale, currency_digits=False)


def _short(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1].rstrip() + "…"


def grouped_bars(
    title: str,
    series: list[Series],
    rows: list[tuple[str, list[int]]],
    *,
    locale: str = "de",
) -> BarChart | None:
    """A chart with one group of bars per row (``label``, one value in cents per series), or None
    when there are no rows. Negative values are drawn as empty bars (the tables show them)."""
    if not rows:
        return None
    largest = max((max(values, default=0) for _label, values in rows), default=0)
    top_value = nice_ceiling(largest)
    plot_left, plot_right = LABEL_WIDTH, WIDTH - RIGHT_MARGIN
    plot_width = plot_right - plot_left
    group_height = len(series) * (BAR_HEIGHT + BAR_GAP) - BAR_GAP
    drawn = []
    y = TOP
    for label, values in rows:
        bars = []
        for index, (kind, value) in enumerate(zip(series, values, strict=True)):
            width = plot_width * max(int(value), 0) / top_value
            bars.append(
                Bar(
                    series=kind.key,
                    x=plot_left,
                    y=y + index * (BAR_HEIGHT + BAR_GAP),
                    width=round(width, 2),
                    height=BAR_HEIGHT,
                    title=f"{label}: {kind.label} {format_money(int(value), locale)}",
                )
            )
        drawn.append(Row(_short(label), label, y + group_height / 2 + 4, tuple(bars)))
        y += group_height + ROW_GAP
    plot_bottom = y - ROW_GAP / 2
    steps = tick_count(top_value)
    ticks = tuple(
        Tick(round(plot_left + plot_width * step / steps, 2), euros(top_value * step // steps, locale))
        for step in range(steps + 1)
    )
    legend = tuple(
        LegendItem(kind.key, kind.label, plot_left + index * 150) for index, kind in enumerate(series)
    )
    return BarChart(
        title=title,
        width=WIDTH,
        height=plot_bottom + BOTTOM,
        plot_left=plot_left,
        plot_right=plot_right,
        plot_top=TOP - 6,
        plot_bottom=plot_bottom,
        rows=tuple(drawn),
        ticks=ticks,
        legend=legend,
    )
