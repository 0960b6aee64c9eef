"""Trend queries: counts, crude rates and age-standardised rates, by up to two dimensions.

One validator (``parse_query``) for the dashboard, the charts, the exports and the API; one
runner (``run``) that reads only the pre-aggregated ``trend_counts`` (never the case tables) and
``populations``, and applies disclosure control before anything leaves it: for anyone who is not
``disclosure.exact_for`` the figures, the rows' rates and the total arrive already protected.

Periods are built from months: month, calendar quarter, calendar year, financial year (April to
March), rolling 12 months (one period ending each month) and pooled 3-year periods (three
calendar years ending each year). Whole-period grains widen the range asked for to whole
periods, and the table says which months it covers.

Rates are per 100,000 person-years. The person-years of a period are, for each of its months,
a twelfth of the mid-year population of that month's calendar year, summed; so a calendar
year's rate uses its mid-year population and a pooled 3-year rate divides by the three years'
populations summed. The population matches the row: its areas, and its sex and age band when
the table is broken down by them. Age-standardised rates leave out events of unknown age.

Disclosure control (``dr_panel.privacy.disclosure``) for everyone who is not ``exact_for`` the
figures (leads above all):

- **A fixed grid of periods.** Totals over arbitrary runs of months could be subtracted from one
  another to give back a month the rule hides. So ``from`` and ``to`` are widened to whole
  calendar years (whole financial years for the financial-year grain), the table says so, and
  every figure is a month, quarter, year, financial year or the rolling 12 months or pooled 3
  years the grain defines, or a total over whole years. Periods that have not begun are left
  out; the total of a rolling-12-month table covers the whole years asked for.
- **Every cell perturbed by its cell key**, the sum of its cases' record keys read with the
  counts from ``trend_counts``, then rounded and suppressed by NHS Digital's rule. The total is
  a cell of its own.
- **Rates from the shown figures.** A crude rate and its interval from the shown count; an
  age-standardised rate from each age band's shown count (``disclosure.band_value``); whether a
  rate is given, from the shown count only.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from functools import partial
from itertools import product
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from dr_panel.cases.models import (
    AGE_BANDS,
    LABELS,
    CaseType,
    NfoOutcome,
    Setting,
    Sex,
    Substance,
    TreatmentStatus,
)
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.privacy import disclosure
from dr_panel.privacy.disclosure import Shown
from dr_panel.reference.models import Area
from dr_panel.trends import stats
from dr_panel.trends.models import (
    DIMENSIONS,
    NO_SUBSTANCE,
    NOT_APPLICABLE,
    UNKNOWN,
    Population,
    TrendCount,
)

if TYPE_CHECKING:
    from dr_panel.auth.models import User

MEASURES = ("count", "rate", "dsr")
KEY_DIMENSIONS = ("period", "area", "case_type")
BY_CHOICES = (*KEY_DIMENSIONS, *DIMENSIONS)
GRAINS = ("month", "quarter", "year", "fy", "rolling12", "pooled3")
MAX_BY = 2
EARLIEST = date(2000, 1, 1)
MAX_MONTHS = 30 * 12

MEASURE_LABELS = {
    "count": "Number of events",
    "rate": "Crude rate per 100,000 person-years, with 95% confidence interval (Byar)",
    "dsr": "Age-standardised rate per 100,000 person-years (2013 European Standard "
    "Population), with 95% confidence interval (Dobson)",
}
GRAIN_LABELS = {
    "month": "Month",
    "quarter": "Quarter (calendar)",
    "year": "Calendar year",
    "fy": "Financial year (April to March)",
    "rolling12": "Rolling 12 months",
    "pooled3": "Pooled 3 calendar years",
}
DIMENSION_LABELS = {
    "period": "Period",
    "area": "Area",
    "case_type": "Case type",
    "substance": "Substance",
    "substance_group": "Substance group",
    "age_band": "Age band",
    "sex": "Sex",
    "setting": "Setting",
    "treatment_status": "Treatment status",
    "nfo_outcome": "Outcome of the overdose",
}
MONTH_RE = re.compile(r"([0-9]{4})-([0-9]{2})")
AREA_RE = re.compile(r"[EWSN][0-9]{8}")  # ASCII digits only, as the API documents
MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
BAND_LABELS = [label for _, _, label in AGE_BANDS]
POPULATION_SEXES = ("female", "male")


class QueryError(ValueError):
    """A query that cannot be run; ``field`` names the parameter to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class TrendQuery:
    measure: str = "count"
    by: tuple[str, ...] = ("period",)
    grain: str = "month"
    date_from: date = date(2000, 1, 1)  # first day of the first month
    date_to: date = date(2000, 1, 1)  # first day of the last month (inclusive)
    area_codes: tuple[str, ...] = ()  # empty: every area of the user's
    case_type: str | None = None
    substance: str | None = None

    def args(self) -> dict[str, str]:
        """The query as URL parameters (single-valued, for url_for), the inverse of
        ``parse_query``: bookmarks, chart and download links."""
        out = {
            "measure": self.measure,
            "grain": self.grain,
            "from": f"{self.date_from:%Y-%m}",
            "to": f"{self.date_to:%Y-%m}",
        }
        if self.by:
            out["by"] = self.by[0]
        if len(self.by) > 1:
            out["by2"] = self.by[1]
        if self.area_codes:
            out["area"] = self.area_codes[0]
        if self.case_type:
            out["case_type"] = self.case_type
        if self.substance:
            out["substance"] = self.substance
        return out


