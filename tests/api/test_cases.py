"""The case endpoints of the JSON API: the same services and access rules as the pages,
pseudonymised by default, reveal only with a reason and audited, every refusal a problem."""

from __future__ import annotations

import json
import uuid
from datetime import date
from typing import Any

import pytest
from sqlalchemy import func, select

from dr_panel.audit.models import AuditEntry, Outcome
from dr_panel.auth.models import Role
from dr_panel.cases.models import Case, Person, age_band
from dr_panel.extensions import db
from dr_panel.privacy.identity import age_on
from tests.api.conftest import ADDRESS, DOB, NAME, NHS, POSTCODE, days_ago, notification

IDENTIFYING = [NAME, "O'Brien", "O\\u0027Brien", NHS, "999 000 0034", ADDRESS, POSTCODE, DOB]


def count(model: Any) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def last_entry(action: str | None = None) -> AuditEntry:
    stmt = select(AuditEntry).order_by(AuditEntry.seq.desc())
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    return db.session.scalars(stmt).first()


def assert_pseudonymised(raw: bytes) -> None:
    text = raw.decode()
    for value in IDENTIFYING:
        assert value not in text, "an identifier leaked into a pseudonymised answer"
    body = json.loads(text)
    for item in body.get("items", [body]):
        assert "identifiers" not in item and "age_at_event" not in item


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.data
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status and body["type"] == "about:blank"
    assert body["title"] and body["detail"]
    return body  # type: ignore[no-any-return]


@pytest.fixture
def coordinator(create_user: Any) -> Any:
    return create_user(Role.COORDINATOR)


# -- create -------------------------------------------------------------------------------------


def test_create_saves_the_case_and_answers_pseudonymised(
    client: Any, coordinator: Any, bearer: Any
) -> None:
    response = client.post("/api/v1/cases", json=notification(), headers=bearer(coordinator))
    assert response.status_code == 201, response.data
    body = response.get_json()
    assert response.headers["Location"] == f"/api/v1/cases/{body['uuid']}"
    assert_pseudonymised(response.data)
    assert body["case_type"] == "nfo" and body["area"] == {"code": "E06000009", "name": "Blackpool"}
    assert body["substances"] == ["crack", "heroin"]  # the list's order: by name
    assert body["naloxone_doses"] == 2 and body["previous_overdoses"] == 3
    assert body["event_time"] == "23:15" and body["date_is_found"] is False
    age = age_on(date.fromisoformat(DOB), date.fromisoformat(body["event_date"]))
    assert body["age_band"] == age_band(age) and "age_at_event" not in body
    assert body["postcode_district"] == "FY1"
    assert body["reference"].startswith("NFO-") and body["linked_cases"] == 0
    case = db.session.scalar(select(Case).where(Case.uuid == uuid.UUID(body["uuid"])))
    assert case.created_by_id == coordinator.id and str(case.person.uuid) == body["person"]
    entry = last_entry("case.created")
    assert entry.actor_uuid == coordinator.uuid and '"source":"api"' in entry.details
    # Stored encrypted: no identifier in clear in the person's row.
    row = db.session.execute(select(Person.__table__).where(Person.id == case.person_id)).one()
    assert not any(NAME in str(v) or NHS in str(v) or POSTCODE in str(v) for v in row)


def test_substances_may_be_one_comma_separated_string(
    client: Any, coordinator: Any, bearer: Any
) -> None:
    response = client.post(
        "/api/v1/cases",
        json=notification(substances="heroin, nitazenes"),
        headers=bearer(coordinator),
    )
    assert response.status_code == 201, response.data
    assert response.get_json()["substances"] == ["heroin", "nitazenes"]


