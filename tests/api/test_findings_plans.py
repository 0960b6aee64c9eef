"""The findings and safety-plan endpoints of the JSON API: the same services and access rules as
the pages, pseudonymised, every refusal a problem."""

from __future__ import annotations

from typing import Any

import pytest

from dr_panel.auth.models import Role
from dr_panel.extensions import db
from dr_panel.reviews import actions as act
from dr_panel.reviews import findings as fd
from tests.api.test_cases import assert_problem, assert_pseudonymised
from tests.api.test_openapi import conforms
from tests.api.test_workflow import days_ahead, move


@pytest.fixture
def doc(client: Any) -> dict[str, Any]:
    return client.get("/api/v1/openapi.json").get_json()  # type: ignore[no-any-return]


@pytest.fixture
def coordinator(create_user: Any) -> Any:
    return create_user(Role.COORDINATOR)


@pytest.fixture
def case(coordinator: Any, create_case: Any) -> Any:
    return create_case(coordinator)


def ready(client: Any, case: Any, headers: Any) -> None:
    for step in ("review", "ready"):
        assert move(client, case, headers, transition=step).status_code == 200


def findings_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "factors": [
            {
                "domain": "service_provision",
                "description": "Discharged without naloxone.",
                "score": "may_have_contributed",
                "is_modifiable": True,
            }
        ],
        "missed_opportunities": "No follow-up after the first overdose.",
        "preventability": "potentially_preventable",
        "learning_point": {"text": "Offer naloxone at discharge.", "themes": ["no_naloxone"]},
        "version": 0,
    }
    body.update(changes)
    return body


def put_findings(client: Any, case: Any, headers: Any, body: dict[str, Any]) -> Any:
    return client.put(f"/api/v1/cases/{case.uuid}/findings", json=body, headers=headers)


def plan_body(leader: Any, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": "open",
        "risks": "Reduced tolerance after prison release.",
        "protective": "Engaged with the pharmacy.",
        "interventions": ["naloxone", "treatment_referral"],
        "lead": str(leader.uuid),
        "lead_agency": "TREATMENT",
        "review_on": days_ahead(28),
        "version": 0,
    }
    body.update(changes)
    return body


def put_plan(client: Any, case: Any, headers: Any, body: dict[str, Any]) -> Any:
    return client.put(f"/api/v1/cases/{case.uuid}/safety-plan", json=body, headers=headers)


# -- findings -----------------------------------------------------------------------------------


def test_the_panel_records_findings_and_reads_them_back(
    client: Any, doc: Any, coordinator: Any, case: Any, bearer: Any, create_user: Any
) -> None:
    headers = bearer(coordinator)
    ready(client, case, headers)
    url = f"/api/v1/cases/{case.uuid}/findings"
    empty = client.get(url, headers=headers)
    assert empty.status_code == 200
    conforms(doc, "Findings", empty.get_json())
    assert empty.get_json()["version"] == 0
    assert empty.get_json()["preventability"] == "not_known"
    saved = put_findings(client, case, headers, findings_body())
    assert saved.status_code == 200, saved.data
    conforms(doc, "Findings", saved.get_json())
    assert_pseudonymised(saved.data)
    body = saved.get_json()
    assert body["version"] == 1 and body["preventability"] == "potentially_preventable"
    (factor,) = body["factors"]["service_provision"]
    assert factor["description"] == "Discharged without naloxone." and factor["is_modifiable"]
    assert body["factors"]["person"] == []
    (point,) = body["learning_points"]
    assert point["themes"] == ["no_naloxone"] and point["text"] == "Offer naloxone at discharge."
    member = create_user(Role.PANEL_MEMBER)
    again = put_findings(
        client,
        case,
        bearer(member),
        {"factors": [], "preventability": "preventable", "version": 1},
    )
    assert again.status_code == 200, again.data
    seen = client.get(url, headers=bearer(member))
    conforms(doc, "Findings", seen.get_json())
    assert seen.get_json()["version"] == 2 and seen.get_json()["preventability"] == "preventable"
    assert len(seen.get_json()["factors"]["service_provision"]) == 1
    assert_pseudonymised(seen.data)


