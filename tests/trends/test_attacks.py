"""Attacks on the trend figures a lead sees, as a lead would run them (issue 11, defect 2).

The lead knows the published method (``dr_panel.privacy.disclosure``: how counts are perturbed,
at most how far, and the rounding and suppression on top), the population estimates (they are
public) and the European Standard Population; they do not know the cases' record keys. Each
attack collects every figure the lead can get and asks whether any hidden count (anything but
a shown 0) comes back exactly. The attacks use only what a lead sees (``queries.run`` as the
pages, charts, files and the API call it), so they ran against the code before the fix too,
and failed there: the differencing walk recovered 28 of the 30 hidden monthly counts of the two
areas in 2024-25 exactly, back-solving the age-standardised rate recovered the exact total (19),
and a count shown as "10" carried a rate or not depending on whether it was 8-9 or 10-12.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from typing import Any

import numpy as np
import pytest
from scipy.optimize import Bounds, LinearConstraint, milp

from dr_panel.auth.models import Role
from dr_panel.cases.models import AGE_BANDS
from dr_panel.extensions import db
from dr_panel.privacy import disclosure
from dr_panel.reference.models import Area
from dr_panel.trends import queries, stats
from dr_panel.trends.queries import GRAINS, parse_query, run
from tests.trends import t2_data

BLACKPOOL, BLACKBURN = "E06000009", "E06000008"
# Events per month, January to December. Most are what the rule hides (1-7) or rounds.
MONTHLY = {
    (BLACKPOOL, 2024): [2, 4, 7, 1, 10, 3, 0, 5, 6, 2, 9, 1],
    (BLACKPOOL, 2025): [3, 12, 0, 13, 5, 9, 1, 8, 2, 11, 6, 4],
    (BLACKBURN, 2024): [0, 1, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0],
    (BLACKBURN, 2025): [1, 0, 2, 0, 3, 0, 0, 1, 0, 0, 2, 0],
}
MONTHS = re.compile(r"([A-Z][a-z]{2}) ([0-9]{4}) to ([A-Z][a-z]{2}) ([0-9]{4})")


@pytest.fixture
def coordinator(create_user: Any) -> Any:
    return create_user(Role.COORDINATOR, areas=(BLACKPOOL, BLACKBURN))


@pytest.fixture
def lead(create_user: Any) -> Any:
    return create_user(Role.LEAD, areas=(BLACKPOOL, BLACKBURN))


def mi(year: int, month: int) -> int:
    return year * 12 + month - 1


def build_monthly(coordinator: Any) -> dict[tuple[str, int], int]:
    """The cases of ``MONTHLY``, through the intake service; the truth by (area, month index)."""
    truth: dict[tuple[str, int], int] = {}
    n = 0
    for (area, year), counts in MONTHLY.items():
        for month, count in enumerate(counts, start=1):
            truth[(area, mi(year, month))] = count
            for i in range(count):
                t2_data.make(coordinator, n, ["nfo", "death"][i % 2],
                             f"{year}-{month:02d}-{i % 27 + 1:02d}", area=area)
                n += 1
    db.session.commit()
    return truth


def ask(user: Any, **args: str) -> Any:
    query, errors = parse_query(args, user=user)
    assert not errors, errors
    return run(query, user)


# -- what a figure tells an attacker who knows the method -----------------------------------------


def interval(figure: disclosure.Shown) -> tuple[int, int]:
    """The exact counts that could have produced a shown figure, by the published method (with
    no perturbation before the fix: the bound is read from the module, as an attacker reads
    the documentation)."""
    spread = getattr(disclosure, "MAX_NOISE", 0)
    half = disclosure.round_to() // 2
    if figure.text == "0":
        return 0, 0
    if figure.suppressed:
        return 1, disclosure.suppress_below() - 1 + spread
    assert figure.value is not None
    return max(1, figure.value - half - spread), figure.value + half + spread


def months_of_total(table: Any) -> tuple[int, ...]:
    m = MONTHS.fullmatch(table.months)
    assert m, table.months
    names = queries.MONTHS
    first = mi(int(m.group(2)), names.index(m.group(1)) + 1)
    last = mi(int(m.group(4)), names.index(m.group(3)) + 1)
    return tuple(range(first, last + 1))


class Attacker:
    """Collects (set of area-months, interval) constraints and solves them as an integer
    programme: for each hidden cell, the least and the greatest count consistent with every
    figure seen. A cell is recovered when the two meet."""

    def __init__(self) -> None:
        self.seen: dict[frozenset[tuple[str, int]], tuple[int, int]] = {}

    def learn(self, cells: Any, figure: disclosure.Shown) -> None:
        key = frozenset(cells)
        lo, hi = interval(figure)
        old = self.seen.get(key, (0, 10**6))
        self.seen[key] = (max(lo, old[0]), min(hi, old[1]))

    def learn_table(self, table: Any, areas: list[str], grain: str) -> None:
        periods = {p.code: p.months for p in queries.periods_for(grain, mi(2019, 1), mi(2027, 12))}
        for row in table.rows:
            row_areas = [row.keys["area"]] if "area" in row.keys else areas
            months = periods[row.keys["period"]] if "period" in row.keys else \
                months_of_total(table)
            self.learn(((a, m) for a in row_areas for m in months), row.count)
        if table.total is not None:
            self.learn(((a, m) for a in areas for m in months_of_total(table)), table.total.count)

    def recovered(self, truth: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
        variables = sorted({c for cells in self.seen for c in cells} | set(truth))
        index = {v: i for i, v in enumerate(variables)}
        matrix = np.zeros((len(self.seen), len(variables)))
        lo, hi = np.zeros(len(self.seen)), np.zeros(len(self.seen))
        for r, (cells, (a, b)) in enumerate(self.seen.items()):
            for c in cells:
                matrix[r, index[c]] = 1
            lo[r], hi[r] = a, b
            # The model is sound: the truth satisfies every constraint it drew.
            assert a <= sum(truth.get(c, 0) for c in cells) <= b, (sorted(cells)[:3], a, b)
        constraints = LinearConstraint(matrix, lo, hi)
        integer = np.ones(len(variables))
        bounds = Bounds(0, 200)
        out = {}
        for cell, value in truth.items():
            if value == 0:
                continue  # a 0 is shown as 0 by the rule: nothing to hide
            c = np.zeros(len(variables))
            c[index[cell]] = 1
            low = milp(c, constraints=constraints, integrality=integer, bounds=bounds)
            high = milp(-c, constraints=constraints, integrality=integer, bounds=bounds)
            assert low.success and high.success
            if round(low.fun) == round(-high.fun) == value:
                out[cell] = value
        return out


# -- the attacks ----------------------------------------------------------------------------------


def test_a_differencing_walk_over_periods_areas_and_totals_recovers_no_hidden_count(
    coordinator: Any, lead: Any
) -> None:
    """Every from/to a lead can send in 2025 (and from each month of 2024 to December 2025),
    in every grain, for each area, both areas and both areas by area: each row and each total
    is a constraint on the monthly counts; overlapping windows, complements (both areas minus
    one) and totals against parts are all in the programme."""
    truth = build_monthly(coordinator)
    attacker = Attacker()
    pairs = [(a, b) for a in range(1, 13) for b in range(a, 13)]
    spans = [(f"2025-{a:02d}", f"2025-{b:02d}") for a, b in pairs]
    spans += [(f"2024-{a:02d}", "2025-12") for a in range(1, 13)]
    answered: dict[tuple[Any, ...], None] = {}
    for grain in GRAINS:
        for start, end in spans:
            for areas, by in (([BLACKPOOL], "period"), ([BLACKBURN], "period"),
                              ([BLACKPOOL, BLACKBURN], "period"),
                              ([BLACKPOOL, BLACKBURN], "area")):
                args = {"grain": grain, "from": start, "to": end, "by": by}
                if len(areas) == 1:
                    args["area"] = areas[0]
                table = ask(lead, **args)
                answered[(grain, table.months, by, tuple(areas))] = None
                attacker.learn_table(table, areas, grain)
    hidden = {c: v for c, v in truth.items() if v}
    assert len(hidden) == 30  # every non-zero month of both areas is something to hide
    recovered = attacker.recovered(truth)
    assert not recovered, (
        f"{len(recovered)} of {len(hidden)} hidden monthly counts came back exactly from "
        f"{len(answered)} different tables: {sorted(recovered.items())[:6]}"
    )


def test_periods_for_a_lead_are_whole_years_of_the_grid_and_the_page_says_so(
    coordinator: Any, lead: Any, client: Any, login: Any
) -> None:
    build_monthly(coordinator)
    for grain, first, last in (("month", "Jan 2025", "Dec 2025"),
                               ("quarter", "Jan 2025", "Dec 2025"),
                               ("fy", "Apr 2025", "Mar 2026")):
        table = ask(lead, grain=grain, **{"from": "2025-05", "to": "2025-06"})
        assert table.months == f"{first} to {last}", grain
        assert any("whole" in n and "May 2025 to Jun 2025" in n for n in table.notes)
    # A coordinator of both areas keeps the months asked for (exact counts, own areas).
    assert ask(coordinator, **{"from": "2025-05", "to": "2025-06"}).months == \
        "May 2025 to Jun 2025"
    login(client, lead)
    html = client.get("/trends/?from=2025-05&to=2025-06").get_data(as_text=True)
    assert "Figures cover whole calendar years" in html and "Jan 2025 to Dec 2025" in html


def test_the_same_cell_asked_two_ways_gives_the_same_figure(
    coordinator: Any, lead: Any, client: Any, login: Any
) -> None:
    """Blackpool's 2025 (75 cases) reached six ways, and Blackburn's 2025 (9) three ways: the
    same cases, the same cell key, the same figure. Asked again, nothing changes."""
    build_monthly(coordinator)
    year = {"from": "2025-01", "to": "2025-12"}

    def total(**args: str) -> str:
        table = ask(lead, **{**year, **args})
        return (table.total or table.rows[0]).count.text

    def row(value: str, dim: str, **args: str) -> str:
        table = ask(lead, **{**year, **args})
        return next(r.count.text for r in table.rows if r.keys[dim] == value)

    blackpool = {
        total(area=BLACKPOOL),
        total(area=BLACKPOOL, grain="quarter"),
        total(area=BLACKPOOL, by=""),
        total(area=BLACKPOOL, by="sex"),
        row("2025", "period", area=BLACKPOOL, grain="year"),
        row(BLACKPOOL, "area", by="area"),
    }
    assert len(blackpool) == 1, blackpool
    assert blackpool <= {"70", "75", "80"}  # 75 cases, moved by at most 2, rounded to 5
    blackburn = {total(area=BLACKBURN), row(BLACKBURN, "area", by="area", grain="quarter"),
                 row("2025", "period", area=BLACKBURN, grain="year")}
    assert len(blackburn) == 1, blackburn
    # The page and the CSV carry the same figures as the table, asked again.
    login(client, lead)
    page = client.get("/trends/?from=2025-01&to=2025-12&by=area").get_data(as_text=True)
    assert f'<td class="num">{row(BLACKPOOL, "area", by="area")}</td>' in page
    csv = client.get("/trends/export.csv?from=2025-01&to=2025-12&by=area").get_data(
        as_text=True)
    assert f"Blackpool,{BLACKPOOL},{row(BLACKPOOL, 'area', by='area')}," in csv


# -- age-standardised rates -----------------------------------------------------------------------

# Age at the event by t2_data's dates of birth (n % 4): 34, 44, 52, 23 in 2025.
BAND_OF = {0: "25-34", 1: "35-44", 2: "45-54", 3: "18-24"}
DSR_BANDS = {"25-34": 5, "35-44": 9, "45-54": 3, "18-24": 2}


def test_back_solving_an_age_standardised_rate_recovers_no_exact_total(
    coordinator: Any, lead: Any
) -> None:
    """Blackpool, 2025: 19 events in four age bands. The lead sees the counts by age band and
    the total, and the standardised rate with its interval. They try every band vector
    consistent with the counts shown, and keep those whose rate (worked out as the old code
    did, from exact band counts) is the one shown; if that leaves one total, it is recovered.
    If none fits, the rate told them nothing beyond the counts, and all remain."""
    t2_data.load_sample_populations()
    made = 0
    n = 0
    for band, count in DSR_BANDS.items():
        wanted = next(k for k, b in BAND_OF.items() if b == band)
        for i in range(count):
            while n % 4 != wanted:
                n += 1
            t2_data.make(coordinator, n, "death", f"2025-{i % 12 + 1:02d}-15")
            n += 1
            made += 1
    db.session.commit()
    args = {"area": BLACKPOOL, "from": "2025-01", "to": "2025-12", "grain": "year"}
    dsr = ask(lead, measure="dsr", by="", **args).rows[0]
    bands = {r.keys["age_band"]: r.count for r in ask(lead, by="age_band", **args).rows}
    total = ask(lead, by="", **args).rows[0].count
    assert dsr.rate is not None, dsr.rate_note  # a rate is given: something to attack
    # The strata an analyst would build from public populations.
    area = db.session.scalar(db.select(Area).where(Area.ons_code == BLACKPOOL))
    pops = queries._Populations.load([area.id], [2025])
    months = range(mi(2025, 1), mi(2025, 12) + 1)
    labels = [label for _, _, label in AGE_BANDS]
    strata = {b: (pops.person_years(months, [area.id], None, b)[0],
                  stats.esp_weight(*queries._band_ages(b))) for b in labels}
    choices = [range(lo, hi + 1) for lo, hi in (interval(bands[b]) if b in bands else (0, 0)
                                                for b in labels)]
    t_lo, t_hi = interval(total)
    fits, consistent = set(), set()
    for vector in itertools.product(*choices):
        if not t_lo <= sum(vector) <= t_hi:
            continue
        consistent.add(sum(vector))
        r = stats.dsr([stats.Stratum(c, *strata[b]) for c, b in zip(vector, labels,
                                                                      strict=True)])
        if (round(r.value, 1), round(r.ci_low, 1), round(r.ci_high, 1)) == \
                (dsr.rate, dsr.ci_low, dsr.ci_high):
            fits.add(sum(vector))
    totals = fits or consistent
    assert made in consistent  # the attacker's model holds the truth
    assert totals != {made}, "the exact total came back from the age-standardised rate"


def test_no_rate_never_narrows_a_count(coordinator: Any, lead: Any) -> None:
    """Whether a rate is given is decided from the count shown: every figure shown as "10"
    (which may stand for 6 to 14 cases) has its rate, every "*" has none, whatever the exact
    count behind it."""
    t2_data.load_sample_populations()
    build_monthly(coordinator)
    outcome: dict[str, set[bool]] = defaultdict(set)
    notes: dict[str, set[str]] = defaultdict(set)
    for area in (BLACKPOOL, BLACKBURN):
        for grain in ("month", "quarter"):
            table = ask(lead, measure="rate", area=area, grain=grain,
                        **{"from": "2024-01", "to": "2025-12"})
            for r in table.rows:
                outcome[r.count.text].add(r.rate is not None)
                notes[r.count.text].add(r.rate_note)
    assert outcome["*"] == {False} and outcome["0"] == {False}
    assert outcome["10"] == {True}, notes["10"]
    for text, given in outcome.items():
        assert len(given) == 1, (text, notes[text])
    assert notes["*"] == notes["0"]  # the same words, whatever the count


def test_exact_counts_and_free_months_only_for_a_coordinator_of_every_area(
    coordinator: Any, lead: Any
) -> None:
    """A coordinator of every area in the figures keeps exact counts and any months; a lead of
    the same areas gets neither."""
    truth = build_monthly(coordinator)
    february = {"area": BLACKPOOL, "from": "2025-02", "to": "2025-02"}
    exact = ask(coordinator, **february)
    assert exact.exact and [r.count.text for r in exact.rows] == [str(truth[(BLACKPOOL,
                                                                             mi(2025, 2))])]
    protected = ask(lead, **february)
    assert not protected.exact and len(protected.rows) == 12
    for r in [*protected.rows, protected.total]:
        assert r is not None
        assert r.count.text in ("*", "0") or int(r.count.text) % 5 == 0