def test_a_second_notification_links_to_the_same_person(
    client: Any, coordinator: Any, bearer: Any
) -> None:
    headers = bearer(coordinator)
    first = client.post("/api/v1/cases", json=notification(), headers=headers).get_json()
    second = client.post(
        "/api/v1/cases", json=notification(event_date=days_ago(1)), headers=headers
    ).get_json()
    assert second["person"] == first["person"] and second["match_status"] == "linked"
    assert second["linked_cases"] == 1


@pytest.mark.parametrize(
    "changes,field",
    [
        ({"case_type": "wizard"}, "case_type"),
        ({"case_type": ...}, "case_type"),
        ({"area": "E06000008"}, "area"),  # a real area, but not one of theirs
        ({"area": "nowhere"}, "area"),
        ({"event_date": "notadate"}, "event_date"),
        ({"event_date": days_ago(-3)}, "event_date"),  # the future
        ({"nhs_number": "999 000 0035"}, "nhs_number"),  # wrong check digit
        ({"postcode": "not a postcode"}, "postcode"),
        ({"substances": ["heroin", "unicorn dust"]}, "substances"),
        ({"substances": [1, 2]}, "substances"),
        ({"substances": ["heroin"] * 31}, "substances"),
        ({"naloxone_doses": 21}, "naloxone_doses"),
        ({"naloxone_doses": 0}, "naloxone_doses"),
        ({"naloxone_doses": "2"}, "naloxone_doses"),
        ({"naloxone_doses": 2.5}, "naloxone_doses"),
        ({"naloxone_doses": True}, "naloxone_doses"),
        ({"previous_overdoses": 501}, "previous_overdoses"),
        ({"previous_overdoses": -1}, "previous_overdoses"),
        ({"date_is_found": "maybe"}, "date_is_found"),
        ({"full_name": {"first": "Ann"}}, "full_name"),
        ({"full_name": ["Ann", "Lee"]}, "full_name"),
        ({"full_name": "x" * 501}, "full_name"),
        ({"full_name": "A" * 121}, "full_name"),
        ({"full_name": "Ann\u0000Lee"}, "full_name"),
        ({"address": "1 Road\ud800"}, "address"),
        ({"toxicology": "awaited"}, "toxicology"),  # deaths only
        ({"wizard": "yes"}, "wizard"),  # unknown keys are refused, not ignored
    ],
)
def test_bad_input_is_a_400_problem_per_field_and_nothing_is_saved(
    client: Any, coordinator: Any, bearer: Any, changes: dict[str, Any], field: str
) -> None:
    headers = bearer(coordinator)
    before = (count(Case), count(Person), count(AuditEntry))
    response = client.post("/api/v1/cases", json=notification(**changes), headers=headers)
    body = assert_problem(response, 400)
    assert field in body["errors"], body
    assert all(isinstance(m, str) and m for m in body["errors"].values())
    assert (count(Case), count(Person), count(AuditEntry)) == before


def test_the_ranges_in_the_document_are_the_ranges_accepted(
    client: Any, coordinator: Any, bearer: Any
) -> None:
    headers = bearer(coordinator)
    for doses, previous in ((1, 0), (20, 500)):
        response = client.post(
            "/api/v1/cases",
            json=notification(naloxone_doses=doses, previous_overdoses=previous),
            headers=headers,
        )
        assert response.status_code == 201, response.data


@pytest.mark.parametrize(
    "data,content_type,detail",
    [
        (b"{not json", "application/json", "not valid JSON"),
        (b"\xff\xfe\x00", "application/json", "not valid JSON"),
        (b"", "application/json", "not valid JSON"),
        (b"[1, 2]", "application/json", "one JSON object"),
        (b'"text"', "application/json", "one JSON object"),
        (b"null", "application/json", "one JSON object"),
        (b"[" * 30_000 + b"]" * 30_000, "application/json", "not valid JSON"),  # too deep
        (b"1" * 5000, "application/json", "not valid JSON"),  # over Python's digit limit
        (b'{"case_type": "nfo"}', "text/plain", "application/json"),
        (b"case_type=nfo", "application/x-www-form-urlencoded", "application/json"),
    ],
)
def test_malformed_bodies_are_refused_with_a_message(
    client: Any,
    coordinator: Any,
    bearer: Any,
    data: bytes,
    content_type: str,
    detail: str,
) -> None:
    response = client.post(
        "/api/v1/cases", data=data, content_type=content_type, headers=bearer(coordinator)
    )
    body = assert_problem(response, 400)
    assert detail in body["detail"]
    assert count(Case) == 0


