"""Drug-concern reports: the signed-in and public forms, the leak gate, the honeypot, the rate
limit, references, confirmations, and who sees a report afterwards."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Flask
from sqlalchemy import select

from dr_panel.alerts import reports as rep
from dr_panel.alerts.models import DrugReport, ItemStatus, ReportSource
from dr_panel.audit.models import AuditEntry
from dr_panel.auth.models import Role
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.mail import services as mail_services
from dr_panel.mail.models import OutboxMessage

EFFECTS = "Two people collapsed within minutes; needed several doses of naloxone."


def form(**changes: str) -> dict[str, str]:
    data = {
        "area": "E06000009",
        "place": "town centre",
        "seen_on": (utcnow().date() - timedelta(days=1)).isoformat(),
        "substance": "Brown powder, suspected heroin",
        "form": "powder",
        "sold_as": "heroin",
        "appearance": "Darker than usual, in small blue bags",
        "effects": EFFECTS,
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def reports() -> list[DrugReport]:
    return list(db.session.scalars(select(DrugReport).order_by(DrugReport.id)))


def actions() -> list[str]:
    return list(db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)))


def test_a_partner_reports_a_concern_and_gets_a_reference(
    app: Flask, client: Any, create_user: Any, login: Any
) -> None:
    member = create_user(Role.PANEL_MEMBER)
    login(client, member)
    assert client.get("/ldis/reports/new").status_code == 200
    response = client.post("/ldis/reports/new", data=form(is_urgent="y"))
    assert response.status_code == 200
    year = utcnow().year
    html = response.get_data(as_text=True)
    assert f"DC-{year}-0001" in html and "within 24 hours" in html
    [report] = reports()
    assert report.source is ReportSource.PROFESSIONAL and report.reporter_id == member.id
    assert report.is_urgent and report.status is ItemStatus.NEW
    assert "naloxone" not in report.content_enc  # stored encrypted
    assert rep.content_of(report)["effects"] == EFFECTS
    [mail] = db.session.scalars(select(OutboxMessage)).all()
    assert mail.to_address == member.email and f"DC-{year}-0001" in mail.subject
    assert "naloxone" not in mail.body_text and "powder" not in mail.body_text
    assert "drug_report.filed" in actions()


def test_the_public_form_counts_references_and_confirms_only_if_asked(
    app: Flask, client: Any
) -> None:
    page = client.get("/report-a-drug-concern")
    assert page.status_code == 200 and 'name="website"' in page.get_data(as_text=True)
    first = client.post("/report-a-drug-concern", data=form(contact="reporter@example.org"))
    second = client.post("/report-a-drug-concern", data=form())
    year = utcnow().year
    assert f"DC-{year}-0001" in first.get_data(as_text=True)
    assert f"DC-{year}-0002" in second.get_data(as_text=True)
    one, two = reports()
    assert one.source is ReportSource.PUBLIC and one.reporter_id is None
    assert one.reporter_contact_enc and "reporter@" not in one.reporter_contact_enc
    assert two.reporter_contact_enc is None
    mails = db.session.scalars(select(OutboxMessage)).all()
    # The address is kept only encrypted in the outbox (tests/privacy/test_forms.py).
    assert [mail_services.recipient_of(m) for m in mails] == ["reporter@example.org"]


def test_identifiers_are_refused_with_the_span_shown(app: Flask, client: Any) -> None:
    text = "The man, NHS number 999 000 0018, was taken to A&E."
    response = client.post("/report-a-drug-concern", data=form(effects=text))
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "<mark>999 000 0018</mark>" in html and "NHS number" in html
    assert "characters 21 to 32" in html
    postcode = client.post("/report-a-drug-concern", data=form(place="outside FY1 4AB"))
    assert postcode.status_code == 400 and "<mark>FY1 4AB</mark>" in postcode.get_data(as_text=True)
    assert reports() == []


def test_a_stored_persons_name_is_held_not_refused_on_the_public_form(
    app: Flask, client: Any, create_user: Any
) -> None:
    """Refusing it told anyone the person was held (issue 11): it is accepted and held."""
    from dr_panel.cases import services

    user = create_user(Role.COORDINATOR)
    parsed, errors = services.parse_notification(
        {"case_type": "death", "area": "E06000009", "event_date": "2026-10-01",
         "setting": "home", "full_name": "Zéphyrine Quillfeather"},
        lookups=services.Lookups(), allowed_areas=user.area_ids,
    )
    assert parsed is not None, errors
    services.create_notification(parsed, by=user)
    db.session.commit()
    response = client.post(
        "/report-a-drug-concern", data=form(effects="zephyrine QUILLFEATHER took it and died")
    )
    assert response.status_code == 200
    assert "<mark>" not in response.get_data(as_text=True)
    [report] = reports()
    assert report.is_held


def test_other_mistakes_say_how_to_fix_them(app: Flask, client: Any) -> None:
    tomorrow = (utcnow().date() + timedelta(days=1)).isoformat()
    response = client.post(
        "/report-a-drug-concern",
        data=form(seen_on=tomorrow, area="E99999999", substance="", contact="not-an-address"),
    )
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "The date is in the future" in html
    assert "Choose the area where it was seen" in html
    assert "Give an e-mail address like name@example.org" in html
    assert "Fill in “What was seen”" in html
    bad_date = client.post("/report-a-drug-concern", data=form(seen_on="20/11/2026"))
    assert "Write the date as YYYY-MM-DD" in bad_date.get_data(as_text=True)
    assert reports() == []


def test_the_honeypot_refuses_a_bot(app: Flask, client: Any) -> None:
    response = client.post("/report-a-drug-concern", data=form(website="http://spam.example"))
    assert response.status_code == 400
    assert "could not be accepted" in response.get_data(as_text=True)
    assert reports() == [] and "drug_report.refused" in actions()


def test_the_public_form_is_rate_limited(app_factory: Callable[..., Flask]) -> None:
    app = app_factory(DRUG_REPORT_LIMIT="2 per hour")
    with app.app_context():
        client = app.test_client()
        assert client.post("/report-a-drug-concern", data=form()).status_code == 200
        assert client.post("/report-a-drug-concern", data=form()).status_code == 200
        assert client.post("/report-a-drug-concern", data=form()).status_code == 429
        assert client.get("/report-a-drug-concern").status_code == 200  # reading is not limited
        assert len(reports()) == 2


def test_only_coordinators_of_the_area_read_a_report_and_each_read_is_audited(
    app: Flask, client: Any, create_user: Any, login: Any
) -> None:
    client.post("/report-a-drug-concern", data=form())
    [report] = reports()
    coordinator = create_user(Role.COORDINATOR)
    login(client, coordinator)
    queue = client.get("/ldis/queue").get_data(as_text=True)
    assert report.reference in queue
    listing = client.get("/ldis/reports").get_data(as_text=True)
    assert report.reference in listing
    page = client.get(f"/ldis/reports/{report.uuid}")
    assert page.status_code == 200 and "small blue bags" in page.get_data(as_text=True)
    assert "drug_report.viewed" in actions()

    other = app.test_client()
    login(other, create_user(Role.COORDINATOR, areas=("E06000008",)))
    assert other.get(f"/ldis/reports/{report.uuid}").status_code == 404
    assert report.reference not in other.get("/ldis/reports").get_data(as_text=True)
    for role in (Role.PANEL_MEMBER, Role.LEAD, Role.AGENCY_CONTRIBUTOR):
        c = app.test_client()
        login(c, create_user(role))
        assert c.get(f"/ldis/reports/{report.uuid}").status_code == 403
        assert c.get("/ldis/reports/new").status_code == 200
    admin = app.test_client()
    login(admin, create_user(Role.ADMIN))
    assert admin.get("/ldis/reports/new").status_code == 403
