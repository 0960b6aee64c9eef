"""The measures panel: each figure right for a coordinator (exact, own areas) and protected for a
lead (counts through disclosure control, percentages from the rounded figures, no median on
too few cases), each saying what it counts and over which period."""

from __future__ import annotations

import statistics
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask

from dr_panel.auth.models import Role
from dr_panel.cases import workflow
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.privacy import disclosure
from dr_panel.reference.models import Agency
from dr_panel.reviews import actions as act
from dr_panel.reviews import findings as fd
from dr_panel.trends import queries
from dr_panel.trends.measures import measures_panel
from tests.trends.t3_data import make_case, make_cases, varied


def panel(user: Any, **args: str) -> dict[str, Any]:
    query, errors = queries.parse_query({"from": "2026-01", "to": "2026-12", **args}, user=user)
    assert not errors, errors
    return {m.key: m for m in measures_panel(user, query)}


def shown(cases: list[Any]) -> disclosure.Shown:
    """What a lead should see for these cases by the published method (their record keys)."""
    return disclosure.shown_count(len(cases), exact=False, key=sum(c.record_key for c in cases))


def review(case: Any, by: Any) -> None:
    for step in ("review", "ready", "reviewed"):
        workflow.move(case, step, by=by)


@pytest.fixture
def world(app: Flask, create_user: Any) -> dict[str, Any]:
    coordinator = create_user(Role.COORDINATOR)
    death = {"case_type": "death"}
    # Deaths: 5 in treatment and 7 left in the last 6 months (12 of 23 known to treatment).
    deaths = make_cases(
        coordinator,
        varied(5, start=0, treatment_status="in_treatment", **death)
        + varied(7, start=10, treatment_status="left_6m", **death)
        + varied(6, start=20, treatment_status="never", **death)
        + varied(5, start=30, treatment_status="unknown", **death),
    )
    # Overdoses: one person with three, one with two (3 repeats), and 10 people with one each.
    person_a = {"full_name": "Alex Repeat", "date_of_birth": "1990-01-01",
                "nhs_number": "9990000018"}
    person_b = {"full_name": "Bryn Again", "date_of_birth": "1991-02-02",
                "nhs_number": "9990000026"}
    repeats = [make_case(coordinator, event_date=f"2026-0{m}-05", **person_a) for m in (2, 4, 6)]
    repeats += [make_case(coordinator, event_date=f"2026-0{m}-07", **person_b) for m in (3, 5)]
    db.session.commit()
    singles = make_cases(coordinator, varied(10, start=40))
    # Twelve deaths reviewed at panel (moves made today).
    for case in deaths[:12]:
        review(case, coordinator)
    db.session.commit()
    return {"coordinator": coordinator, "deaths": deaths, "nfos": repeats + singles}


def test_coordinator_gets_exact_measures(world: dict[str, Any]) -> None:
    m = panel(world["coordinator"])
    treat = m["known_to_treatment"]
    assert treat.numerator.text == "12" and treat.denominator.text == "23"
    assert treat.value == "52%"
    assert "left treatment in the 6 months before" in treat.describes
    assert "events from 01 January 2026 to 31 December 2026" in treat.describes
    rep = m["repeat_nfo"]
    assert (rep.numerator.text, rep.denominator.text, rep.value) == ("3", "15", "20%")
    days = m["days_to_review"]
    today = utcnow().date()
    expected = statistics.median((today - c.notified_on).days for c in world["deaths"][:12])
    assert days.value == f"{expected:.0f} days"
    assert days.numerator.text == "12"


def test_lead_gets_protected_measures(world: dict[str, Any], create_user: Any) -> None:
    lead = create_user(Role.LEAD)
    m = panel(lead)
    treat = m["known_to_treatment"]
    # 12 of 23, each perturbed by its cell key and rounded (10 or 15 of 20 or 25); the
    # percentage is from the shown figures.
    num, den = shown(world["deaths"][:12]), shown(world["deaths"])
    assert (treat.numerator, treat.denominator) == (num, den)
    assert num.text in ("10", "15") and den.text in ("20", "25")
    assert treat.value == f"{100 * (num.value or 0) / (den.value or 1):.0f}%"
    assert "12" not in treat.describes and "23" not in treat.describes
    rep = m["repeat_nfo"]
    assert rep.numerator.text == "*" and rep.value == "*"  # 3, moved by at most 2
    assert rep.denominator.text == "15"  # 15, moved by at most 2, rounded
    assert "too few" in rep.withheld
    days = m["days_to_review"]
    assert days.numerator == shown(world["deaths"][:12])  # 12 reviewed: 10 or 15
    assert days.value.endswith("days")