def test_a_body_over_64_kib_is_a_413_problem(client: Any, coordinator: Any, bearer: Any) -> None:
    data = json.dumps(notification(address="x" * 70_000)).encode()
    response = client.post(
        "/api/v1/cases", data=data, content_type="application/json", headers=bearer(coordinator)
    )
    assert "64 KiB" in assert_problem(response, 413)["detail"]
    assert count(Case) == 0


def test_contributors_leads_and_admins_cannot_create(
    client: Any, create_user: Any, bearer: Any
) -> None:
    for role in (Role.AGENCY_CONTRIBUTOR, Role.LEAD, Role.ADMIN):
        response = client.post(
            "/api/v1/cases", json=notification(), headers=bearer(create_user(role))
        )
        assert_problem(response, 403)
        assert last_entry().action == "access.denied"
    assert count(Case) == 0


# -- list ---------------------------------------------------------------------------------------


def test_list_shows_only_their_areas_newest_first_and_pages(
    client: Any, create_user: Any, bearer: Any, create_case: Any
) -> None:
    both = create_user(Role.COORDINATOR, areas=("E06000009", "E06000008"))
    blackpool = create_user(Role.PANEL_MEMBER, areas=("E06000009",))
    for n in range(3):
        create_case(both, event_date=days_ago(10 + n), full_name=f"Person {n} Alpha")
    other = create_case(both, area="E06000008", full_name="Someone Else")
    response = client.get("/api/v1/cases?per_page=2", headers=bearer(blackpool))
    assert response.status_code == 200
    body = response.get_json()
    assert_pseudonymised(response.data)
    assert body["total"] == 3 and body["page"] == 1 and body["per_page"] == 2
    assert [i["event_date"] for i in body["items"]] == [days_ago(10), days_ago(11)]
    assert str(other.uuid) not in response.get_data(as_text=True)
    assert body["next"] == "/api/v1/cases?per_page=2&page=2"
    last = client.get(body["next"], headers=bearer(blackpool)).get_json()
    assert [i["event_date"] for i in last["items"]] == [days_ago(12)] and last["next"] is None
    beyond = client.get("/api/v1/cases?page=9", headers=bearer(blackpool)).get_json()
    assert beyond["items"] == [] and beyond["total"] == 3 and beyond["next"] is None


def test_list_filters(client: Any, create_user: Any, bearer: Any, create_case: Any) -> None:
    user = create_user(Role.COORDINATOR, areas=("E06000009", "E06000008"))
    nfo = create_case(user, event_date=days_ago(30), substances=["nitazenes"])
    death = create_case(
        user,
        case_type="death",
        nfo_outcome=None,
        area="E06000008",
        event_date=days_ago(5),
        full_name="Other Person",
        substances=["heroin"],
    )
    headers = bearer(user)

    def found(query: str) -> list[str]:
        response = client.get(f"/api/v1/cases?{query}", headers=headers)
        assert response.status_code == 200, response.data
        return [i["uuid"] for i in response.get_json()["items"]]

    assert found("") == [str(death.uuid), str(nfo.uuid)]
    assert found("type=nfo") == [str(nfo.uuid)]
    assert found("type=death") == [str(death.uuid)]
    assert found("area=E06000008") == [str(death.uuid)]
    assert found("status=notified") == [str(death.uuid), str(nfo.uuid)]
    assert found(f"since={days_ago(10)}") == [str(death.uuid)]
    assert found(f"until={days_ago(10)}") == [str(nfo.uuid)]
    assert found(f"since={days_ago(30)}&until={days_ago(30)}") == [str(nfo.uuid)]
    assert found("substance=nitazenes") == [str(nfo.uuid)]
    assert found("substance=cocaine") == []


