"""Charts of trend tables, drawn on the server as SVG (matplotlib), so the dashboard needs no
JavaScript and nothing from the internet.

A chart takes a ``TrendTable`` from ``queries.run``: it only ever sees counts already protected
(``Shown``), so a suppressed cell is drawn as a hatched stub labelled ``*`` (bars) or a gap with a
``*`` on the axis (series), never as its value. For viewers who get rounded counts the count axis
is ticked in multiples of the rounding base, so no tick label reads like a small count. The
disclosure note is printed in the chart's footer.

Accessible: the SVG carries ``role="img"`` with a ``<title>`` and a ``<desc>`` (what it shows,
the figures as a list, the disclosure note); text stays text (``svg.fonttype = none``), in black
on white; the palette is Okabe and Ito's, which stays distinct under the common colour-vision
deficiencies, and bars and lines are also told apart by hatching and markers, not colour alone.
Figures are built with the object API (no pyplot), so concurrent requests share no state.
"""

from __future__ import annotations

import io
import math
import re
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

import matplotlib

matplotlib.use("Agg")  # never a GUI backend on a server

from matplotlib import rc_context  # noqa: E402
from matplotlib.backends.backend_svg import FigureCanvasSVG  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FormatStrFormatter, MaxNLocator, MultipleLocator  # noqa: E402

from dr_panel.privacy import disclosure  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

KINDS = ("series", "substance", "age_band")
# Okabe & Ito (2008), colour-blind safe; black text on white throughout.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
HATCHES = ("", "//", "..", "xx", "\\\\", "++", "oo")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
RC: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",  # text as <text>: searchable, readable by screen readers
    "svg.hashsalt": "dr-panel",  # stable element ids
    "font.family": "DejaVu Sans",  # ships with matplotlib; no font is fetched
    "font.size": 10,
    "axes.edgecolor": "#0b0c0c",
    "axes.labelcolor": "#0b0c0c",
    "xtick.color": "#0b0c0c",
    "ytick.color": "#0b0c0c",
    "text.color": "#0b0c0c",
    "hatch.color": "#505a5f",
}
SUBSTANCE_NOTE = "A case mentioning two substances counts under each."


class ChartError(ValueError):
    """A chart that cannot be drawn from this table; the message says what to change."""


def _is_rate(table: Any, measure: str | None) -> bool:
    if measure is not None:
        return measure != "count"
    return any(r.rate is not None or r.rate_suppressed for r in table.rows)


def _label(row: Any, dim: str) -> str:
    return str(row.labels.get(dim) or row.keys.get(dim) or "")


def _value(row: Any, rate: bool) -> float | None:
    """What may be drawn for this row: None where suppressed (a gap, a stub, a '*')."""
    if rate:
        return None if row.rate_suppressed or row.rate is None else float(row.rate)
    return None if row.count.suppressed or row.count.value is None else float(row.count.value)


def _shown_text(row: Any, rate: bool) -> str:
    if rate:
        return disclosure.SUPPRESSED if _value(row, True) is None else f"{row.rate:.1f}"
    return str(row.count.text)


def _count_locator(top: float, exact: bool) -> Any:
    """Ticks for a count axis. Rounded viewers: multiples of the rounding base only, so a tick
    label never reads as a small or unrounded count."""
    if exact:
        return MaxNLocator(nbins=6, integer=True)
    base = max(1, disclosure.round_to())
    step = base
    for factor in (1, 2, 4, 5, 10, 20, 40, 50, 100, 200, 400, 500, 1000, 2000, 5000, 10000):
        step = base * factor
        if top / step <= 6:
            break
    return MultipleLocator(step)


def _footer(fig: Figure, lines: Sequence[str], width: int = 120) -> int:
    wrapped = [w for line in lines if line for w in textwrap.wrap(line, width)]
    fig.text(0.01, 0.01, "\n".join(wrapped), ha="left", va="bottom", fontsize=7.5, wrap=False)
    return len(wrapped)


def _svg(fig: Figure, title: str, desc: str) -> bytes:
    out = io.StringIO()
    FigureCanvasSVG(fig)
    fig.savefig(out, format="svg", metadata={"Date": None})
    svg = out.getvalue()
    head = (
        f'<title id="chart-title">{escape(title)}</title>'
        f'<desc id="chart-desc">{escape(desc)}</desc>'
    )
    svg = re.sub(
        r"<svg\b([^>]*)>",
        lambda m: (
            f'<svg{m.group(1)} role="img" aria-labelledby="chart-title chart-desc">' + head
        ),
        svg,
        count=1,
    )
    return svg.encode("utf-8")


def _describe(kind: str, rows: Sequence[Any], dim: str, rate: bool, table: Any) -> str:
    unit = "rate per 100,000" if rate else "count"
    dims = [dim] + [d for d in _dims(table) if d != dim]
    listed = "; ".join(
        f"{', '.join(_label(r, d) for d in dims if d in r.keys)}: {_shown_text(r, rate)}"
        for r in rows
    )
    return f"{table.describes} Figures ({unit}): {listed or 'none'}. {table.note}"