def test_median_withheld_on_fewer_than_ten_cases(app: Flask, create_user: Any) -> None:
    coordinator = create_user(Role.COORDINATOR)
    cases = make_cases(coordinator, varied(9, case_type="death"))
    for case in cases:
        review(case, coordinator)
    db.session.commit()
    lead = create_user(Role.LEAD)
    # The record keys set so that the 9 cases' cell key moves 9 down by 2 (key sum 0): 7,
    # shown as *, and no median.
    for case in cases:
        case.record_key = 0
    db.session.commit()
    days = panel(lead)["days_to_review"]
    assert days.numerator.text == "*"
    assert days.value == "–" and "as shown, is at least 10" in days.withheld
    # The same 9 cases with a cell key that leaves them at 9 (key sum 100): shown as 10, and a
    # figure shown as 10 always has its median (a withheld median would say it was 8 or 9).
    cases[0].record_key = 100
    db.session.commit()
    days = panel(lead)["days_to_review"]
    assert days.numerator.text == "10" and days.value.endswith("days")
    assert panel(coordinator)["days_to_review"].value.endswith("days")


def test_actions_and_themes(world: dict[str, Any], create_user: Any) -> None:
    coordinator = world["coordinator"]
    police = db.session.scalar(db.select(Agency).where(Agency.code == "POLICE"))
    member = create_user(Role.PANEL_MEMBER)
    reviewed = world["deaths"][:12]
    made = []
    for i, case in enumerate(reviewed):
        for j in range(2):
            made.append(act.create_action(
                case, description=f"Action {i}.{j}", agency=police,
                due_on=utcnow().date() + timedelta(days=30), by=coordinator,
            ))
        fd.save_findings(
            case,
            fd.FindingsInput(
                missed_opportunities="", preventability=list(fd.Preventability)[0],
                learning_point=f"Learning {i}",
                theme_codes=["using_alone"] + (["no_naloxone"] if i < 9 else [])
                + (["prison_release"] if i < 2 else []),
            ),
            by=coordinator, expected_version=0,
        )
    db.session.commit()
    for a in made[:10]:  # 10 of 24 done
        act.update_action(a, act.ActionUpdate(act.ActionStatus.DONE, evidence="Done."),
                          by=member, expected_version=None)
    for a in made[10:18]:  # time passes: 8 open actions fall overdue
        a.due_on = utcnow().date() - timedelta(days=3)
    db.session.commit()

    exact = panel(coordinator)
    assert exact["actions_done"].value == "42%"  # 10 of 24
    assert exact["actions_overdue"].value == "33%"  # 8 of 24
    themes = exact["top_themes"].items
    assert [(name, shown.text) for name, shown in themes] == [
        ("Using alone", "12"), ("No naloxone at the scene", "9"), ("Recent prison release", "2"),
    ]

    lead = create_user(Role.LEAD)
    protected = panel(lead)

    def action_figure(actions: list[Any]) -> disclosure.Shown:
        # An action's record key: its case's key plus its own id.
        return disclosure.shown_count(
            len(actions), exact=False, key=sum(a.case.record_key + a.id for a in actions))

    every = action_figure(made)  # 24: 20 or 25
    for key, part in (("actions_done", made[:10]), ("actions_overdue", made[10:18])):
        shown_part = action_figure(part)  # 10: * or 10 or 15; 8: * or 10
        assert protected[key].numerator == shown_part and protected[key].denominator == every
        share = f"{100 * (shown_part.value or 0) / (every.value or 1):.0f}%"
        assert protected[key].value == ("*" if shown_part.suppressed else share)
    # Themes chosen and ordered by their shown figures: 12 and 9 cases (10 or 15; * or 10),
    # then 2 (*); equal figures by name.
    using, naloxone = shown(reviewed), shown(reviewed[:9])
    ranked = sorted([("Using alone", using), ("No naloxone at the scene", naloxone)],
                    key=lambda it: (-(it[1].value or 0), -(not it[1].suppressed), it[0]))
    assert [(n, s.text) for n, s in protected["top_themes"].items] == [
        *((n, s.text) for n, s in ranked), ("Recent prison release", "*"),
    ]
    assert "on how many cases" in protected["top_themes"].describes


def test_case_type_and_area_narrow_the_panel(world: dict[str, Any], create_user: Any) -> None:
    coordinator = world["coordinator"]
    only_nfo = panel(coordinator, case_type="nfo")
    assert "known_to_treatment" not in only_nfo and "repeat_nfo" in only_nfo
    only_deaths = panel(coordinator, case_type="death")
    assert "repeat_nfo" not in only_deaths
    assert only_deaths["days_to_review"].numerator.text == "12"
    empty = panel(coordinator, **{"from": "2025-01", "to": "2025-06"})
    assert empty["known_to_treatment"].value == "–"
    assert "no cases" in empty["known_to_treatment"].withheld


def test_panel_on_the_dashboard(
    world: dict[str, Any], client: Any, create_user: Any, login: Any
) -> None:
    lead = create_user(Role.LEAD)
    login(client, lead)
    page = client.get("/trends/?from=2026-01&to=2026-12")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Measures for the panel" in html
    num, den = shown(world["deaths"][:12]), shown(world["deaths"])
    percent = f"{100 * (num.value or 0) / (den.value or 1):.0f}%"
    assert "Deaths known to treatment" in html and percent in html
    assert f"({num.text} of {den.text})" in html
    assert "(12 of 23)" not in html