def test_q_finds_cases_by_their_reference_as_the_list_page_does(
    client: Any, coordinator: Any, bearer: Any, create_case: Any
) -> None:
    first = create_case(coordinator, event_date=days_ago(9))
    second = create_case(coordinator, full_name="Other Person", event_date=days_ago(3))
    headers = bearer(coordinator)

    def found(q: str) -> list[str]:
        response = client.get("/api/v1/cases", query_string={"q": q}, headers=headers)
        assert response.status_code == 200, response.data
        return [i["uuid"] for i in response.get_json()["items"]]

    assert found(first.reference) == [str(first.uuid)]
    assert found(f"  {first.reference.lower()} ") == [str(first.uuid)]  # as typed on the page
    prefix = first.reference[:-1]  # NFO-2026-000: both
    assert second.reference.startswith(prefix)
    assert found(prefix) == [str(second.uuid), str(first.uuid)]
    assert found("NFO-1999") == []
    assert found("_") == [] and found("%") == []  # wildcards are plain characters


def test_q_does_not_find_or_betray_a_reference_in_another_area(
    client: Any, create_user: Any, bearer: Any, create_case: Any
) -> None:
    owner = create_user(Role.COORDINATOR, areas=("E06000008",))
    hidden = create_case(owner, area="E06000008")
    outsider = create_user(Role.COORDINATOR, areas=("E06000009",))
    headers = bearer(outsider)
    probe = client.get("/api/v1/cases", query_string={"q": hidden.reference}, headers=headers)
    nothing = client.get("/api/v1/cases", query_string={"q": "NFO-1900-99"}, headers=headers)
    assert probe.status_code == nothing.status_code == 200
    assert probe.get_json() == nothing.get_json()  # the same answer as no such reference
    assert probe.get_json()["items"] == [] and probe.get_json()["total"] == 0
    assert hidden.reference.encode() not in probe.data
    assert str(hidden.uuid).encode() not in probe.data
    # The owner, in their area, finds it.
    mine = client.get("/api/v1/cases", query_string={"q": hidden.reference}, headers=bearer(owner))
    assert [i["uuid"] for i in mine.get_json()["items"]] == [str(hidden.uuid)]


@pytest.mark.parametrize(
    "query,field",
    [
        ("type=wizard", "type"),
        ("type=NFO", "type"),
        ("status=finished", "status"),
        ("area=E06000008", "area"),  # exists, but not theirs
        ("area=nowhere", "area"),
        ("since=notadate", "since"),
        ("since=2026-02-30", "since"),
        ("since=20260314", "since"),
        ("until=2026-03-14T00:00", "until"),
        ("since=2026-03-14&until=2026-03-01", "until"),
        ("substance=unicorn", "substance"),
        ("page=-1", "page"),
        ("page=0", "page"),
        ("page=abc", "page"),
        ("page=1.5", "page"),
        ("page=99999999999999999999", "page"),
        ("per_page=201", "per_page"),
        ("per_page=0", "per_page"),
        ("type=nfo&type=death", "type"),
        ("sinse=2026-01-01", "sinse"),  # a typo is refused, not ignored
        ("q=" + "N" * 41, "q"),
        ("q=NFO%00", "q"),
        ("q=NFO&q=DRD", "q"),
    ],
)
def test_bad_list_parameters_are_a_400_problem(
    client: Any, coordinator: Any, bearer: Any, query: str, field: str
) -> None:
    body = assert_problem(client.get(f"/api/v1/cases?{query}", headers=bearer(coordinator)), 400)
    assert field in body["errors"], body


