"""The workflow endpoints of the JSON API: transitions, information requests and returns. The
same services and access rules as the pages, pseudonymised, every refusal a problem."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from dr_panel.auth.models import Role
from dr_panel.cases.models import CaseStatus
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.mail.models import OutboxMessage
from dr_panel.reviews.models import InfoRequest, RequestStatus
from tests.api.test_cases import assert_problem, assert_pseudonymised
from tests.api.test_openapi import conforms


def days_ahead(n: int) -> str:
    return (utcnow().date() + timedelta(days=n)).isoformat()


@pytest.fixture
def doc(client: Any) -> dict[str, Any]:
    return client.get("/api/v1/openapi.json").get_json()  # type: ignore[no-any-return]


@pytest.fixture
def coordinator(create_user: Any) -> Any:
    return create_user(Role.COORDINATOR)


@pytest.fixture
def case(coordinator: Any, create_case: Any) -> Any:
    return create_case(coordinator)


def move(client: Any, case: Any, headers: Any, **body: Any) -> Any:
    return client.post(f"/api/v1/cases/{case.uuid}/transitions", json=body, headers=headers)


def triaged(client: Any, case: Any, headers: Any) -> None:
    assert move(client, case, headers, transition="review").status_code == 200


def send(client: Any, case: Any, headers: Any, **changes: Any) -> Any:
    body = {"agencies": ["TREATMENT", "POLICE"], "due_on": days_ahead(14), "note": "Kit?"}
    body.update(changes)
    return client.post(f"/api/v1/cases/{case.uuid}/requests", json=body, headers=headers)


# -- transitions --------------------------------------------------------------------------------


def test_a_coordinator_moves_a_case_and_the_timeline_shows_why(
    client: Any, doc: Any, coordinator: Any, case: Any, bearer: Any, create_user: Any
) -> None:
    headers = bearer(coordinator)
    url = f"/api/v1/cases/{case.uuid}/transitions"
    before = client.get(url, headers=headers)
    assert before.status_code == 200
    conforms(doc, "Transitions", before.get_json())
    body = before.get_json()
    assert body["status"] == "notified" and body["timeline"] == []
    assert [t["transition"] for t in body["available"]] == ["review", "no_review", "duplicate"]
    moved = move(
        client,
        case,
        headers,
        transition="no_review",
        reason="Known elsewhere",
        version=body["version"],
    )
    assert moved.status_code == 200, moved.data
    conforms(doc, "Case", moved.get_json())
    assert_pseudonymised(moved.data)
    assert moved.get_json()["status"] == "no_review"
    db.session.refresh(case)
    assert case.status is CaseStatus.NO_REVIEW
    member = create_user(Role.PANEL_MEMBER)
    seen = client.get(url, headers=bearer(member))
    assert seen.status_code == 200
    conforms(doc, "Transitions", seen.get_json())
    assert seen.get_json()["available"] == []  # a panel member reads but does not move
    (event,) = seen.get_json()["timeline"]
    assert event["reason"] == "Known elsewhere" and event["to_status"] == "no_review"
    assert event["by"] == coordinator.display_name
    assert_pseudonymised(seen.data)


def test_moves_are_refused_with_problems(
    client: Any, doc: Any, coordinator: Any, case: Any, bearer: Any, create_user: Any
) -> None:
    headers = bearer(coordinator)
    cases = [
        ({"transition": "wizard"}, "transition"),
        ({"transition": "ready"}, "transition"),  # not from notified
        ({"transition": "no_review"}, "reason"),
        ({"transition": "duplicate", "duplicate_of": "NFO-1999-0001"}, "duplicate_of"),
        ({"transition": "review", "colour": "red"}, "colour"),
        ({"transition": "review", "version": "1"}, "version"),
        ({"transition": "review", "reason": 5}, "reason"),
        ({"transition": "review", "expected_on": "14/03/2026"}, "expected_on"),
        ({}, "transition"),
    ]
    for body, field in cases:
        response = move(client, case, headers, **body)
        problem = assert_problem(response, 400)
        assert field in problem["errors"], (body, problem)
        conforms(doc, "Problem", problem)
    not_json = client.post(
        f"/api/v1/cases/{case.uuid}/transitions", data="transition=review", headers=headers
    )
    assert_problem(not_json, 400)
    stale = move(client, case, headers, transition="review", version=case.version + 1)
    assert "Someone else changed this case" in assert_problem(stale, 409)["detail"]
    db.session.refresh(case)
    assert case.status is CaseStatus.NOTIFIED
    member = create_user(Role.PANEL_MEMBER)
    assert_problem(move(client, case, bearer(member), transition="review"), 403)
    elsewhere = create_user(Role.COORDINATOR, areas=("E06000008",))
    assert_problem(move(client, case, bearer(elsewhere), transition="review"), 404)
    url = f"/api/v1/cases/{case.uuid}/transitions"
    assert_problem(client.get(url, headers=bearer(elsewhere)), 404)
    contributor = create_user(Role.AGENCY_CONTRIBUTOR, agency="TREATMENT")
    assert_problem(client.get(url, headers=bearer(contributor)), 403)
    assert_problem(client.get(url), 401)
    db.session.refresh(case)
    assert case.status is CaseStatus.NOTIFIED and case.events == []


# -- requests -----------------------------------------------------------------------------------


def test_a_coordinator_asks_agencies_and_they_are_e_mailed(
    client: Any, doc: Any, coordinator: Any, case: Any, bearer: Any, create_user: Any
) -> None:
    contributor = create_user(Role.AGENCY_CONTRIBUTOR, agency="TREATMENT")
    headers = bearer(coordinator)
    triaged(client, case, headers)
    response = send(client, case, headers)
    assert response.status_code == 201, response.data
    conforms(doc, "SentRequests", response.get_json())
    assert_pseudonymised(response.data)
    body = response.get_json()
    assert sorted(r["agency"]["code"] for r in body["items"]) == ["POLICE", "TREATMENT"]
    assert body["unreachable"] == ["POLICE"]
    assert body["items"][0]["note"] == "Kit?" and body["items"][0]["status"] == "sent"
    mails = db.session.scalars(select(OutboxMessage)).all()
    assert [m.to_address for m in mails] == [contributor.email]
    member = create_user(Role.PANEL_MEMBER)
    listed = client.get(f"/api/v1/cases/{case.uuid}/requests", headers=bearer(member))
    assert listed.status_code == 200
    conforms(doc, "InfoRequestList", listed.get_json())
    assert len(listed.get_json()["items"]) == 2
    assert_pseudonymised(listed.data)


def test_requests_are_refused_with_problems(
    client: Any, doc: Any, coordinator: Any, case: Any, bearer: Any, create_user: Any
) -> None:
    headers = bearer(coordinator)
    assert "agencies" in assert_problem(send(client, case, headers), 400)["errors"]  # untriaged
    triaged(client, case, headers)
    for changes, field in [
        ({"agencies": ["WIZARDS"]}, "agencies"),
        ({"agencies": []}, "agencies"),
        ({"agencies": ["POLICE", "POLICE"]}, "agencies"),
        ({"due_on": days_ahead(-1)}, "due_on"),
        ({"due_on": None}, "due_on"),
        ({"note": "x" * 2001}, "note"),
        ({"cc": "me"}, "cc"),
    ]:
        problem = assert_problem(send(client, case, headers, **changes), 400)
        assert field in problem["errors"], (changes, problem)
        conforms(doc, "Problem", problem)
    assert send(client, case, headers, agencies=["POLICE"]).status_code == 201
    again = assert_problem(send(client, case, headers), 400)
    assert "Already asked" in again["errors"]["agencies"]
    member = create_user(Role.PANEL_MEMBER)
    assert_problem(send(client, case, bearer(member)), 403)
    elsewhere = create_user(Role.COORDINATOR, areas=("E06000008",))
    assert_problem(send(client, case, bearer(elsewhere)), 404)
    url = f"/api/v1/cases/{case.uuid}/requests"
    assert_problem(client.get(url, headers=bearer(elsewhere)), 404)
    contributor = create_user(Role.AGENCY_CONTRIBUTOR, agency="POLICE")
    assert_problem(client.get(url, headers=bearer(contributor)), 403)
    assert len(db.session.scalars(select(InfoRequest)).all()) == 1


# -- returns ------------------------------------------------------------------------------------


def answer(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "known_to_agency": "yes",
        "first_contact_on": "2025-01-10",
        "last_contact_on": "2025-06-01",
        "engagement": "partly",
        "risks": "Recent loss of tolerance.",
        "services": None,
        "submit": False,
    }
    body.update(changes)
    return body


def test_an_agency_contributor_drafts_then_submits_a_return(
    client: Any, doc: Any, coordinator: Any, case: Any, bearer: Any, create_user: Any
) -> None:
    contributor = create_user(Role.AGENCY_CONTRIBUTOR, agency="TREATMENT")
    headers = bearer(coordinator)
    triaged(client, case, headers)
    assert send(client, case, headers).status_code == 201
    mine = bearer(contributor)
    queue = client.get("/api/v1/requests", headers=mine)
    assert queue.status_code == 200
    conforms(doc, "InfoRequestList", queue.get_json())
    assert_pseudonymised(queue.data)
    (item,) = queue.get_json()["items"]  # their agency's only
    assert item["agency"]["code"] == "TREATMENT" and item["case"]["uuid"] == str(case.uuid)
    url = f"/api/v1/requests/{item['uuid']}/return"
    draft = client.put(url, json=answer(version=item["version"]), headers=mine)
    assert draft.status_code == 200, draft.data
    conforms(doc, "InfoRequest", draft.get_json())
    assert draft.get_json()["status"] == "draft"
    assert draft.get_json()["risks"] == "Recent loss of tolerance."
    assert_pseudonymised(draft.data)
    stale = client.put(url, json=answer(version=item["version"]), headers=mine)
    assert "known_to_agency" in assert_problem(stale, 409)["errors"]
    version = draft.get_json()["version"]
    done = client.put(url, json=answer(submit=True, version=version), headers=mine)
    assert done.status_code == 200 and done.get_json()["status"] == "returned"
    req = db.session.scalar(select(InfoRequest).where(InfoRequest.agency.has(code="TREATMENT")))
    db.session.refresh(req)
    assert req.status is RequestStatus.RETURNED
    assert_problem(client.put(url, json=answer(submit=True), headers=mine), 409)
    listed = client.get(f"/api/v1/cases/{case.uuid}/requests", headers=headers).get_json()
    returned = next(r for r in listed["items"] if r["agency"]["code"] == "TREATMENT")
    assert returned["status"] == "returned" and returned["engagement"] == "partly"


def test_returns_are_refused_with_problems(
    client: Any, doc: Any, coordinator: Any, case: Any, bearer: Any, create_user: Any
) -> None:
    contributor = create_user(Role.AGENCY_CONTRIBUTOR, agency="TREATMENT")
    headers = bearer(coordinator)
    triaged(client, case, headers)
    body = send(client, case, headers).get_json()
    treatment = next(r for r in body["items"] if r["agency"]["code"] == "TREATMENT")
    url = f"/api/v1/requests/{treatment['uuid']}/return"
    mine = bearer(contributor)
    for body_, field in [
        (answer(engagement="wizard"), "engagement"),
        (answer(known_to_agency=None), "known_to_agency"),
        (answer(submit="yes"), "submit"),
        (answer(first_contact_on="2025-07-01"), "first_contact_on"),  # after the last
        (answer(last_contact_on=days_ahead(3)), "last_contact_on"),
        (answer(known_to_agency="unknown", submit=True), "known_to_agency"),
        (answer(risks="x" * 20001), "risks"),
        (answer(extra=1), "extra"),
        (answer(version=0), "version"),
    ]:
        problem = assert_problem(client.put(url, json=body_, headers=mine), 400)
        assert field in problem["errors"], (body_, problem)
        conforms(doc, "Problem", problem)
    other_agency = create_user(Role.AGENCY_CONTRIBUTOR, agency="POLICE")
    assert_problem(client.put(url, json=answer(), headers=bearer(other_agency)), 404)
    other_area = create_user(Role.AGENCY_CONTRIBUTOR, agency="TREATMENT", areas=("E06000008",))
    assert_problem(client.put(url, json=answer(), headers=bearer(other_area)), 404)
    assert client.get("/api/v1/requests", headers=bearer(other_area)).get_json()["items"] == []
    assert_problem(client.put(url, json=answer(), headers=headers), 403)
    assert_problem(client.get("/api/v1/requests", headers=headers), 403)
    assert_problem(client.put(url, json=answer()), 401)
    req = db.session.scalar(select(InfoRequest).where(InfoRequest.agency.has(code="TREATMENT")))
    db.session.refresh(req)
    assert req.status is RequestStatus.SENT and req.saved_at is None


# -- actions ------------------------------------------------------------------------------------


def reviewed(client: Any, case: Any, headers: Any) -> None:
    for step in ("review", "ready", "reviewed"):
        assert move(client, case, headers, transition=step).status_code == 200


def add(client: Any, case: Any, headers: Any, **changes: Any) -> Any:
    body = {"description": "Offer naloxone at discharge.", "agency": "TREATMENT"}
    body["due_on"] = days_ahead(30)
    body.update(changes)
    return client.post(f"/api/v1/cases/{case.uuid}/actions", json=body, headers=headers)


def test_a_coordinator_sets_an_action_and_the_owner_agency_updates_it(
    client: Any, doc: Any, coordinator: Any, case: Any, bearer: Any, create_user: Any
) -> None:
    headers = bearer(coordinator)
    reviewed(client, case, headers)
    made = add(client, case, headers)
    assert made.status_code == 201, made.data
    conforms(doc, "Action", made.get_json())
    assert_pseudonymised(made.data)
    action = made.get_json()
    assert action["status"] == "open" and action["agency"]["code"] == "TREATMENT"
    listed = client.get(f"/api/v1/cases/{case.uuid}/actions", headers=headers)
    conforms(doc, "ActionList", listed.get_json())
    assert [a["uuid"] for a in listed.get_json()["items"]] == [action["uuid"]]
    owner = create_user(Role.AGENCY_CONTRIBUTOR, agency="TREATMENT")
    mine = bearer(owner)
    tracker = client.get("/api/v1/actions", headers=mine)
    conforms(doc, "ActionList", tracker.get_json())
    assert [a["uuid"] for a in tracker.get_json()["items"]] == [action["uuid"]]
    assert_pseudonymised(tracker.data)
    url = f"/api/v1/actions/{action['uuid']}"
    done = client.patch(
        url, json={"status": "done", "evidence": "Kits issued.", "version": 1}, headers=mine
    )
    assert done.status_code == 200, done.data
    conforms(doc, "Action", done.get_json())
    assert done.get_json()["status"] == "done" and done.get_json()["evidence"] == "Kits issued."
    assert done.get_json()["completed_at"] is not None
    stale = client.patch(url, json={"status": "in_progress", "version": 1}, headers=mine)
    assert "status" in assert_problem(stale, 409)["errors"]
    police = create_user(Role.AGENCY_CONTRIBUTOR, agency="POLICE")
    assert client.get("/api/v1/actions", headers=bearer(police)).get_json()["items"] == []


def test_actions_are_refused_with_problems(
    client: Any, doc: Any, coordinator: Any, case: Any, bearer: Any, create_user: Any
) -> None:
    headers = bearer(coordinator)
    assert "description" in assert_problem(add(client, case, headers), 400)["errors"]  # not yet
    reviewed(client, case, headers)
    for changes, field in [
        ({"agency": "WIZARDS"}, "agency"),
        ({"description": "   "}, "description"),
        ({"description": None}, "description"),
        ({"due_on": days_ahead(-1)}, "due_on"),
        ({"due_on": "soon"}, "due_on"),
        ({"owner": "me"}, "owner"),
    ]:
        problem = assert_problem(add(client, case, headers, **changes), 400)
        assert field in problem["errors"], (changes, problem)
        conforms(doc, "Problem", problem)
    member = create_user(Role.PANEL_MEMBER)
    assert_problem(add(client, case, bearer(member)), 403)
    elsewhere = create_user(Role.COORDINATOR, areas=("E06000008",))
    assert_problem(add(client, case, bearer(elsewhere)), 404)
    assert_problem(client.get(f"/api/v1/cases/{case.uuid}/actions", headers=bearer(elsewhere)), 404)
    action = add(client, case, headers).get_json()
    url = f"/api/v1/actions/{action['uuid']}"
    owner = bearer(create_user(Role.AGENCY_CONTRIBUTOR, agency="TREATMENT"))
    for body, field in [
        ({"status": "done"}, "evidence"),
        ({"status": "not_accepted"}, "reason"),
        ({"status": "finished"}, "status"),
        ({"status": "open", "version": -1}, "version"),
        ({"status": "open", "colour": 1}, "colour"),
    ]:
        problem = assert_problem(client.patch(url, json=body, headers=owner), 400)
        assert field in problem["errors"], (body, problem)
    assert_problem(client.patch(url, json={"status": "open"}, headers=headers), 403)  # reads only
    police = bearer(create_user(Role.AGENCY_CONTRIBUTOR, agency="POLICE"))
    assert_problem(client.patch(url, json={"status": "open"}, headers=police), 404)
    assert_problem(client.patch(url, json={"status": "open"}), 401)
    assert_problem(client.get("/api/v1/actions", headers=bearer(create_user(Role.LEAD))), 403)
