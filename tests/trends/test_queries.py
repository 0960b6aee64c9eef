"""Trend queries and the dashboard: what a lead and a coordinator see, built from cases made
through the intake service (the trend counts are kept by the real hooks)."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date
from typing import Any

import pytest

from dr_panel.auth.models import Role
from dr_panel.dbtypes import utcnow
from dr_panel.trends import queries, stats
from dr_panel.trends.queries import TrendQuery, parse_query, periods_for, run
from tests.trends import protection, t2_data
from tests.trends.t2_data import RAW, SMALL_AND_UNROUNDED


@pytest.fixture
def coordinator(create_user: Any) -> Any:
    return create_user(Role.COORDINATOR, areas=("E06000009", "E06000008"))


@pytest.fixture
def data(app: Any, coordinator: Any) -> Any:
    return t2_data.build(coordinator)


@pytest.fixture
def lead(create_user: Any) -> Any:
    return create_user(Role.LEAD, areas=("E06000009", "E06000008"))


def q(**args: str) -> TrendQuery:
    query, errors = parse_query(args)
    assert not errors, errors
    return query


def counts(table: Any, dim: str = "period") -> dict[str, str]:
    return {r.keys[dim]: r.count.text for r in table.rows}


# -- parsing ------------------------------------------------------------------------------------


def test_parse_defaults_and_every_error_names_its_parameter(app: Any) -> None:
    query, errors = parse_query({})
    assert not errors
    assert query.measure == "count" and query.by == ("period",) and query.grain == "month"
    assert query.date_from.month == 1 and query.date_to.day == 1
    query, errors = parse_query({"by": "", "from": "2024-04", "to": "2025-03"})
    assert not errors and query.by == () and query.date_from == date(2024, 4, 1)
    assert parse_query({"by": "period,substance"})[0].by == ("period", "substance")
    assert parse_query({"by": "sex", "by2": "age_band"})[0].by == ("sex", "age_band")
    bad = {
        "measure": "median",
        "by": "period,colour",
        "grain": "week",
        "from": "2025-13",
        "to": "April",
        "area": "Blackpool",
        "case_type": "suicide",
        "substance": "tea",
    }
    for key, value in bad.items():
        _, errors = parse_query({key: value})
        assert set(errors) == {key}, (key, errors)
        assert errors[key].endswith("."), errors[key]
    assert "at most two" in parse_query({"by": "period,sex,setting"})[1]["by"]
    assert "after" in parse_query({"from": "2025-05", "to": "2025-01"})[1]["from"]
    assert "age band" in parse_query({"measure": "dsr", "by": "age_band"})[1]["by"]
    # The cube holds pairs: a substance filter leaves room for one more dimension.
    assert "at most one" in parse_query({"substance": "heroin", "by": "sex,setting"})[1]["by"]
    assert not parse_query({"substance": "heroin", "by": "period,sex"})[1]


def test_parse_checks_areas_against_the_users_grants(app: Any, lead: Any) -> None:
    _, errors = parse_query({"area": "E10000017"}, user=lead)
    assert "your own areas" in errors["area"] and "E06000009" in errors["area"]
    query, errors = parse_query({"area": "E06000008"}, user=lead)
    assert not errors and query.area_codes == ("E06000008",)


def test_periods_of_every_grain() -> None:
    first, last = 2024 * 12 + 1, 2025 * 12 + 2  # Feb 2024 .. Mar 2025
    assert [p.code for p in periods_for("quarter", first, last)] == [
        "2024-Q1", "2024-Q2", "2024-Q3", "2024-Q4", "2025-Q1"]
    fys = periods_for("fy", first, last)
    assert [p.label for p in fys] == ["2023/24", "2024/25"]
    assert queries._md(fys[1].months[0]) == date(2024, 4, 1)
    assert queries._md(fys[1].months[-1]) == date(2025, 3, 1)
    rolling = periods_for("rolling12", first, last)
    assert len(rolling) == 14 and rolling[-1].label == "12 months to Mar 2025"
    assert queries._md(rolling[-1].months[0]) == date(2024, 4, 1)
    pooled = periods_for("pooled3", first, last)
    assert [p.code for p in pooled] == ["2022-2024", "2023-2025"]
    assert len(pooled[0].months) == 36


def test_periods_not_yet_ended_are_marked_to_date_and_their_rates_use_time_lived(
    data: Any, coordinator: Any
) -> None:
    today = utcnow().date()
    this_month = f"{today:%Y-%m}"
    for n in range(3):
        t2_data.make(coordinator, 900 + n, "nfo", f"{this_month}-01")
    table = run(q(area="E06000009", grain="quarter", **{"from": "2025-01", "to": this_month}),
                coordinator)
    labels = [r.labels["period"] for r in table.rows]
    assert labels[-1].endswith("(to date)") and not labels[-2].endswith("(to date)")
    assert table.rows[-1].count.text == "3"
    assert any("has not ended" in note for note in table.notes)
    # A range that ended before this month has no such mark or note.
    past = run(q(area="E06000009", **{"from": "2025-01", "to": "2025-04"}), coordinator)
    assert not any("to date" in r.labels["period"] for r in past.rows)
    assert not any("has not ended" in note for note in past.notes)
    # Person-years: a whole past month is a twelfth of the year's population; on 15 November
    # 2026 that month has had 15 of its 30 days, and December none.
    pops = queries._Populations({(1, 2026): {("male", "0-14"): 1200}}, today=date(2026, 11, 15))
    months = [2026 * 12 + 9, 2026 * 12 + 10, 2026 * 12 + 11]  # Oct, Nov, Dec 2026
    assert pops.person_years(months[:1], [1], None, None) == (100.0, [])
    assert pops.person_years(months, [1], None, None) == (150.0, [])


# -- disclosure in run --------------------------------------------------------------------------


def test_a_lead_gets_protected_counts_and_a_coordinator_exact_ones(
    data: Any, lead: Any, coordinator: Any
) -> None:
    query = q(area="E06000009", **{"from": "2025-01", "to": "2025-04"})
    table = run(query, lead)
    assert not table.exact
    # A lead's months are the whole calendar year (the fixed grid), each perturbed by its cell
    # key and rounded: 3 is always *, 12 shows as 10 or 15, 13 as 10 or 15.
    shown = counts(table)
    assert list(shown) == [f"2025-{m:02d}" for m in range(1, 13)]
    assert shown["2025-01"] == "*" and shown["2025-03"] == "0"
    for m in (2, 4):
        expected = protection.shown(areas=("E06000009",), **protection.month(2025, m)).text
        assert shown[f"2025-{m:02d}"] == expected in ("10", "15")
    assert {shown[f"2025-{m:02d}"] for m in range(5, 13)} == {"0"}
    # The total is a cell of its own (28 cases: 25 or 30), not the sum of the rows.
    assert table.total is not None
    assert table.total.count.text == protection.shown(
        areas=("E06000009",), **protection.year(2025)).text in ("25", "30")
    assert table.rows[0].count.value is None and table.rows[0].count.suppressed
    assert "rounded to the nearest 5" in table.note and "cell key" in table.note
    assert "January 2025" not in table.describes and "Jan 2025 to Dec 2025" in table.describes
    assert any("whole calendar years" in n and "Jan 2025 to Apr 2025" in n for n in table.notes)

    exact = run(query, coordinator)
    assert exact.exact
    assert counts(exact) == {k: str(v) for k, v in RAW.items()}
    assert exact.total is not None and exact.total.count.text == "28"
    assert "Exact counts" in exact.note


def test_a_coordinator_outside_an_area_is_refused_and_a_lead_sees_all_their_areas(
    data: Any, lead: Any, create_user: Any
) -> None:
    blackpool_only = create_user(Role.COORDINATOR, areas=("E06000009",))
    with pytest.raises(queries.QueryError) as refused:
        run(q(area="E06000008"), blackpool_only)
    assert refused.value.field == "area"
    table = run(q(by="area", **{"from": "2025-01", "to": "2025-04"}), lead)
    blackpool = protection.shown(areas=("E06000009",), **protection.year(2025))
    assert counts(table, "area") == {"E06000009": blackpool.text, "E06000008": "*"}
    assert {r.labels["area"] for r in table.rows} == {"Blackpool", "Blackburn with Darwen"}
    # Percentages from the figures shown: Blackpool's shown count of the shown total (29 cases).
    total = protection.shown(**protection.year(2025))
    assert table.total is not None and table.total.count == total
    percent = f"{100 * (blackpool.value or 0) / (total.value or 1):.0f}%"
    assert {r.keys["area"]: r.percent for r in table.rows} == {"E06000009": percent,
                                                                "E06000008": "*"}


def test_crossed_dimensions_and_multi_valued_substances(data: Any, coordinator: Any) -> None:
    table = run(q(by="period,case_type", area="E06000009",
                  **{"from": "2025-01", "to": "2025-04"}), coordinator)
    cells = {(r.keys["period"], r.keys["case_type"]): r.count.value for r in table.rows}
    assert cells[("2025-04", "death")] == 13 and cells[("2025-04", "nfo")] == 0
    assert cells[("2025-02", "nfo")] == 12 and len(cells) == 8
    by_substance = run(q(by="substance", area="E06000009",
                         **{"from": "2025-01", "to": "2025-04"}), coordinator)
    found = {r.keys["substance"]: r.count.value for r in by_substance.rows}
    # Cases cycle heroin / crack / both: 28 cases, 19 mention heroin, 18 crack.
    assert found == {"heroin": 19, "crack": 18}
    assert by_substance.total is not None and by_substance.total.count.value == 28
    assert any("counts under each" in n for n in by_substance.notes)
    filtered = run(q(by="period", substance="heroin", area="E06000009",
                     **{"from": "2025-01", "to": "2025-04"}), coordinator)
    assert filtered.total is not None and filtered.total.count.value == 19
    assert "where Heroin was suspected" in filtered.describes


def test_grains_sum_the_months(data: Any, coordinator: Any) -> None:
    area = {"area": "E06000009"}
    fy = run(q(by="period", grain="fy", **{"from": "2025-01", "to": "2025-04"}, **area),
             coordinator)
    assert counts(fy) == {"2024-25": "15", "2025-26": "13"}
    rolling = run(q(by="period", grain="rolling12", **{"from": "2025-03", "to": "2025-04"},
                    **area), coordinator)
    assert counts(rolling) == {"2025-03": "15", "2025-04": "28"}
    # The total covers every month the periods do: twelve before March 2025 to April 2025.
    assert rolling.months == "Apr 2024 to Apr 2025" and rolling.total.count.text == "28"
    quarter = run(q(by="period", grain="quarter", **{"from": "2025-02", "to": "2025-04"},
                    **area), coordinator)
    assert counts(quarter) == {"2025-Q1": "15", "2025-Q2": "13"}


# -- rates --------------------------------------------------------------------------------------


def test_rates_withheld_below_ten_events_and_without_a_population(
    data: Any, coordinator: Any, lead: Any
) -> None:
    t2_data.load_sample_populations()
    query = q(measure="rate", area="E06000009", **{"from": "2025-01", "to": "2025-04"})
    table = run(query, coordinator)
    rows = {r.keys["period"]: r for r in table.rows}
    jan = rows["2025-01"]
    assert jan.rate is None and jan.rate_suppressed and "Fewer than 10 events" in jan.rate_note
    assert rows["2025-03"].rate is None and rows["2025-03"].rate_suppressed
    # February, exact: 12 events in a month of Blackpool's 2025 population, i.e. person-years
    # = population / 12; rate per 100,000 person-years (annualised).
    person_years = t2_data.sample_population("E06000009", 2025) / 12
    expected = stats.crude_rate(12, person_years)
    feb = rows["2025-02"]
    assert feb.rate == round(expected.value, 1)
    assert (feb.ci_low, feb.ci_high) == (round(expected.ci_low, 1), round(expected.ci_high, 1))
    # A lead's rate is worked out from the count shown (12 perturbed and rounded: 10 or 15),
    # so it cannot be turned back into the exact 12.
    lead_feb = {r.keys["period"]: r for r in run(query, lead).rows}["2025-02"]
    shown_feb = protection.shown(areas=("E06000009",), **protection.month(2025, 2))
    assert lead_feb.count == shown_feb and shown_feb.value in (10, 15)
    assert lead_feb.rate == round(stats.crude_rate(shown_feb.value, person_years).value, 1)
    # No population for 2019: no rate, and the reason says which.
    old = run(q(measure="rate", area="E06000009", by="", **{"from": "2019-01", "to": "2019-12"}),
              coordinator)
    assert old.rows[0].count.value == 0 and old.rows[0].rate is None


def test_missing_population_is_named(data: Any, coordinator: Any) -> None:
    # No populations at all, 28 events: the rate is withheld for want of a population.
    table = run(q(measure="rate", area="E06000009", by="",
                  **{"from": "2025-01", "to": "2025-12"}), coordinator)
    row = table.rows[0]
    assert row.rate is None and not row.rate_suppressed
    assert row.rate_note == "No population estimate for Blackpool 2025: no rate."
    assert any("populations page" in n for n in table.notes)


def test_rates_by_sex_use_the_population_of_that_sex(data: Any, coordinator: Any) -> None:
    t2_data.load_sample_populations()
    table = run(q(measure="rate", by="sex", area="E06000009",
                  **{"from": "2025-01", "to": "2025-12"}), coordinator)
    rows = {r.keys["sex"]: r for r in table.rows}
    # 28 cases cycle female, male, male, female: 14 of each.
    assert rows["male"].count.value == 14
    males = t2_data.sample_population("E06000009", 2025, sex="male")
    assert rows["male"].rate == round(stats.crude_rate(14, males).value, 1)


def test_age_standardised_rate_matches_the_strata(data: Any, coordinator: Any) -> None:
    t2_data.load_sample_populations()
    table = run(q(measure="dsr", by="", area="E06000009",
                  **{"from": "2025-01", "to": "2025-12"}), coordinator)
    row = table.rows[0]
    # The events per age band, from the cases themselves (not from the trend counts).
    band_counts = Counter(c.age_band for c in data if c.area.ons_code == "E06000009")
    assert sum(band_counts.values()) == 28 and len(band_counts) >= 3
    strata = []
    for lo, hi, label in queries.AGE_BANDS:
        ages = range(lo, min(hi, 90) + 1)
        strata.append(stats.Stratum(band_counts.get(label, 0),
                                    t2_data.sample_population("E06000009", 2025, ages=ages),
                                    stats.esp_weight(lo, min(hi, 90))))
    expected = stats.dsr(strata)
    assert row.rate == round(expected.value, 1)
    assert (row.ci_low, row.ci_high) == (round(expected.ci_low, 1), round(expected.ci_high, 1))
    assert any("age is not known" in n for n in table.notes)


# -- the dashboard ------------------------------------------------------------------------------

NUMBERS = re.compile(r'<td class="num">([^<]*)</td>')


def test_the_lead_never_sees_a_small_or_unrounded_count_on_the_page(
    data: Any, lead: Any, client: Any, login: Any
) -> None:
    login(client, lead)
    seen: set[str] = set()
    for args in (
        "",
        "?from=2025-01&to=2025-04",
        "?from=2025-01&to=2025-04&by=period&by2=case_type",
        "?from=2025-01&to=2025-04&by=area&by2=sex",
        "?from=2025-01&to=2025-06&by=substance&by2=age_band",
        "?from=2025-01&to=2025-04&by=setting&area=E06000009",
        "?from=2024-01&to=2025-12&by=period&grain=rolling12",
        "?from=2025-01&to=2025-04&by=&area=E06000008",
    ):
        response = client.get(f"/trends/{args}")
        assert response.status_code == 200, args
        html = response.get_data(as_text=True)
        assert "Disclosure control" in html
        for cell in NUMBERS.findall(html):
            seen.add(cell)
            if cell not in ("*", "–") and "%" not in cell:
                value = int(cell.replace(",", ""))
                assert value == 0 or (value % 5 == 0 and value not in SMALL_AND_UNROUNDED), (
                    args, cell)
    # Small cells, zeros and rounded figures all appeared (which multiples of 5 depends on
    # the cases' record keys: 12 shows as 10 or 15, 28 as 25 or 30).
    assert {"*", "0"} <= seen and {"10", "15"} & seen and {"25", "30"} & seen


def test_the_page_explains_what_it_counts_and_keeps_filters_in_the_url(
    data: Any, coordinator: Any, client: Any, login: Any
) -> None:
    login(client, coordinator)
    html = client.get("/trends/?from=2025-01&to=2025-04&area=E06000009&measure=rate"
                      ).get_data(as_text=True)
    assert "from Jan 2025 to Apr 2025" in html
    assert "Fewer than 10 events: no rate is given." in html
    assert "No population estimate for Blackpool 2025" in html
    assert "Exact counts" in html
    assert '<td class="num">12</td>' in html and '<td class="num">13</td>' in html
    assert 'value="2025-01"' in html and 'name="from"' in html
    assert '<option selected value="rate">' in html or 'selected value="rate"' in html


def test_the_dashboard_reports_bad_filters_without_failing(
    data: Any, lead: Any, client: Any, login: Any
) -> None:
    login(client, lead)
    response = client.get("/trends/?from=2025-13&by=period,colour&area=E10000017")
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "There is a problem" in html
    assert "YYYY-MM" in html and "Break down by at most two of" in html
    assert "Choose among your own areas" in html


def test_home_page_points_a_lead_at_the_dashboard(lead: Any, client: Any, login: Any) -> None:
    login(client, lead)
    html = client.get("/").get_data(as_text=True)
    assert 'href="/trends/"' in html and "not built yet" not in html