def test_leads_contributors_and_admins_cannot_list(
    client: Any, create_user: Any, bearer: Any
) -> None:
    for role in (Role.AGENCY_CONTRIBUTOR, Role.LEAD, Role.ADMIN):
        assert_problem(client.get("/api/v1/cases", headers=bearer(create_user(role))), 403)


# -- get and reveal -----------------------------------------------------------------------------


def test_get_is_pseudonymised_and_not_audited_as_a_reveal(
    client: Any, coordinator: Any, bearer: Any, create_case: Any
) -> None:
    case = create_case(coordinator)
    response = client.get(f"/api/v1/cases/{case.uuid}", headers=bearer(coordinator))
    assert response.status_code == 200
    assert_pseudonymised(response.data)
    assert response.get_json()["reference"] == case.reference
    assert last_entry("case.reveal") is None


@pytest.mark.parametrize("role", [Role.COORDINATOR, Role.PANEL_MEMBER])
def test_reveal_with_a_reason_gives_identifiers_and_is_audited(
    client: Any, create_user: Any, bearer: Any, create_case: Any, role: Role
) -> None:
    user = create_user(role)
    case = create_case(create_user(Role.COORDINATOR))
    headers = bearer(user)
    reason = "Preparing the panel review, March"
    url = f"/api/v1/cases/{case.uuid}?reveal=1"
    headers["X-Reveal-Reason"] = reason
    response = client.get(url, headers=headers)
    assert response.status_code == 200, response.data
    assert response.get_json()["identifiers"] == {
        "full_name": NAME,
        "date_of_birth": DOB,
        "nhs_number": NHS,
        "address": ADDRESS,
        "postcode": POSTCODE,
        "sex": "female",
    }
    entry = last_entry()
    assert entry.action == "case.reveal" and entry.outcome == Outcome.SUCCESS
    assert entry.reason == reason and entry.actor_uuid == user.uuid
    assert entry.object_uuid == str(case.uuid) and '"via":"api"' in entry.details
    assert not any(v in (entry.details or "") for v in IDENTIFYING)


def test_reveal_reason_in_a_utf8_header(
    client: Any, coordinator: Any, bearer: Any, create_case: Any
) -> None:
    case = create_case(coordinator)
    headers = bearer(coordinator)
    headers["X-Reveal-Reason"] = "Paratoi’r adolygiad".encode().decode("latin-1")
    response = client.get(f"/api/v1/cases/{case.uuid}?reveal=1", headers=headers)
    assert response.status_code == 200
    assert last_entry("case.reveal").reason == "Paratoi’r adolygiad"


@pytest.mark.parametrize(
    "query,header,field",
    [
        ("reveal=1", None, "reason"),
        ("reveal=1", "", "reason"),
        ("reveal=1", "   ", "reason"),
        ("reveal=yes", "panel", "reveal"),
        ("reveal=2", "panel", "reveal"),
        ("", "panel", "reveal"),  # a reason alone reveals nothing: say so
        # In the address, a reason would sit in every access log: refused, even a good one.
        ("reveal=1&reason=panel", None, "reason"),
        ("reveal=1&reason=panel", "panel", "reason"),
        ("reveal=1", "x" * 501, "reason"),
        ("reveal=1", "a\x00b", "reason"),
        ("reveal=1&show=all", "panel", "show"),
    ],
)
def test_reveal_without_a_proper_reason_is_a_400_and_reveals_nothing(
    client: Any,
    coordinator: Any,
    bearer: Any,
    create_case: Any,
    query: str,
    header: str | None,
    field: str,
) -> None:
    case = create_case(coordinator)
    headers = bearer(coordinator)
    if header is not None:
        headers["X-Reveal-Reason"] = header
    response = client.get(f"/api/v1/cases/{case.uuid}?{query}", headers=headers)
    body = assert_problem(response, 400)
    assert field in body["errors"], body
    assert_pseudonymised(response.data)
    assert last_entry("case.reveal") is None


