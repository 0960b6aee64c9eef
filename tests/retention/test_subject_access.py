"""The subject-access export: what it holds, who may have it, and what it never gives away."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from dr_panel.audit.models import AuditEntry, Outcome
from dr_panel.auth.models import Role
from dr_panel.cases import services as case_services
from dr_panel.extensions import db
from tests.retention.support import FREE_TEXT, NAME, full_history, nfo

REASON = "Subject access request received, our log SAR-12"


@pytest.fixture
def coordinator(create_user: Any) -> Any:
    return create_user(Role.COORDINATOR, areas=("E06000009",))


@pytest.fixture
def case(coordinator: Any, create_user: Any) -> Any:
    contributor = create_user(Role.AGENCY_CONTRIBUTOR, agency="TREATMENT")
    lead = create_user(Role.PANEL_MEMBER, agency="TREATMENT")
    return full_history(coordinator, contributor, lead)


def entries(action: str) -> list[AuditEntry]:
    db.session.rollback()
    return list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_the_coordinator_gets_everything_held_with_who_accessed_it(
    app: Any, coordinator: Any, case: Any, login: Any
) -> None:
    case_services.reveal(case, reason="Checking before the panel", by=coordinator)
    db.session.commit()
    client = app.test_client()
    login(client, coordinator)
    assert "Everything held about this person" in client.get(f"/cases/{case.uuid}").get_data(
        as_text=True)
    form = client.get(f"/cases/{case.uuid}/subject-access")
    assert form.status_code == 200 and "Why are you producing this export?" in form.get_data(
        as_text=True)
    empty = client.post(f"/cases/{case.uuid}/subject-access", data={"reason": ""})
    assert empty.status_code == 400 and "There is a problem" in empty.get_data(as_text=True)
    assert entries("subject_access.export") == []  # nothing produced, nothing recorded

    page = client.post(f"/cases/{case.uuid}/subject-access",
                       data={"reason": REASON, "show": "1"}).get_data(as_text=True)
    assert NAME.replace("'", "&#39;") in page and "999 000 0018" in page
    assert case.reference in page and f"{FREE_TEXT} (risks)" in page
    assert f"{FREE_TEXT} (action)" in page and f"{FREE_TEXT} (plan risks)" in page
    assert "Other areas&#39; panels are separate and may hold more" in page
    assert "case.reveal" in page and coordinator.email in page  # who accessed the record

    download = client.post(f"/cases/{case.uuid}/subject-access",
                           data={"reason": REASON, "download": "1"})
    assert download.mimetype == "application/json"
    assert "attachment" in download.headers["Content-Disposition"]
    data = json.loads(download.get_data(as_text=True))
    assert data["person"]["full_name"] == NAME and data["cases"][0]["reference"] == case.reference
    assert data["cases"][0]["findings"]["learning_points"][0]["text"] == f"{FREE_TEXT} (learning)"

    made = entries("subject_access.export")
    assert [e.outcome for e in made] == [Outcome.SUCCESS, Outcome.SUCCESS]
    assert {json.loads(e.details)["format"] for e in made} == {"html", "json"}
    for e in made:
        assert NAME not in (e.details or "") and "9990000018" not in (e.details or "")


def test_outside_the_coordinators_areas_it_is_not_found_and_audited(
    app: Any, case: Any, create_user: Any, login: Any
) -> None:
    elsewhere = create_user(Role.COORDINATOR, areas=("E06000008",))
    client = app.test_client()
    login(client, elsewhere)
    for method in ("get", "post"):
        answer = getattr(client, method)(f"/cases/{case.uuid}/subject-access",
                                         data={"reason": REASON, "download": "1"})
        assert answer.status_code == 404 and NAME not in answer.get_data(as_text=True)
    denied = [e for e in entries("access.denied") if e.object_uuid == str(case.uuid)]
    assert len(denied) == 2
    assert all('"endpoint":"retention.subject_access"' in (e.details or "") for e in denied)
    assert entries("subject_access.export") == []


@pytest.mark.parametrize("role", [Role.PANEL_MEMBER, Role.LEAD, Role.AGENCY_CONTRIBUTOR])
def test_other_roles_are_refused(
    app: Any, case: Any, create_user: Any, login: Any, role: Role
) -> None:
    client = app.test_client()
    login(client, create_user(role))
    answer = client.post(f"/cases/{case.uuid}/subject-access",
                         data={"reason": REASON, "download": "1"})
    assert answer.status_code == 403 and NAME not in answer.get_data(as_text=True)


def test_not_for_the_dead_and_the_refusal_says_why_and_is_audited(
    app: Any, coordinator: Any, login: Any
) -> None:
    death = nfo(coordinator, case_type="death", nfo_outcome="")
    client = app.test_client()
    login(client, coordinator)
    page = client.get(f"/cases/{death.uuid}/subject-access")
    assert page.status_code == 409 and "for living people" in page.get_data(as_text=True)
    refused = client.post(f"/cases/{death.uuid}/subject-access",
                          data={"reason": REASON, "download": "1"})
    assert refused.status_code == 409 and NAME not in refused.get_data(as_text=True)
    (entry,) = entries("subject_access.export")
    assert entry.outcome is Outcome.DENIED and "deceased" in entry.details


def test_the_export_never_tells_whether_another_area_holds_more(
    app: Any, coordinator: Any, create_user: Any, login: Any
) -> None:
    """The attacker: a coordinator comparing exports of a person another area also holds (even
    as a death) with one it does not. Both say the same thing about other areas."""
    other_area = create_user(Role.COORDINATOR, areas=("E06000008",))
    shared = nfo(coordinator)
    elsewhere = nfo(other_area, area="E06000008", case_type="death", nfo_outcome="",
                    event_date="2026-06-01", notified_on="2026-06-02")
    assert elsewhere.person_id == shared.person_id  # linked on the NHS number
    alone = nfo(coordinator, full_name="Tomasz Wiśniewski", date_of_birth="1979-11-05",
                nhs_number="9990000026")
    client = app.test_client()
    login(client, coordinator)

    def export(c: Any) -> dict[str, Any]:
        answer = client.post(f"/cases/{c.uuid}/subject-access",
                             data={"reason": REASON, "download": "1"})
        assert answer.status_code == 200
        return json.loads(answer.get_data(as_text=True))

    a, b = export(shared), export(alone)
    assert a["note"] == b["note"]
    assert len(a["cases"]) == len(b["cases"]) == 1
    text = json.dumps(a)
    assert elsewhere.reference not in text and "Blackburn" not in text
    assert "died" not in text.lower() and "death" not in text.lower()


@pytest.mark.parametrize("reason", [
    "Request from 999 000 0018 by post",  # the person's own NHS number
    f"Asked for by {NAME}",  # their name: the coordinator may see them, so it is refused
    "Letter from their solicitor, 14 Acacia Avenue",
])
def test_a_reason_carrying_an_identifier_is_refused_and_nothing_is_exported(
    app: Any, coordinator: Any, case: Any, login: Any, reason: str
) -> None:
    """The reason stays in the append-only audit log for good: checked as a reveal reason is."""
    client = app.test_client()
    login(client, coordinator)
    response = client.post(f"/cases/{case.uuid}/subject-access",
                           data={"reason": reason, "download": "1"})
    text = response.get_data(as_text=True)
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert "without naming or numbering anyone" in text and "999 000 0018" not in text.replace(
        reason, "")
    refused = entries("subject_access.export")
    assert [e.outcome for e in refused] == [Outcome.DENIED]
    assert refused[0].reason is None and "0018" not in (refused[0].details or "")
