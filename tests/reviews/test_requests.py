"""Information requests: the coordinator asks; only the addressed agency's contributors see and
answer, with the minimum identifiers (audited); returns are encrypted, drafted, submitted."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from dr_panel.audit.models import AuditEntry, Outcome
from dr_panel.auth.models import Role
from dr_panel.cases import workflow
from dr_panel.cases.models import CaseStatus
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.mail.models import OutboxMessage
from dr_panel.reference.models import Agency
from dr_panel.reviews import services
from dr_panel.reviews.models import InfoRequest, RequestStatus
from tests.cases.test_intake import create


@pytest.fixture
def coordinator(create_user: Any) -> Any:
    return create_user(Role.COORDINATOR, areas=("E06000009", "E06000008"))


@pytest.fixture
def case(coordinator: Any) -> Any:
    c = create(coordinator)
    workflow.move(c, "review", by=coordinator)
    db.session.commit()
    return c


def agency(code: str) -> Agency:
    return db.session.scalars(db.select(Agency).where(Agency.code == code)).one()


def ask(case: Any, coordinator: Any, *codes: str, days: int = 14) -> services.Sent:
    made = services.send_requests(
        case,
        [agency(c) for c in codes],
        due_on=utcnow().date() + timedelta(days=days),
        note="Was a naloxone kit issued?",
        by=coordinator,
    )
    db.session.commit()
    return made


def test_requests_are_refused_with_a_reason_when_they_cannot_be_sent(coordinator: Any) -> None:
    fresh = create(coordinator)
    with pytest.raises(services.RequestError, match="Triage it for review first"):
        services.send_requests(
            fresh, [agency("POLICE")], due_on=utcnow().date(), note=None, by=coordinator
        )
    workflow.move(fresh, "review", by=coordinator)
    with pytest.raises(services.RequestError, match="in the past"):
        services.send_requests(
            fresh,
            [agency("POLICE")],
            note=None,
            by=coordinator,
            due_on=utcnow().date() - timedelta(days=1),
        )
    with pytest.raises(services.RequestError, match="Tick at least one agency"):
        services.send_requests(fresh, [], due_on=utcnow().date(), note=None, by=coordinator)
    ask(fresh, coordinator, "POLICE")
    with pytest.raises(services.RequestError, match="Already asked: Lancashire Constabulary"):
        ask(fresh, coordinator, "POLICE", "TREATMENT")


def test_only_the_addressed_agency_in_the_cases_area_sees_the_request(
    app: Any, case: Any, coordinator: Any, create_user: Any, login: Any
) -> None:
    (req,) = ask(case, coordinator, "TREATMENT")
    ours = create_user(Role.AGENCY_CONTRIBUTOR, agency="TREATMENT", areas=("E06000009",))
    other_agency = create_user(Role.AGENCY_CONTRIBUTOR, agency="POLICE", areas=("E06000009",))
    other_area = create_user(Role.AGENCY_CONTRIBUTOR, agency="TREATMENT", areas=("E06000008",))

    client = app.test_client()
    login(client, ours)
    assert case.reference in client.get("/requests").get_data(as_text=True)
    assert client.get(f"/requests/{req.uuid}/answer").status_code == 200
    assert client.get(f"/cases/{case.uuid}").status_code == 403  # the case itself: never
    assert client.get(f"/requests/{req.uuid}").status_code == 403  # the coordinator's view
    for outsider in (other_agency, other_area):
        c = app.test_client()
        login(c, outsider)
        assert case.reference not in c.get("/requests").get_data(as_text=True)
        assert c.get(f"/requests/{req.uuid}/answer").status_code == 404
    refusals = db.session.scalars(
        db.select(AuditEntry).where(
            AuditEntry.object_uuid == str(req.uuid), AuditEntry.outcome == Outcome.DENIED
        )
    ).all()
    assert len(refusals) == 2


def test_the_contributor_sees_minimum_identifiers_only_when_asking_and_it_is_audited(
    app: Any, case: Any, coordinator: Any, create_user: Any, login: Any
) -> None:
    (req,) = ask(case, coordinator, "TREATMENT")
    contributor = create_user(Role.AGENCY_CONTRIBUTOR, agency="TREATMENT")
    client = app.test_client()
    login(client, contributor)
    page = client.get(f"/requests/{req.uuid}/answer").get_data(as_text=True)
    assert "Siân" not in page and "Was a naloxone kit issued?" in page
    shown = client.post(f"/requests/{req.uuid}/answer", data={"show_details": "1"})
    html = shown.get_data(as_text=True)
    assert (
        "Siân O&#39;Brien-Smith" in html and "999 000 0018" in html and "29 February 1984" in html
    )
    assert "Example Road" not in html and "FY1 3AB" not in html  # never the address
    entry = db.session.scalars(
        db.select(AuditEntry).where(AuditEntry.action == "request.reveal")
    ).one()
    assert entry.actor_uuid == contributor.uuid and entry.object_uuid == str(req.uuid)


def test_draft_then_submit_and_the_coordinator_reads_it(
    app: Any, case: Any, coordinator: Any, create_user: Any, login: Any
) -> None:
    (req,) = ask(case, coordinator, "TREATMENT")
    contributor = create_user(Role.AGENCY_CONTRIBUTOR, agency="TREATMENT")
    client = app.test_client()
    login(client, contributor)
    answer = {
        "known_to_agency": "yes",
        "engagement": "partly",
        "first_contact_on": "2025-01-10",
        "last_contact_on": "2026-04-20",
        "risks": "Recent loss of tolerance after detox",
        "chronology": "2026-04-20 missed appointment; outreach visit left a card",
        "version": "1",
    }
    draft = client.post(
        f"/requests/{req.uuid}/answer",
        data=answer | {"save": "Save a draft"},
        follow_redirects=True,
    )
    assert "Draft saved" in draft.get_data(as_text=True)
    db.session.expire_all()
    req = db.session.get(InfoRequest, req.id)
    assert req.status is RequestStatus.DRAFT
    raw = db.session.execute(text("SELECT risks_enc, chronology_enc FROM info_requests")).one()
    assert "tolerance" not in raw[0] and "outreach" not in raw[1]

    submitted = client.post(
        f"/requests/{req.uuid}/answer",
        data=answer | {"version": str(req.version), "submit": "Submit the return"},
        follow_redirects=True,
    )
    assert "Return submitted" in submitted.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(InfoRequest, req.id).status is RequestStatus.RETURNED

    coord = app.test_client()
    login(coord, coordinator)
    page = coord.get(f"/cases/{case.uuid}").get_data(as_text=True)
    assert "1 of 1 agencies have answered." in page
    ret = coord.get(f"/requests/{req.uuid}").get_data(as_text=True)
    assert "Recent loss of tolerance after detox" in ret and "Partly" in ret


def test_bad_returns_say_what_to_fix(
    app: Any, case: Any, coordinator: Any, create_user: Any, login: Any
) -> None:
    (req,) = ask(case, coordinator, "TREATMENT")
    client = app.test_client()
    login(client, create_user(Role.AGENCY_CONTRIBUTOR, agency="TREATMENT"))
    r = client.post(
        f"/requests/{req.uuid}/answer",
        data={"known_to_agency": "unknown", "engagement": "unknown", "submit": "1", "version": "1"},
    )
    assert r.status_code == 400 and "Say whether the person was known" in r.get_data(as_text=True)
    r = client.post(
        f"/requests/{req.uuid}/answer",
        data={
            "known_to_agency": "yes",
            "engagement": "engaged",
            "first_contact_on": "2026-05-01",
            "last_contact_on": "2026-01-01",
            "save": "1",
            "version": "1",
        },
    )
    assert "first contact is after the last contact" in r.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(InfoRequest, req.id).status is RequestStatus.SENT


def test_two_colleagues_saving_the_same_return(
    app: Any, case: Any, coordinator: Any, create_user: Any, login: Any
) -> None:
    (req,) = ask(case, coordinator, "TREATMENT")
    a, b = app.test_client(), app.test_client()
    login(a, create_user(Role.AGENCY_CONTRIBUTOR, agency="TREATMENT"))
    login(b, create_user(Role.AGENCY_CONTRIBUTOR, agency="TREATMENT"))
    base = {"known_to_agency": "yes", "engagement": "engaged", "save": "1", "version": "1"}
    assert a.post(f"/requests/{req.uuid}/answer", data=base | {"risks": "first"}).status_code == 302
    late = b.post(f"/requests/{req.uuid}/answer", data=base | {"risks": "second colleague's"})
    html = late.get_data(as_text=True)
    assert late.status_code == 409 and "A colleague saved this return" in html
    assert "second colleague&#39;s" in html  # their input kept for them to merge
    db.session.expire_all()
    assert services.text_of(db.session.get(InfoRequest, req.id), "risks") == "first"


def test_overdue_requests_are_highlighted(
    app: Any, case: Any, coordinator: Any, login: Any
) -> None:
    (req,) = ask(case, coordinator, "POLICE")
    req.due_on = utcnow().date() - timedelta(days=2)
    db.session.commit()
    client = app.test_client()
    login(client, coordinator)
    assert "Overdue" in client.get(f"/cases/{case.uuid}").get_data(as_text=True)
    assert case.status is CaseStatus.INFORMATION_GATHERING


def test_the_contributors_home_page_lists_what_is_waiting(
    app: Any, case: Any, coordinator: Any, create_user: Any, login: Any
) -> None:
    contributor = create_user(Role.AGENCY_CONTRIBUTOR, agency="TREATMENT")
    client = app.test_client()
    login(client, contributor)
    assert "waiting for your agency" not in client.get("/").get_data(as_text=True)
    (req,) = ask(case, coordinator, "TREATMENT")
    req.due_on = utcnow().date() - timedelta(days=1)
    db.session.commit()
    home = client.get("/").get_data(as_text=True)
    assert "1 information request waiting for your agency (1 overdue)" in home


def test_asking_e_mails_the_agency_a_link_and_chasing_repeats_it_once_a_day(
    app: Any, case: Any, coordinator: Any, create_user: Any, login: Any
) -> None:
    contributor = create_user(Role.AGENCY_CONTRIBUTOR, agency="TREATMENT")
    create_user(Role.AGENCY_CONTRIBUTOR, agency="TREATMENT", areas=("E06000008",))  # not here
    client = app.test_client()
    login(client, coordinator)
    due = (utcnow().date() + timedelta(days=14)).isoformat()
    response = client.post(
        f"/cases/{case.uuid}/requests",
        follow_redirects=True,
        data={
            "agencies": ["TREATMENT", "POLICE"],
            "due_on": due,
            "note": "Was a naloxone kit issued?",
        },
    )
    html = response.get_data(as_text=True)
    assert "Asked 2 agencies" in html
    assert "No one at Lancashire Constabulary has a dr-panel account in Blackpool" in html
    mails = db.session.scalars(db.select(OutboxMessage)).all()
    assert [m.to_address for m in mails] == [contributor.email]
    (req,) = db.session.scalars(
        db.select(InfoRequest).where(InfoRequest.agency.has(code="TREATMENT"))
    ).all()
    body = mails[0].body_text
    assert f"/requests/{req.uuid}/answer" in body
    for secret in ("Siân", "Brien", "9990000018", "999 000 0018", "FY1", "1984", "naloxone kit"):
        assert secret not in body and secret not in mails[0].subject

    req.due_on = utcnow().date() - timedelta(days=1)
    db.session.commit()
    assert services.chase_overdue() == 1  # the police request is overdue too, but no one to e-mail
    assert services.chase_overdue() == 0  # not twice in one day
    db.session.commit()
    chases = db.session.scalars(
        db.select(OutboxMessage).where(OutboxMessage.kind == "request.chase")
    ).all()
    assert [m.to_address for m in chases] == [contributor.email]
    assert "overdue" in chases[0].subject


def test_the_service_itself_e_mails_the_agencies_so_no_door_can_forget(
    case: Any, coordinator: Any, create_user: Any
) -> None:
    """The page, the API and any later door (a bulk tool, a command) only call send_requests:
    the e-mails, and the agencies nobody could be e-mailed at, come from the service."""
    contributor = create_user(Role.AGENCY_CONTRIBUTOR, agency="TREATMENT")
    create_user(Role.AGENCY_CONTRIBUTOR, agency="POLICE", areas=("E06000008",))  # not here
    sent = ask(case, coordinator, "TREATMENT", "POLICE")
    assert sorted(r.agency.code for r in sent) == ["POLICE", "TREATMENT"]
    assert [a.code for a in sent.unreachable] == ["POLICE"]
    mails = db.session.scalars(db.select(OutboxMessage)).all()
    assert [(m.to_address, m.kind) for m in mails] == [(contributor.email, "request")]
    (treatment,) = [r for r in sent if r.agency.code == "TREATMENT"]
    assert f"/requests/{treatment.uuid}/answer" in mails[0].body_text
    for secret in ("Siân", "Brien", "9990000018", "999 000 0018", "naloxone kit"):
        assert secret not in mails[0].body_text and secret not in mails[0].subject


def test_a_refused_send_queues_no_e_mail(case: Any, coordinator: Any, create_user: Any) -> None:
    create_user(Role.AGENCY_CONTRIBUTOR, agency="TREATMENT")
    ask(case, coordinator, "POLICE")
    with pytest.raises(services.RequestError, match="Already asked"):
        services.send_requests(
            case,
            [agency("TREATMENT"), agency("POLICE")],
            due_on=utcnow().date() + timedelta(days=7),
            note=None,
            by=coordinator,
        )
    db.session.rollback()
    assert db.session.scalars(db.select(OutboxMessage)).all() == []
