"""Usage charts as server-rendered SVG: stacked bars per day, one colour per series.

No chart library and no script: the SVG is part of the page, so it renders as fast as the
HTML around it and works without JavaScript.  Each bar has a ``<title>`` (a tooltip, read by
screen readers), the chart has a title and a text summary, and the page shows the same
numbers in a table, so colour is never the only way to tell series apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

from bastion.storage.sql.usage import DailyUsage

# Distinct on white and for the common colour-vision deficiencies (Okabe-Ito order, darkened
# where needed for 3:1 contrast against the white background).
PALETTE = ("#0b5fa5", "#c25400", "#0a7d5a", "#8a3ffc", "#b0306a", "#5c6f00", "#0e7490")
OTHER_COLOUR = "#6b7280"
MAX_SERIES = len(PALETTE)

WIDTH = 720
HEIGHT = 240
LEFT = 72
RIGHT = 12
TOP = 12
BOTTOM = 30


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    colour: str
    values: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.values)


@dataclass(frozen=True, slots=True)
class Chart:
    id: str
    title: str
    days: tuple[int, ...]
    series: tuple[Series, ...]
    fmt: Callable[[int], str]

    @property
    def total(self) -> int:
        return sum(s.total for s in self.series)

    def day_totals(self) -> list[int]:
        return [sum(s.values[i] for s in self.series) for i in range(len(self.days))]


def build_series(
    rows: Iterable[DailyUsage],
    days: list[int],
    value: Callable[[DailyUsage], int],
    names: dict[str, str],
) -> tuple[Series, ...]:
    """One series per group (the largest ones; the rest summed as "other")."""
    index = {day: i for i, day in enumerate(days)}
    per_group: dict[str, list[int]] = {}
    for row in rows:
        if row.day not in index:
            continue
        values = per_group.setdefault(row.group, [0] * len(days))
        values[index[row.day]] += value(row)
    ranked = sorted(per_group.items(), key=lambda item: (-sum(item[1]), item[0]))
    ranked = [(g, v) for g, v in ranked if any(v)]
    kept = ranked[: MAX_SERIES - 1] if len(ranked) > MAX_SERIES else ranked
    rest = ranked[len(kept) :]
    series = [
        Series(names.get(group, group), PALETTE[i], tuple(values))
        for i, (group, values) in enumerate(kept)
    ]
    if rest:
        summed = [sum(v[i] for _, v in rest) for i in range(len(days))]
        series.append(Series(f"{len(rest)} others", OTHER_COLOUR, tuple(summed)))
    return tuple(series)


def _nice_max(value: int) -> int:
    """The smallest 1, 2 or 5 × 10ⁿ at or above ``value`` (so ticks fall on round numbers)."""
    if value <= 0:
        return 1
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def svg(chart: Chart, day_label: Callable[[int], str]) -> Markup:
    n = len(chart.days)
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    totals = chart.day_totals()
    top = _nice_max(max(totals, default=0))
    slot = plot_w / max(n, 1)
    bar_w = max(2.0, slot * 0.7)
    cid = escape(chart.id)
    busiest = max(range(n), key=lambda i: totals[i]) if n and any(totals) else None
    summary = (
        f"{chart.fmt(chart.total)} in {n} days"
        + (f"; the highest day is {day_label(chart.days[busiest])} " if busiest is not None else "")
        + (f"with {chart.fmt(totals[busiest])}." if busiest is not None else ".")
    )
    out = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{cid}-title {cid}-desc" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{cid}-title">{escape(chart.title)}</title>',
        f'<desc id="{cid}-desc">{escape(summary)}</desc>',
    ]
    for tick in range(5):
        value = top * tick // 4
        y = TOP + plot_h - plot_h * tick / 4
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#d1d5db" stroke-width="1"/>'
            f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#374151">{escape(chart.fmt(value))}</text>'
        )
    label_every = max(1, -(-n // 8))
    for i, day in enumerate(chart.days):
        x = LEFT + slot * i + (slot - bar_w) / 2
        base = float(TOP + plot_h)
        for series in chart.series:
            value = series.values[i]
            if value <= 0:
                continue
            h = plot_h * value / top
            base -= h
            tip = f"{day_label(day)} · {series.name}: {chart.fmt(value)}"
            out.append(
                f'<rect x="{x:.1f}" y="{base:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{series.colour}"><title>{escape(tip)}</title></rect>'
            )
        if (n - 1 - i) % label_every == 0:  # counted from today, so it is always labelled
            out.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{HEIGHT - 10}" text-anchor="middle" '
                f'font-size="11" fill="#374151">{escape(day_label(day))}</text>'
            )
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - every interpolated text is escaped above
