"""Panel meetings: the agenda from cases ready for panel, the confidentiality statement before
anything of the cases, the pseudonymised pack (audited), minutes encrypted."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from dr_panel.audit.models import AuditEntry
from dr_panel.auth.models import Role
from dr_panel.cases import workflow
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.reviews import services
from dr_panel.reviews.models import Meeting
from tests.cases.test_intake import create
from tests.reviews.test_requests import agency


@pytest.fixture
def coordinator(create_user: Any) -> Any:
    return create_user(Role.COORDINATOR, areas=("E06000009",))


@pytest.fixture
def ready_case(coordinator: Any, create_user: Any) -> Any:
    case = create(coordinator)
    workflow.move(case, "review", by=coordinator)
    (req,) = services.send_requests(
        case,
        [agency("TREATMENT")],
        note=None,
        by=coordinator,
        due_on=utcnow().date() + timedelta(days=7),
    )
    db.session.commit()
    contributor = create_user(Role.AGENCY_CONTRIBUTOR, agency="TREATMENT")
    services.save_return(
        req,
        services.Return(
            known_to_agency=services.YesNoUnknown.YES,
            first_contact_on=None,
            last_contact_on=None,
            engagement=services.Engagement.PARTLY,
            texts={"risks": "Missed two appointments after release"},
        ),
        submit=True,
        by=contributor,
        expected_version=None,
    )
    workflow.move(case, "ready", by=coordinator)
    db.session.commit()
    return case


def schedule(client: Any) -> str:
    due = (utcnow().date() + timedelta(days=10)).isoformat()
    response = client.post(
        "/meetings/new", data={"area": "E06000009", "held_on": due, "location": "Teams"}
    )
    assert response.status_code == 302
    return response.location.rsplit("/", 1)[1]


def test_a_meeting_from_agenda_to_pack(
    app: Any, client: Any, coordinator: Any, ready_case: Any, create_user: Any, login: Any
) -> None:
    not_ready = create(
        coordinator,
        event_date="2026-05-01",
        notified_on="2026-05-02",
        nhs_number="9990000026",
        full_name="Tomasz Wiśniewski",
        date_of_birth="1979-11-05",
    )
    member = create_user(Role.PANEL_MEMBER, agency="POLICE", areas=("E06000009",))
    login(client, coordinator)
    uuid = schedule(client)
    page = client.get(f"/meetings/{uuid}").get_data(as_text=True)
    assert ready_case.reference in page and not_ready.reference not in page  # only ready cases
    refused = client.post(
        f"/meetings/{uuid}/agenda", data={"cases": [str(not_ready.uuid)]}, follow_redirects=True
    )
    assert "not ready for panel" in refused.get_data(as_text=True)
    client.post(f"/meetings/{uuid}/agenda", data={"cases": [str(ready_case.uuid)]})
    client.post(f"/meetings/{uuid}/members", data={"members": [str(member.uuid)]})
    client.post(
        f"/meetings/{uuid}/minutes/{ready_case.uuid}",
        data={"minutes": "Agreed: naloxone on release from prison"},
    )
    client.post(f"/meetings/{uuid}/attendance", data={"present": [str(member.uuid)]})

    pack = client.get(f"/meetings/{uuid}/pack").get_data(as_text=True)
    assert ready_case.reference in pack and "Missed two appointments after release" in pack
    assert "Agreed: naloxone on release from prison" in pack
    for identifier in ("Siân", "Brien", "9990000018", "999 000 0018", "FY1 3AB", "1984"):
        assert identifier not in pack
    download = client.get(f"/meetings/{uuid}/pack?download=1")
    assert download.headers["Content-Disposition"].startswith("attachment;")
    actions = db.session.scalars(
        db.select(AuditEntry.action).where(AuditEntry.object_uuid == uuid)
    ).all()
    assert "meeting.pack_viewed" in actions and "meeting.pack_exported" in actions
    stored = db.session.execute(text("SELECT minutes_enc FROM meeting_items")).scalar_one()
    assert "naloxone" not in stored


def test_members_see_nothing_of_the_cases_before_accepting_the_statement(
    app: Any, coordinator: Any, ready_case: Any, create_user: Any, login: Any
) -> None:
    member = create_user(Role.PANEL_MEMBER, agency="POLICE", areas=("E06000009",))
    outsider = create_user(Role.PANEL_MEMBER, agency="POLICE", areas=("E06000009",))
    coord = app.test_client()
    login(coord, coordinator)
    uuid = schedule(coord)
    coord.post(f"/meetings/{uuid}/agenda", data={"cases": [str(ready_case.uuid)]})
    coord.post(f"/meetings/{uuid}/members", data={"members": [str(member.uuid)]})

    client = app.test_client()
    login(client, member)
    for path in (
        f"/meetings/{uuid}",
        f"/meetings/{uuid}/pack",
        f"/meetings/{uuid}/pack?download=1",
    ):
        html = client.get(path).get_data(as_text=True)
        assert "Before you see this meeting" in html and ready_case.reference not in html
    client.post(f"/meetings/{uuid}/accept", data={})  # box not ticked
    assert ready_case.reference not in client.get(f"/meetings/{uuid}").get_data(as_text=True)
    client.post(f"/meetings/{uuid}/accept", data={"accept": "yes"})
    assert ready_case.reference in client.get(f"/meetings/{uuid}").get_data(as_text=True)
    assert ready_case.reference in client.get(f"/meetings/{uuid}/pack").get_data(as_text=True)
    accepted = db.session.scalars(
        db.select(AuditEntry).where(AuditEntry.action == "meeting.confidentiality_accepted")
    ).one()
    assert accepted.actor_uuid == member.uuid

    # Not invited: the meeting is not theirs (404), and accepting does nothing.
    other = app.test_client()
    login(other, outsider)
    assert other.get(f"/meetings/{uuid}").status_code == 404
    assert other.get(f"/meetings/{uuid}/pack").status_code == 404
    assert uuid not in other.get("/meetings").get_data(as_text=True)


def test_scheduling_refuses_a_past_date(client: Any, coordinator: Any, login: Any) -> None:
    login(client, coordinator)
    past = (utcnow().date() - timedelta(days=1)).isoformat()
    response = client.post(
        "/meetings/new", data={"area": "E06000009", "held_on": past, "location": "Room 2"}
    )
    assert "in the past" in response.get_data(as_text=True)
    assert db.session.scalar(db.select(db.func.count()).select_from(Meeting)) == 0
    assert re.search(r"There is a problem", response.get_data(as_text=True))