@dataclass(frozen=True)
class TrendRow:
    keys: dict[str, str]  # dimension -> value code
    labels: dict[str, str]  # dimension -> what a person reads
    count: Shown
    rate: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    rate_suppressed: bool = False  # withheld by disclosure control (too few events)
    rate_note: str = ""  # why there is no rate, when there is none
    percent: str = ""  # share of the total, from the shown figures ("" when not meaningful)


@dataclass(frozen=True)
class TrendTable:
    columns: list[str]  # the dimensions of ``keys``, in the order asked for
    rows: list[TrendRow]
    total: TrendRow | None
    note: str  # the disclosure rule applied
    describes: str  # what it counts, over which period
    exact: bool
    measure_label: str = ""
    notes: list[str] = field(default_factory=list)  # further caveats (missing populations...)
    months: str = ""  # the months the total covers, like "Jan 2025 to Jun 2025"
    # The same as dates (first days of the first and last months): for a lead, whole years of
    # the grid, which may differ from the months asked for.
    date_from: date | None = None
    date_to: date | None = None


# -- periods -------------------------------------------------------------------------------------


def _mi(d: date) -> int:
    """Month index: months since year 0, so periods are integer arithmetic."""
    return d.year * 12 + d.month - 1


def _md(i: int) -> date:
    return date(i // 12, i % 12 + 1, 1)


def _month_text(i: int) -> str:
    d = _md(i)
    return f"{MONTHS[d.month - 1]} {d.year}"


@dataclass(frozen=True)
class Period:
    code: str
    label: str
    months: tuple[int, ...]  # month indices covered


def _period(grain: str, end_or_key: int) -> Period:
    """One period from its key: the month index (month, rolling12: its last month), the index of
    its first month (quarter, year, fy), or the year it ends (pooled3)."""
    k = end_or_key
    if grain == "month":
        d = _md(k)
        return Period(f"{d:%Y-%m}", _month_text(k), (k,))
    if grain == "quarter":
        d = _md(k)
        q = (d.month - 1) // 3 + 1
        return Period(f"{d.year}-Q{q}", f"{d.year} Q{q} ({MONTHS[d.month - 1]}-"
                      f"{MONTHS[d.month + 1]})", tuple(range(k, k + 3)))
    if grain == "year":
        y = _md(k).year
        return Period(str(y), str(y), tuple(range(k, k + 12)))
    if grain == "fy":
        y = _md(k).year
        return Period(f"{y}-{(y + 1) % 100:02d}", f"{y}/{(y + 1) % 100:02d}",
                      tuple(range(k, k + 12)))
    if grain == "rolling12":
        return Period(f"{_md(k):%Y-%m}", f"12 months to {_month_text(k)}",
                      tuple(range(k - 11, k + 1)))
    if grain == "pooled3":
        return Period(f"{k - 2}-{k}", f"{k - 2}-{k}",
                      tuple(range((k - 2) * 12, (k + 1) * 12)))
    raise QueryError("grain", f"Choose a grain from: {', '.join(GRAINS)}.")


def month_share(month: int, today: date) -> float:
    """How much of month ``month`` (an index) has been lived by ``today``: 1 for a past month,
    the elapsed share of the current one (today counted as lived), 0 for a later one."""
    current = _mi(today)
    if month < current:
        return 1.0
    if month > current:
        return 0.0
    days = (_md(current + 1) - _md(current)).days
    return today.day / days


TO_DATE = " (to date)"


def mark_to_date(periods: list[Period], today: date) -> list[Period]:
    """Label the periods that have not ended yet "(to date)": their counts will still rise."""
    current = _mi(today)
    return [replace(p, label=p.label + TO_DATE) if p.months[-1] >= current else p
            for p in periods]


def periods_for(grain: str, first: int, last: int) -> list[Period]:
    """The periods shown for months ``first..last`` (inclusive): whole periods that touch the
    range (rolling12: one per month; pooled3: one per year)."""
    if grain in ("month", "rolling12"):
        return [_period(grain, k) for k in range(first, last + 1)]
    if grain == "quarter":
        start = first - (first % 12) % 3
        return [_period(grain, k) for k in range(start, last + 1, 3)]
    if grain == "year":
        return [_period(grain, k) for k in range(first - first % 12, last + 1, 12)]
    if grain == "fy":
        start = first - ((first % 12) - 3) % 12  # back to April
        return [_period(grain, k) for k in range(start, last + 1, 12)]
    if grain == "pooled3":
        return [_period(grain, y) for y in range(first // 12, last // 12 + 1)]
    raise QueryError("grain", f"Choose a grain from: {', '.join(GRAINS)}.")


# -- parsing ------------------------------------------------------------------------------------


def _values(args: Mapping[str, Any], key: str) -> list[str]:
    getlist = getattr(args, "getlist", None)
    raw = getlist(key) if getlist else ([args[key]] if key in args else [])
    return [str(v) for v in raw]


def _month(raw: str, name: str, errors: dict[str, str]) -> date | None:
    m = MONTH_RE.fullmatch(raw)
    if not m or not 1 <= int(m.group(2)) <= 12 or not 1900 <= int(m.group(1)) <= 2200:
        errors[name] = f"Give '{name}' as a year and month, YYYY-MM, like 2025-04."
        return None
    return date(int(m.group(1)), int(m.group(2)), 1)


def default_range(today: date | None = None) -> tuple[date, date]:
    """The current month and the two calendar years before it."""
    today = today or utcnow().date()
    return date(today.year - 2, 1, 1), date(today.year, today.month, 1)


def parse_query(
    args: Mapping[str, Any], *, user: User | None = None
) -> tuple[TrendQuery, dict[str, str]]:
    """Validate URL parameters into a query. Errors are keyed by parameter name, each saying
    what is wrong and how to fix it; with errors, the query returned is the nearest valid one
    (for re-showing the form). ``by`` may be repeated or comma-separated (the API), or given as
    ``by`` and ``by2`` (the dashboard's two selects). ``area`` may be repeated. With ``user``,
    areas are checked against their grants."""
    errors: dict[str, str] = {}
    measure = (_values(args, "measure") or ["count"])[0] or "count"
    if measure not in MEASURES:
        errors["measure"] = "Choose the measure: count, rate (crude rate per 100,000) or dsr " \
            "(age-standardised rate)."
        measure = "count"
    grain = (_values(args, "grain") or ["month"])[0] or "month"
    if grain not in GRAINS:
        errors["grain"] = f"Choose the period grain: {', '.join(GRAINS)}."
        grain = "month"
    by: list[str] = []
    given = [*_values(args, "by"), *_values(args, "by2")]
    if not given:
        by = ["period"]
    for raw in given:
        if not raw:  # the dashboard's "nothing"
            continue
        for part in raw.split(","):
            if part not in BY_CHOICES:
                errors["by"] = f"Break down by at most two of: {', '.join(BY_CHOICES)}."
            elif part in by:
                errors["by"] = "Choose two different dimensions, or only one."
            else:
                by.append(part)
    if len(by) > MAX_BY:
        errors["by"] = "Break down by at most two dimensions at once."
        by = by[:MAX_BY]
    start, end = default_range()
    raw_from, raw_to = _values(args, "from"), _values(args, "to")
    if raw_from and raw_from[0]:
        start = _month(raw_from[0], "from", errors) or start
    if raw_to and raw_to[0]:
        end = _month(raw_to[0], "to", errors) or end
    if "from" not in errors and "to" not in errors:
        if start > end:
            errors["from"] = "'from' is after 'to'. Give the earlier month in 'from'."
        elif start < EARLIEST:
            errors["from"] = f"Figures start in {EARLIEST.year}. Give a later 'from' month."
        elif _mi(end) - _mi(start) >= MAX_MONTHS:
            errors["from"] = f"Ask for at most {MAX_MONTHS // 12} years at once."
        elif end.year > utcnow().year + 1:
            errors["to"] = "'to' is too far in the future. Give this month or an earlier one."
    if errors.get("from") or errors.get("to"):
        start, end = default_range()
    codes: list[str] = []
    for raw in _values(args, "area"):
        if not raw:  # the dashboard's "all your areas"
            continue
        code = raw.upper()
        if not AREA_RE.fullmatch(code):
            errors["area"] = "Give an area as its ONS code, a letter and 8 digits, like " \
                "E06000009. Repeat the parameter for several areas."
        elif code not in codes:
            codes.append(code)
    if user is not None and codes and "area" not in errors:
        mine = {a.ons_code for a in user.areas}
        if not set(codes) <= mine:
            errors["area"] = "Choose among your own areas: " + ", ".join(sorted(mine)) + "."
            codes = [c for c in codes if c in mine]
    case_type = (_values(args, "case_type") or [""])[0] or None
    if case_type is not None and case_type not in {t.value for t in CaseType}:
        errors["case_type"] = "Choose the case type: death or nfo (non-fatal overdose), or " \
            "leave it out for both."
        case_type = None
    substance = (_values(args, "substance") or [""])[0] or None
    if substance is not None and substance not in substance_names():
        errors["substance"] = "Choose a substance by its code from the list (like heroin), " \
            "or leave it out for every substance."
        substance = None
    if measure == "dsr" and "age_band" in by:
        errors["by"] = "An age-standardised rate cannot be broken down by age band: choose " \
            "the crude rate, or another dimension."
        by.remove("age_band")
    needed = _cube_dims(tuple(by), measure, substance)
    if len(needed) > 2:
        if substance is not None:
            errors.setdefault("by", "With a substance chosen, break down by at most one of "
                              "substance group, age band, sex, setting, treatment status or "
                              "outcome (period, area and case type are always possible).")
        else:
            errors.setdefault("by", "An age-standardised rate can be broken down by at most one "
                              "dimension besides period, area and case type.")
        by = [d for d in by if d in KEY_DIMENSIONS]
    query = TrendQuery(
        measure=measure, by=tuple(by), grain=grain, date_from=start, date_to=end,
        area_codes=tuple(codes), case_type=case_type, substance=substance,
    )
    return query, errors


def _cube_dims(by: tuple[str, ...], measure: str, substance: str | None) -> list[str]:
    """The cube dimensions a query needs: those it breaks down by, age band for a standardised
    rate, and substance when filtered by one. The cube holds at most two."""
    dims = [d for d in by if d in DIMENSIONS]
    if measure == "dsr" and "age_band" not in dims:
        dims.append("age_band")
    if substance is not None and "substance" not in dims:
        dims.append("substance")
    return dims


def substance_names() -> dict[str, str]:
    return dict(db.session.execute(select(Substance.code, Substance.name)).all())


# -- labels -------------------------------------------------------------------------------------

ENUMS = {
    "sex": Sex,
    "setting": Setting,
    "treatment_status": TreatmentStatus,
    "nfo_outcome": NfoOutcome,
}
SPECIAL_LABELS = {
    UNKNOWN: "Not known",
    NO_SUBSTANCE: "None recorded",
    NOT_APPLICABLE: "Not applicable (deaths)",
}
CASE_TYPE_LABELS = {"death": "Deaths", "nfo": "Non-fatal overdoses"}


class _Labels:
    def __init__(self, areas: list[Area]) -> None:
        self.areas = {str(a.id): a for a in areas}
        self.substances = substance_names()

    def __call__(self, dim: str, value: str) -> str:
        if dim == "area":
            return self.areas[value].name if value in self.areas else value
        if dim == "case_type":
            return CASE_TYPE_LABELS.get(value, value)
        if value in SPECIAL_LABELS:
            return SPECIAL_LABELS[value]
        if dim == "substance":
            return self.substances.get(value, value)
        if dim == "substance_group":
            return value.replace("_", " ").capitalize()
        if dim in ENUMS:
            try:
                member = ENUMS[dim](value)
            except ValueError:
                return value
            return LABELS.get(member, member.label)
        return value


def _sort_key(dim: str, value: str) -> tuple[int, str]:
    if dim == "age_band":
        return (BAND_LABELS.index(value) if value in BAND_LABELS else 99, value)
    if dim in ENUMS:
        order = [m.value for m in ENUMS[dim]]
        return (order.index(value) if value in order else 98, value)
    if value in SPECIAL_LABELS:
        return (99, value)
    return (0, value)


# -- running ------------------------------------------------------------------------------------


@dataclass
class _Populations:
    """Mid-year populations of the areas in scope, by area, year, sex and age band."""

    by_key: dict[tuple[int, int], dict[tuple[str, str], int]]
    # Months that have not ended add only the person-years lived so far: the current month its
    # elapsed share, later months none. A period to date is then a true rate, not understated.
    today: date = field(default_factory=lambda: utcnow().date())

    @classmethod
    def load(cls, area_ids: Iterable[int], years: Iterable[int]) -> _Populations:
        band_of = {age: label for lo, hi, label in AGE_BANDS
                   for age in range(lo, min(hi, stats.MAX_AGE) + 1)}
        out: dict[tuple[int, int], dict[tuple[str, str], int]] = {}
        ids, ys = list(area_ids), sorted(set(years))
        if ids and ys:
            rows = db.session.execute(
                select(Population.area_id, Population.year, Population.sex, Population.age,
                       Population.population)
                .where(Population.area_id.in_(ids), Population.year.between(ys[0], ys[-1]))
            )
            for area_id, year, sex, age, pop in rows:
                cell = out.setdefault((area_id, year), defaultdict(int))
                cell[(sex, band_of[age])] += pop
        return cls(out)

    def person_years(
        self, months: Iterable[int], area_ids: Iterable[int], sex: str | None, band: str | None
    ) -> tuple[float, list[tuple[int, int]]]:
        """Person-years over ``months``, and the (area, year) pairs with no population."""
        total = 0.0
        missing: list[tuple[int, int]] = []
        years: dict[int, float] = defaultdict(float)
        for m in months:
            years[m // 12] += month_share(m, self.today)
        for area_id in area_ids:
            for year, n_months in years.items():
                cell = self.by_key.get((area_id, year))
                if not cell:
                    missing.append((area_id, year))
                    continue
                pop = sum(v for (s, b), v in cell.items()
                          if (sex is None or s == sex) and (band is None or b == band))
                total += pop * n_months / 12
        return total, missing


def scope_areas(query: TrendQuery, user: User) -> list[Area]:
    """The areas a figure covers: the ones asked for, all of which must be the user's, or every
    area of the user's grants."""
    mine = sorted(user.areas, key=lambda a: a.name)
    if not query.area_codes:
        return mine
    chosen = [a for a in mine if a.ons_code in query.area_codes]
    if len(chosen) != len(query.area_codes):
        raise QueryError("area", "Choose among your own areas: "
                         + ", ".join(a.ons_code for a in mine) + ".")
    return chosen


def grid_range(grain: str, first: int, last: int) -> tuple[int, int]:
    """The months ``first..last`` widened to whole years of the grid, for viewers under
    disclosure control: whole financial years (April to March) for the financial-year grain,
    whole calendar years for every other grain. Why: any figure over an arbitrary run of months
    could be subtracted from an overlapping one; whole years are already periods of the grid."""
    if grain == "fy":
        return first - ((first % 12) - 3) % 12, last - ((last % 12) - 3) % 12 + 11
    return first - first % 12, last - last % 12 + 11


Cell = tuple[int, int]  # (count, key sum)


def run(query: TrendQuery, user: User) -> TrendTable:
    """The table, protected for whoever asks: exact counts only for ``exact_for``; everyone else
    gets periods on the fixed grid, ``Shown`` counts perturbed by their cell keys, and rates and
    percentages from the shown counts; the total is a cell of its own."""
    areas = scope_areas(query, user)
    if not areas:
        raise QueryError("area", "You have no areas granted, so there are no figures to show. "
                         "Ask your system administrator to grant your areas.")
    area_ids = [a.id for a in areas]
    exact = disclosure.exact_for(user, area_ids)
    label = _Labels(areas)
    first, last = _mi(query.date_from), _mi(query.date_to)
    notes: set[str] = set()
    today = utcnow().date()
    if not exact:
        grid_first, grid_last = grid_range(query.grain, first, last)
        if (grid_first, grid_last) != (first, last):
            unit = "financial years (April to March)" if query.grain == "fy" else \
                "calendar years"
            notes.add(
                f"Figures cover whole {unit}: {_month_text(grid_first)} to "
                f"{_month_text(grid_last)} (you asked for {_month_text(first)} to "
                f"{_month_text(last)}). Disclosure control: figures over any other run of "
                "months could be subtracted from one another to reveal small counts."
            )
        first, last = grid_first, grid_last
    by = query.by
    with_period = "period" in by
    periods = periods_for(query.grain, first, last) if with_period else []
    if with_period and not exact:
        # Periods that have not begun would only repeat zeros (or, for rolling 12 months, the
        # period to date).
        current = _mi(today)
        periods = [p for p in periods if p.months[0] <= current
                   and (query.grain != "rolling12" or p.months[-1] <= current)]
        periods = periods or periods_for(query.grain, first, first)
    periods = mark_to_date(periods, today) if with_period else []
    if with_period:
        shown_months = sorted({m for p in periods for m in p.months})
        data_first, data_last = shown_months[0], shown_months[-1]
    else:
        data_first, data_last = first, last
    # The total: over the periods shown; for a protected table over the whole years asked for.
    total_first, total_last = (first, last) if not exact else (data_first, data_last)
    dims = _cube_dims(by, query.measure, query.substance)
    dsr = query.measure == "dsr"

    # One grouped read of the cube for the rows, one for the total.
    raw = _read(query, area_ids, dims, by, data_first, data_last)
    # The total counts each case once: only the filter's (and age band's) dimensions.
    raw_total = _read(query, area_ids, _cube_dims((), query.measure, query.substance), (),
                      total_first, total_last)

    month_codes: dict[int, list[str]] = defaultdict(list)
    for p in periods:
        for m in p.months:
            month_codes[m].append(p.code)
    # Row key -> age band ("" unless a standardised rate) -> [count, key sum].
    acc: dict[tuple[str, ...], dict[str, list[int]]] = defaultdict(
        lambda: defaultdict(lambda: [0, 0]))
    seen: dict[str, set[str]] = defaultdict(set)
    others = [d for d in by if d != "period"]
    slot = by.index("period") if with_period else -1
    for values, n, key_sum in raw:
        band = values.get("age_band", "") if dsr else ""
        key = [values.get(d, "") for d in by]
        for d in others:
            seen[d].add(values[d])
        for code in (month_codes[values["month"]] if slot >= 0 else [None]):
            if code is not None:  # a month counts in every period it is in
                key[slot] = code
            cell = acc[tuple(key)][band]
            cell[0] += n
            cell[1] += key_sum
    total_bands: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for values, n, key_sum in raw_total:
        cell = total_bands[values.get("age_band", "") if dsr else ""]
        cell[0] += n
        cell[1] += key_sum

    domains: list[list[str]] = []
    for d in by:
        if d == "period":
            domains.append([p.code for p in periods])
        elif d == "area":
            domains.append([str(a.id) for a in areas])
        elif d == "case_type":
            domains.append([query.case_type] if query.case_type else ["death", "nfo"])
        else:
            domains.append(sorted(seen[d], key=partial(_sort_key, d)))
    period_by_code = {p.code: p for p in periods}
    all_months = tuple(range(data_first, data_last + 1)) if not with_period else ()
    pops = None
    if query.measure != "count":
        years = range(min(data_first, first) // 12, max(data_last, last) // 12 + 1)
        pops = _Populations.load(area_ids, years)
    rule = disclosure.current_rule()
    rate_ctx = _RateContext(query, exact, pops, {a.id: a for a in areas}, area_ids, rule)

    def summed(bands: Mapping[str, list[int]]) -> Cell:
        return sum(c[0] for c in bands.values()), sum(c[1] for c in bands.values())

    total_n, total_key = summed(total_bands)
    total_shown = disclosure.shown_count(total_n, exact=exact, rule=rule, key=total_key)
    rows = []
    for combo in product(*domains):
        bands = acc.get(combo, {})
        n, key_sum = summed(bands)
        keys = dict(zip(by, combo, strict=True))
        months = period_by_code[keys["period"]].months if with_period else all_months
        row_area_ids = [int(keys["area"])] if "area" in keys else area_ids
        shown = disclosure.shown_count(n, exact=exact, rule=rule, key=key_sum)
        rate = rate_ctx.rate(n, shown, bands, months, row_area_ids, keys.get("sex"),
                             keys.get("age_band"), notes)
        labels = {d: (period_by_code[v].label if d == "period" else label(d, v))
                  for d, v in keys.items()}
        out_keys = {d: (label.areas[v].ons_code if d == "area" else v) for d, v in keys.items()}
        percent = ""
        if len(by) == 1 and by[0] != "period":
            percent = disclosure.percent(shown, total_shown)
        rows.append(TrendRow(out_keys, labels, shown, *rate, percent=percent))

    total = None
    total_row_months = tuple(range(total_first, total_last + 1))
    total_rate = rate_ctx.rate(total_n, total_shown, total_bands, total_row_months, area_ids,
                               None, None, notes)
    total = TrendRow({}, {d: "Total" for d in by}, total_shown, *total_rate,
                     percent="100%" if len(by) == 1 and by[0] != "period" else "")
    if not by:
        rows, total = [total], None
    if "substance" in by or "substance_group" in by:
        notes.add("A case mentioning two substances counts under each, so the rows add up to "
                  "more than the total.")
    if dsr:
        notes.add("Age-standardised rates leave out events whose age is not known.")
        if not exact:
            notes.add(
                "Age-standardised rates are worked out from each age band's count as it would "
                f"be shown (a band shown as * counts as {disclosure.SUPPRESSED_BAND_VALUE}), "
                "so they are approximate for small numbers."
            )
    if max(data_last, total_last) >= _mi(today):
        notes.add(
            "Figures up to today include a period that has not ended (marked \"to date\" where "
            "periods are shown): its counts will rise as cases are notified, and its rates use "
            "the person-years lived so far."
        )
    return TrendTable(
        columns=list(by),
        rows=rows,
        total=total,
        note=disclosure.note(exact),
        describes=describe(query, areas, periods, total_first, total_last),
        exact=exact,
        measure_label=MEASURE_LABELS[query.measure],
        notes=sorted(notes),
        months=f"{_month_text(total_first)} to {_month_text(total_last)}",
        date_from=_md(total_first),
        date_to=_md(total_last),
    )


RateFields = tuple[float | None, float | None, float | None, bool, str]


@dataclass
class _RateContext:
    query: TrendQuery
    exact: bool
    pops: _Populations | None
    areas: dict[int, Area]
    all_area_ids: list[int]
    rule: disclosure.Rule

    def rate(self, n: int, shown: Shown, bands: Mapping[str, list[int]],
             months: Iterable[int], area_ids: list[int], sex: str | None, band: str | None,
             notes: set[str]) -> RateFields:
        """The rate of one row. For a protected row, from the shown figures only: the shown
        count (crude), or each age band's shown count (standardised), so that solving the rate
        back gives nothing the viewer cannot already see; and given or not from them alone."""
        if self.query.measure == "count" or self.pops is None:
            return None, None, None, False, ""
        months = tuple(months)
        dsr = self.query.measure == "dsr"
        if self.exact:
            counts = {b: c[0] for b, c in bands.items()}
            events = n - counts.get(UNKNOWN, 0) if dsr else n
            if not disclosure.rate_allowed(events, self.rule):
                return (None, None, None, True, f"Fewer than {self.rule.min_events_for_rate} "
                        "events: no rate is given.")
        else:
            counts = {
                b: disclosure.band_value(
                    disclosure.shown_count(c[0], exact=False, rule=self.rule, key=c[1]))
                for b, c in bands.items() if b in BAND_LABELS
            } if dsr else {}
            enough = disclosure.rate_allowed_shown(shown, self.rule) and (
                not dsr or disclosure.rate_allowed(sum(counts.values()), self.rule))
            if not enough:
                return None, None, None, True, disclosure.no_rate_text(self.rule)
        if sex is not None and sex not in POPULATION_SEXES:
            return None, None, None, False, "No population by this sex: no rate."
        if band is not None and band not in BAND_LABELS:
            return None, None, None, False, "No population for an unknown age: no rate."
        if dsr:
            strata = []
            for b in BAND_LABELS:
                py, missing = self.pops.person_years(months, area_ids, sex, b)
                if missing or py <= 0:
                    return self._missing(missing, notes)
                weight = stats.esp_weight(*_band_ages(b))
                strata.append(stats.Stratum(counts.get(b, 0), py, weight))
            r = stats.dsr(strata)
        else:
            py, missing = self.pops.person_years(months, area_ids, sex, band)
            if missing or py <= 0:
                return self._missing(missing, notes)
            count = n if self.exact else int(shown.value or 0)
            r = stats.crude_rate(count, py)
        return round(r.value, 1), round(r.ci_low, 1), round(r.ci_high, 1), False, ""

    def _missing(self, missing: list[tuple[int, int]], notes: set[str]) -> RateFields:
        gaps = sorted({(self.areas[a].name, y) for a, y in missing})
        if gaps:
            text = "No population estimate for " + "; ".join(f"{n} {y}" for n, y in gaps[:4]) \
                + ("..." if len(gaps) > 4 else "") + ": no rate."
            notes.add("Rates need population estimates; import the missing years on the "
                      "populations page.")
        else:
            text = "No population in this group: no rate."
        return None, None, None, False, text


def _band_ages(label: str) -> tuple[int, int]:
    lo, hi = next((lo, hi) for lo, hi, b in AGE_BANDS if b == label)
    return lo, min(hi, stats.MAX_AGE)


def _read(query: TrendQuery, area_ids: list[int], dims: list[str], by: Iterable[str],
          first: int, last: int) -> list[tuple[dict[str, Any], int, int]]:
    """Sum the cube rows for the pair of dimensions ``dims`` (at most two), grouped by what
    ``by`` needs (and age band for a standardised rate): (values, count, key sum). Filters:
    areas, months, case type, substance."""
    pair = sorted(dims)
    dim_a, dim_b = (pair + ["", ""])[:2]
    column_of = {dim_a: TrendCount.val_a, dim_b: TrendCount.val_b}
    wanted = set(by)
    groups: list[tuple[str, Any]] = []
    if "period" in wanted:
        groups.append(("month", TrendCount.month))
    if "area" in wanted:
        groups.append(("area", TrendCount.area_id))
    if "case_type" in wanted:
        groups.append(("case_type", TrendCount.case_type))
    for d in dims:
        if d in wanted or (d == "age_band" and query.measure == "dsr"):
            groups.append((d, column_of[d]))
    stmt = (
        select(*(c for _, c in groups), func.sum(TrendCount.n), func.sum(TrendCount.key_sum))
        .where(
            TrendCount.dim_a == dim_a,
            TrendCount.dim_b == dim_b,
            TrendCount.area_id.in_(area_ids),
            TrendCount.month.between(_md(first), _md(last)),
        )
    )
    if query.case_type:
        stmt = stmt.where(TrendCount.case_type == query.case_type)
    if query.substance:
        stmt = stmt.where(column_of["substance"] == query.substance)
    if groups:
        stmt = stmt.group_by(*(c for _, c in groups))
    out = []
    for row in db.session.execute(stmt):
        *vals, n, key_sum = row
        if n is None:
            continue
        values: dict[str, Any] = {}
        for (name, _), v in zip(groups, vals, strict=True):
            if name == "month":
                values["month"] = _mi(v)
            elif name == "area":
                values["area"] = str(v)
            else:
                values[name] = v
        out.append((values, int(n), int(key_sum or 0)))
    return out


def describe(query: TrendQuery, areas: list[Area], periods: list[Period], first: int,
             last: int) -> str:
    """What a table counts, where, and over which months: printed above every table and in
    every export's metadata."""
    what = {"death": "Suspected drug-related deaths", "nfo": "Non-fatal overdoses"}.get(
        query.case_type or "", "Suspected drug-related deaths and non-fatal overdoses")
    text = f"{what}, by the month of the event, from {_month_text(first)} to {_month_text(last)}"
    if periods and query.grain == "rolling12":
        text += (f" (12-month periods ending {_month_text(periods[0].months[-1])} to "
                 f"{_month_text(periods[-1].months[-1])})")
    elif periods and query.grain == "pooled3":
        text += f" (3-year periods {periods[0].label} to {periods[-1].label})"
    text += "; " + ", ".join(a.name for a in areas)
    if query.substance:
        text += f"; where {substance_names().get(query.substance, query.substance)} was " \
            "suspected"
    text += ". Merged duplicates are not counted."
    if query.measure != "count":
        text += f" {MEASURE_LABELS[query.measure]}."
    return text