def test_lead_cannot_reveal_403_and_it_is_audited(
    client: Any, create_user: Any, bearer: Any, create_case: Any
) -> None:
    case = create_case(create_user(Role.COORDINATOR))
    lead = create_user(Role.LEAD)
    response = client.get(
        f"/api/v1/cases/{case.uuid}?reveal=1",
        headers={**bearer(lead), "X-Reveal-Reason": "curious"},
    )
    assert_problem(response, 403)
    assert_pseudonymised(response.data)
    entry = last_entry()
    assert entry.action == "access.denied" and entry.outcome == Outcome.DENIED
    assert entry.actor_uuid == lead.uuid and '"api.cases.get_case"' in entry.details
    assert last_entry("case.reveal") is None


def test_a_role_that_may_view_but_not_reveal_gets_403_and_it_is_audited(
    client: Any, coordinator: Any, bearer: Any, create_case: Any, monkeypatch: Any
) -> None:
    case = create_case(coordinator)
    monkeypatch.setattr(Case, "can_reveal", lambda self, user: False)
    response = client.get(
        f"/api/v1/cases/{case.uuid}?reveal=1",
        headers={**bearer(coordinator), "X-Reveal-Reason": "review"},
    )
    assert_problem(response, 403)
    assert_pseudonymised(response.data)
    entry = last_entry()
    assert entry.action == "case.reveal" and entry.outcome == Outcome.DENIED
    assert entry.actor_uuid == coordinator.uuid and entry.object_uuid == str(case.uuid)
    # Without reveal=1 the same person still sees the pseudonymised case.
    assert client.get(f"/api/v1/cases/{case.uuid}", headers=bearer(coordinator)).status_code == 200


@pytest.mark.parametrize("role", [Role.COORDINATOR, Role.PANEL_MEMBER])
def test_out_of_area_cannot_see_or_reveal_404_and_it_is_audited(
    client: Any, create_user: Any, bearer: Any, create_case: Any, role: Role
) -> None:
    owner = create_user(Role.COORDINATOR, areas=("E06000008",))
    case = create_case(owner, area="E06000008")
    outsider = create_user(role, areas=("E06000009",))
    headers = bearer(outsider)
    for url, reason in (
        (f"/api/v1/cases/{case.uuid}", {}),
        (f"/api/v1/cases/{case.uuid}?reveal=1", {"X-Reveal-Reason": "x"}),
    ):
        response = client.get(url, headers={**headers, **reason})
        body = assert_problem(response, 404)
        assert_pseudonymised(response.data)
        entry = last_entry()
        assert entry.action == "access.denied" and entry.object_uuid == str(case.uuid)
        assert entry.actor_uuid == outsider.uuid and '"why":"record:view"' in entry.details
    assert last_entry("case.reveal") is None
    # The same answer as a case that does not exist at all.
    missing = client.get(f"/api/v1/cases/{uuid.uuid4()}", headers=headers)
    assert assert_problem(missing, 404) == body


@pytest.mark.parametrize("raw", ["1", "not-a-uuid", "%27%3B--", "0" * 40])
def test_malformed_case_ids_are_404(client: Any, coordinator: Any, bearer: Any, raw: str) -> None:
    assert_problem(client.get(f"/api/v1/cases/{raw}", headers=bearer(coordinator)), 404)


def test_the_browser_session_does_not_reach_the_api(
    client: Any, create_user: Any, login: Any, create_case: Any
) -> None:
    """The API takes tokens only (dr_panel.security.CREDENTIALS): a signed-in browser is 401."""
    user = create_user(Role.PANEL_MEMBER)
    case = create_case(create_user(Role.COORDINATOR))
    login(client, user)
    response = client.get(f"/api/v1/cases/{case.uuid}")
    assert response.status_code == 401 and response.mimetype == "application/problem+json"
    assert case.reference.encode() not in response.data