def test_findings_are_refused_with_problems(
    client: Any, doc: Any, coordinator: Any, case: Any, bearer: Any, create_user: Any
) -> None:
    headers = bearer(coordinator)
    not_ready = put_findings(client, case, headers, findings_body())
    assert_problem(not_ready, 409)
    ready(client, case, headers)
    cases = [
        (findings_body(colour="red"), "colour"),
        (findings_body(version=None), "version"),
        (findings_body(version="0"), "version"),
        (findings_body(factors="many"), "factors"),
        (
            findings_body(factors=[{"domain": "moon", "description": "x", "score": "not_present"}]),
            "factors[0].domain",
        ),
        (findings_body(factors=[{"domain": "person", "description": "x"}]), "factors[0].score"),
        (
            findings_body(
                factors=[{"domain": "person", "description": " ", "score": "not_present"}]
            ),
            "factors[0].description",
        ),
        (findings_body(preventability="maybe"), "preventability"),
        (
            findings_body(learning_point={"text": "x", "themes": ["astrology"]}),
            "learning_point.themes",
        ),
        (
            findings_body(learning_point={"text": " ", "themes": ["no_naloxone"]}),
            "learning_point.text",
        ),
        (findings_body(missed_opportunities=5), "missed_opportunities"),
    ]
    for body, field in cases:
        problem = assert_problem(put_findings(client, case, headers, body), 400)
        assert field in problem["errors"], (body, problem)
        conforms(doc, "Problem", problem)
    assert put_findings(client, case, headers, findings_body()).status_code == 200
    stale = assert_problem(put_findings(client, case, headers, findings_body(version=0)), 409)
    assert "version" in stale["errors"]
    conforms(doc, "Problem", stale)
    view = fd.findings_of(case)
    assert view.version == 1 and len(view.learning_points) == 1
    url = f"/api/v1/cases/{case.uuid}/findings"
    contributor = create_user(Role.AGENCY_CONTRIBUTOR, agency="TREATMENT")
    assert_problem(client.get(url, headers=bearer(contributor)), 403)
    assert_problem(put_findings(client, case, bearer(contributor), findings_body()), 403)
    elsewhere = create_user(Role.COORDINATOR, areas=("E06000008",))
    assert_problem(client.get(url, headers=bearer(elsewhere)), 404)
    assert_problem(put_findings(client, case, bearer(elsewhere), findings_body()), 404)
    assert_problem(client.get(url), 401)


# -- safety plans -------------------------------------------------------------------------------


def test_the_panel_starts_and_updates_a_safety_plan(
    client: Any, doc: Any, coordinator: Any, case: Any, bearer: Any, create_user: Any
) -> None:
    headers = bearer(coordinator)
    url = f"/api/v1/cases/{case.uuid}/safety-plan"
    assert_problem(client.get(url, headers=headers), 404)
    saved = put_plan(client, case, headers, plan_body(coordinator))
    assert saved.status_code == 200, saved.data
    conforms(doc, "SafetyPlan", saved.get_json())
    assert_pseudonymised(saved.data)
    body = saved.get_json()
    assert body["interventions"] == ["naloxone", "treatment_referral"]
    assert body["lead"]["uuid"] == str(coordinator.uuid) and body["lead_agency"]["code"] == (
        "TREATMENT"
    )
    assert body["case"]["uuid"] == str(case.uuid) and str(case.person.uuid) not in saved.text
    member = create_user(Role.PANEL_MEMBER)
    seen = client.get(url, headers=bearer(member))
    assert seen.status_code == 200
    conforms(doc, "SafetyPlan", seen.get_json())
    assert_pseudonymised(seen.data)
    updated = put_plan(
        client,
        case,
        bearer(member),
        plan_body(member, status="closed", risks=None, interventions=[], version=body["version"]),
    )
    assert updated.status_code == 200, updated.data
    conforms(doc, "SafetyPlan", updated.get_json())
    assert updated.get_json()["status"] == "closed" and updated.get_json()["risks"] is None
    assert updated.get_json()["lead"]["uuid"] == str(member.uuid)
    plan = act.plan_for(case.person)
    db.session.refresh(plan)
    assert plan.status is act.PlanStatus.CLOSED and plan.version == body["version"] + 1


def test_safety_plans_are_refused_with_problems(
    client: Any, doc: Any, coordinator: Any, case: Any, bearer: Any, create_user: Any
) -> None:
    headers = bearer(coordinator)
    elsewhere = create_user(Role.COORDINATOR, areas=("E06000008",))
    cases = [
        (plan_body(coordinator, colour="red"), "colour"),
        (plan_body(coordinator, status="paused"), "status"),
        (plan_body(coordinator, interventions=["prayer"]), "interventions"),
        (plan_body(coordinator, interventions=None), "interventions"),
        (plan_body(coordinator, lead=None), "lead"),
        (plan_body(elsewhere), "lead"),
        (plan_body(coordinator, lead_agency="MI5"), "lead_agency"),
        (plan_body(coordinator, review_on="06/12/2026"), "review_on"),
        (plan_body(coordinator, review_on=None), "review_on"),
        (plan_body(coordinator, review_on="2001-01-01"), "review_on"),
        (plan_body(coordinator, risks=None), "risks"),
        (plan_body(coordinator, version=-1), "version"),
    ]
    for body, field in cases:
        problem = assert_problem(put_plan(client, case, headers, body), 400)
        assert field in problem["errors"], (body, problem)
        conforms(doc, "Problem", problem)
    assert act.plan_for(case.person) is None
    assert put_plan(client, case, headers, plan_body(coordinator)).status_code == 200
    stale = assert_problem(put_plan(client, case, headers, plan_body(coordinator)), 409)
    assert "version" in stale["errors"]
    conforms(doc, "Problem", stale)
    url = f"/api/v1/cases/{case.uuid}/safety-plan"
    contributor = create_user(Role.AGENCY_CONTRIBUTOR, agency="TREATMENT")
    assert_problem(client.get(url, headers=bearer(contributor)), 403)
    assert_problem(put_plan(client, case, bearer(contributor), plan_body(coordinator)), 403)
    assert_problem(client.get(url, headers=bearer(elsewhere)), 404)
    assert_problem(put_plan(client, case, bearer(elsewhere), plan_body(elsewhere)), 404)
    assert_problem(client.get(url), 401)
