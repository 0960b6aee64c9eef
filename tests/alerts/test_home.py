"""The home page points coordinators and leads at the LDIS work waiting for them."""

from __future__ import annotations

from typing import Any

from flask import Flask

from dr_panel.alerts import reports
from dr_panel.auth.models import Role
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from tests.alerts.drafting_helpers import drafted


def test_a_new_report_is_on_the_coordinators_home_page(
    app: Flask, client: Any, create_user: Any, login: Any
) -> None:
    coordinator = create_user(Role.COORDINATOR)
    login(client, coordinator)
    assert "to grade" not in client.get("/").get_data(as_text=True)
    reports.file_report(
        reports.ReportInput(area="E06000009", seen_on=utcnow().date(), is_urgent=True,
                            texts={"substance": "Brown powder", "effects": "Heavy sedation"}),
        by=coordinator,
    )
    db.session.commit()
    home = client.get("/").get_data(as_text=True)
    assert "1 signal or drug-concern report to grade (1 urgent)" in home
    assert 'href="/ldis/queue"' in home


def test_an_alert_waiting_for_approval_shows_to_the_second_person_only(
    app: Flask, client: Any, create_user: Any, login: Any
) -> None:
    drafter = create_user(Role.COORDINATOR)
    lead = create_user(Role.LEAD)
    drafted(drafter)
    login(client, drafter)
    assert "waiting for a second person" not in client.get("/").get_data(as_text=True)
    other = app.test_client()
    login(other, lead)
    assert "1 alert waiting for a second person to approve" in other.get("/").get_data(
        as_text=True
    )