def _axes(fig: Figure, footer_lines: int, *, label_room: float = 0.6) -> Any:
    """Axes above the footer: the footer's lines and the tick labels (in inches) set the
    bottom, the title sits in a fixed band at the top."""
    height = fig.get_figheight()
    bottom = (0.15 + 0.14 * footer_lines + label_room) / height
    top = 1 - 0.45 / height
    return fig.add_axes((0.1, bottom, 0.86, top - bottom))


def series_chart(table: Any, *, measure: str | None = None, title: str | None = None) -> bytes:
    """Counts or rates by period, with the 95% confidence band for rates. A second dimension,
    if the table has one, gives one line per value."""
    if "period" not in table.columns:
        raise ChartError("A time series needs the table broken down by period.")
    rate = _is_rate(table, measure)
    other = next((c for c in table.columns if c not in ("period",) and c in _dims(table)), None)
    periods: list[str] = []
    for r in table.rows:
        p = r.keys.get("period", "")
        if p not in periods:
            periods.append(p)
    period_label = {r.keys.get("period", ""): _label(r, "period") for r in table.rows}
    groups: dict[str, list[Any]] = {}
    for r in table.rows:
        groups.setdefault(r.keys.get(other, "") if other else "", []).append(r)
    title = title or ("Rate per 100,000 by period" if rate else "Cases by period")
    with rc_context(RC):
        fig = Figure(figsize=(9, 5), dpi=100)
        n_foot = _footer(fig, [table.note] + _data_notes(table))
        ax = _axes(fig, n_foot, label_room=1.0 if len(periods) > 8 else 0.6)
        xs = list(range(len(periods)))
        top = 0.0
        suppressed_x: list[int] = []
        for i, rows in enumerate(groups.values()):
            by_period = {r.keys.get("period", ""): r for r in rows}
            ys = [
                _value(by_period[p], rate) if p in by_period else None for p in periods
            ]
            y_plot = [math.nan if y is None else y for y in ys]
            colour = PALETTE[i % len(PALETTE)]
            name = _label(rows[0], other) if other else ("Rate" if rate else "Count")
            ax.plot(xs, y_plot, color=colour, marker=MARKERS[i % len(MARKERS)], linewidth=2,
                    markersize=4, label=name)
            top = max([top] + [y for y in ys if y is not None])
            if rate:
                lows = [_ci(by_period.get(p), "ci_low") for p in periods]
                highs = [_ci(by_period.get(p), "ci_high") for p in periods]
                band = "95% confidence interval" + (f" ({name})" if other else "")
                ax.fill_between(xs, lows, highs, color=colour, alpha=0.18, linewidth=0,
                                label=band)
                top = max([top] + [h for h in highs if not math.isnan(h)])
            suppressed_x += [x for x, p in zip(xs, periods, strict=True)
                             if p in by_period and ys[x] is None]
        for x in sorted(set(suppressed_x)):
            ax.annotate(disclosure.SUPPRESSED, (x, 0), textcoords="offset points", xytext=(0, 3),
                        ha="center", fontsize=11, fontweight="bold")
        _finish_value_axis(ax, top, rate, table, vertical=True)
        ax.set_xticks(xs)
        ax.set_xticklabels([period_label.get(p, p) for p in periods],
                           rotation=45 if len(periods) > 8 else 0,
                           ha="right" if len(periods) > 8 else "center")
        ax.set_xlim(-0.5, max(len(periods) - 0.5, 0.5))
        ax.set_title(title, loc="left", fontsize=12, fontweight="bold")
        if other or rate:
            ax.legend(loc="upper left", frameon=False, fontsize=8)
        ax.grid(axis="y", color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
        desc = _describe("series", table.rows, "period", rate, table)
        return _svg(fig, title, desc)


def _ci(row: Any, attr: str) -> float:
    if row is None or row.rate_suppressed:
        return math.nan
    value = getattr(row, attr)
    return math.nan if value is None else float(value)


def _dims(table: Any) -> list[str]:
    return [c for c in table.columns if c not in ("count", "rate", "ci_low", "ci_high")]


def _data_notes(table: Any) -> list[str]:
    notes = []
    if {"substance", "substance_group"} & set(table.columns):
        notes.append(SUBSTANCE_NOTE)
    return notes


def _finish_value_axis(ax: Any, top: float, rate: bool, table: Any, *, vertical: bool) -> None:
    axis = ax.yaxis if vertical else ax.xaxis
    upper = max(top * 1.15, 1.0 if rate else float(max(disclosure.round_to(), 1) * 2))
    (ax.set_ylim if vertical else ax.set_xlim)(0, upper)
    if rate:
        axis.set_major_locator(MaxNLocator(nbins=6))
        axis.set_major_formatter(FormatStrFormatter("%.1f"))  # never reads as a count
        (ax.set_ylabel if vertical else ax.set_xlabel)("Rate per 100,000 (95% CI)")
    else:
        axis.set_major_locator(_count_locator(upper, bool(table.exact)))
        axis.set_major_formatter(FormatStrFormatter("%d"))
        (ax.set_ylabel if vertical else ax.set_xlabel)("Cases")


def bar_chart(table: Any, dim: str, *, measure: str | None = None,
              title: str | None = None) -> bytes:
    """Bars by one dimension (substance: horizontal, longest first as the table orders them;
    age band: vertical, in band order). Suppressed bars: a hatched stub labelled '*'."""
    if dim not in table.columns:
        raise ChartError(f"This chart needs the table broken down by {dim.replace('_', ' ')}.")
    rate = _is_rate(table, measure)
    rows = list(table.rows)
    horizontal = dim in ("substance", "substance_group")
    noun = "Rate per 100,000" if rate else "Cases"
    title = title or f"{noun} by {dim.replace('_', ' ')}"
    with rc_context(RC):
        height = max(4.5, 0.32 * len(rows) + 2.5) if horizontal else 5
        fig = Figure(figsize=(9, height), dpi=100)
        n_foot = _footer(fig, [table.note] + _data_notes(table))
        ax = _axes(fig, n_foot)
        if horizontal:
            ax.set_position((0.28, ax.get_position().y0, 0.66, ax.get_position().height))
        values = [_value(r, rate) for r in rows]
        top = max([v for v in values if v is not None] + [0.0])
        if rate:
            top = max([top] + [float(r.ci_high) for r in rows
                               if r.ci_high is not None and not r.rate_suppressed])
        stub = max(top, float(disclosure.round_to() * 2)) * 0.03
        positions = list(range(len(rows)))
        draw = ax.barh if horizontal else ax.bar
        shown = [v if v is not None else 0.0 for v in values]
        bars = draw(positions, shown, color=PALETTE[0], edgecolor="#0b0c0c", linewidth=0.5)
        for bar, v in zip(bars, values, strict=True):
            if v is None:  # suppressed: no value drawn, a hatched stub instead
                if horizontal:
                    bar.set_width(stub)
                else:
                    bar.set_height(stub)
                bar.set_facecolor("white")
                bar.set_hatch("////")
        if rate:
            errs = [
                (
                    (r.rate - r.ci_low, r.ci_high - r.rate)
                    if v is not None and r.ci_low is not None and r.ci_high is not None
                    else (0.0, 0.0)
                )
                for r, v in zip(rows, values, strict=True)
            ]
            lower = [e[0] for e in errs]
            upper = [e[1] for e in errs]
            if horizontal:
                ax.errorbar(shown, positions, xerr=[lower, upper], fmt="none", ecolor="#0b0c0c",
                            capsize=3, linewidth=1, label="95% confidence interval")
            else:
                ax.errorbar(positions, shown, yerr=[lower, upper], fmt="none", ecolor="#0b0c0c",
                            capsize=3, linewidth=1, label="95% confidence interval")
        for pos, r, v in zip(positions, rows, values, strict=True):
            text = _shown_text(r, rate)
            at = (v or 0.0) if v is not None else stub
            if rate and v is not None and r.ci_high is not None:
                at = max(at, float(r.ci_high))  # above the interval's whisker
            if horizontal:
                ax.annotate(text, (at, pos), textcoords="offset points", xytext=(4, 0),
                            va="center", ha="left", fontsize=9)
            else:
                ax.annotate(text, (pos, at), textcoords="offset points", xytext=(0, 3),
                            ha="center", va="bottom", fontsize=9)
        labels = [_label(r, dim) for r in rows]
        if horizontal:
            ax.set_yticks(positions)
            ax.set_yticklabels(labels)
            ax.invert_yaxis()
            _finish_value_axis(ax, top, rate, table, vertical=False)
            ax.grid(axis="x", color="#dddddd", linewidth=0.6)
        else:
            ax.set_xticks(positions)
            ax.set_xticklabels(labels)
            _finish_value_axis(ax, top, rate, table, vertical=True)
            ax.grid(axis="y", color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.set_title(title, loc="left", fontsize=12, fontweight="bold")
        desc = _describe("bar", rows, dim, rate, table)
        return _svg(fig, title, desc)


def chart(kind: str, table: Any, *, measure: str | None = None) -> bytes:
    """The chart of one kind (``KINDS``) for a table broken down the way it needs."""
    if kind == "series":
        return series_chart(table, measure=measure)
    if kind in ("substance", "age_band"):
        return bar_chart(table, kind, measure=measure)
    raise ChartError(f"There is no chart called {kind!r}: choose one of {', '.join(KINDS)}.")


def by_for(kind: str, by: Sequence[str]) -> tuple[str, ...]:
    """The breakdown a chart needs, given the one the dashboard asked for: a series keeps a
    second dimension crossed with period; bars are by their own dimension only."""
    if kind == "series":
        rest = [d for d in by if d != "period"][:1]
        return ("period", *rest)
    return (kind,)


def alt_text(kind: str) -> str:
    return {
        "series": "Line chart of the figures by period; the table below gives every value.",
        "substance": "Bar chart of the figures by substance; the table gives every value.",
        "age_band": "Bar chart of the figures by age band; the table gives every value.",
    }.get(kind, "Chart of the figures; the table gives every value.")
