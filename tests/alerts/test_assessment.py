"""The LDIS queue's due times and the assessment of signals and reports."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from dr_panel import StartupError
from dr_panel.alerts import assessment as asm
from dr_panel.alerts import reports as rep
from dr_panel.alerts.models import (
    Assessment,
    Decision,
    DrugReport,
    ItemStatus,
    Signal,
    SignalKind,
    SignalMethod,
)
from dr_panel.audit.models import AuditEntry
from dr_panel.auth.models import Role
from dr_panel.cases.models import CaseType
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.reference.models import Area


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_working_hours_skip_the_weekend(app: Flask) -> None:
    # Monday 09:00 + 48 h of Monday-Friday time = Wednesday 09:00.
    assert asm.due_at(at("2026-11-16 09:00"), False) == at("2026-11-18 09:00")
    # Friday 15:00: 9 h left on Friday, Saturday and Sunday skipped, 24 h Monday, 15 h Tuesday.
    assert asm.due_at(at("2026-11-20 15:00"), False) == at("2026-11-24 15:00")
    # Saturday 10:00 counts from Monday 00:00: Wednesday 00:00.
    assert asm.due_at(at("2026-11-21 10:00"), False) == at("2026-11-25 00:00")
    # Thursday 12:00: 12 h Thursday, 24 h Friday, 12 h Monday -> Monday 12:00.
    assert asm.due_at(at("2026-11-19 12:00"), False) == at("2026-11-23 12:00")
    # Urgent: 24 hours, weekends included.
    assert asm.due_at(at("2026-11-21 10:00"), True) == at("2026-11-22 10:00")


def _area(code: str = "E06000009") -> Area:
    found = db.session.scalar(select(Area).where(Area.ons_code == code))
    assert found is not None
    return found


def _signal(day: date, *, urgent: bool = False, detected_at: datetime | None = None) -> Signal:
    s = Signal(
        kind=SignalKind.SPIKE, method=SignalMethod.C1, area_id=_area().id,
        case_type=CaseType.DEATH if urgent else CaseType.NFO, subject="opioids", day=day,
        observed=9, expected=2.0, threshold=3.5, evidence="{}", is_urgent=urgent,
        detected_at=detected_at or utcnow(),
    )
    db.session.add(s)
    db.session.commit()
    return s


def _report(urgent: bool = False) -> DrugReport:
    made = rep.file_report(
        rep.ReportInput(
            area="E06000009", seen_on=utcnow().date(), is_urgent=urgent,
            texts={"substance": "White tablets", "effects": "Very drowsy for hours"},
        )
    )
    db.session.commit()
    return made


def test_the_queue_puts_the_soonest_due_first_and_flags_overdue(
    app: Flask, client: Any, create_user: Any, login: Any
) -> None:
    old = _signal(date(2026, 11, 1), detected_at=utcnow() - timedelta(days=10))
    urgent = _report(urgent=True)
    normal = _report()
    coordinator = create_user(Role.COORDINATOR)
    items = asm.queue(coordinator)
    assert [q.item.uuid for q in items] == [old.uuid, urgent.uuid, normal.uuid]
    assert items[0].is_overdue(utcnow()) and not items[1].is_overdue(utcnow())
    login(client, coordinator)
    html = client.get("/ldis/queue").get_data(as_text=True)
    assert "1 overdue" in html and html.index(str(old.uuid)) < html.index(urgent.reference)
    assert asm.queue(create_user(Role.LEAD)) == []


def test_assessing_a_report_with_no_further_action_closes_it(
    app: Flask, client: Any, create_user: Any, login: Any
) -> None:
    report = _report()
    coordinator = create_user(Role.COORDINATOR)
    login(client, coordinator)
    url = f"/ldis/reports/{report.uuid}/assess"
    assert client.get(url).status_code == 200
    grading = {
        "reliability": "b", "plausibility": "medium", "local_relevance": "low",
        "severity": "minor", "decision": "no_further_action", "notes": "Seen once only.",
    }
    missing = client.post(url, data=grading)
    assert missing.status_code == 400
    assert "Give the rationale for the decision" in missing.get_data(as_text=True)
    done = client.post(url, data={**grading, "rationale": "Single report, effects as expected."})
    assert done.status_code == 302 and done.location.endswith(f"/ldis/reports/{report.uuid}")
    db.session.refresh(report)
    assert report.status is ItemStatus.CLOSED
    [a] = db.session.scalars(select(Assessment)).all()
    assert a.report_id == report.id and a.assessor_id == coordinator.id
    assert "Single report" not in (a.rationale_enc or "")
    assert asm.text_of(a, "rationale") == "Single report, effects as expected."
    assert asm.text_of(a, "notes") == "Seen once only."
    entry = db.session.scalar(
        select(AuditEntry).where(AuditEntry.action == "assessment.recorded")
    )
    assert entry is not None and "Single report" not in str(entry.details)
    # Closed: it cannot be graded again, and it has left the queue.
    again = client.post(url, data={**grading, "rationale": "Again."})
    assert again.status_code == 400 and "can no longer be assessed" in again.get_data(as_text=True)
    assert asm.queue(coordinator) == []


def test_an_alert_decision_leads_to_drafting(
    app: Flask, client: Any, create_user: Any, login: Any
) -> None:
    s = _signal(utcnow().date(), urgent=True)
    login(client, create_user(Role.COORDINATOR))
    response = client.post(
        f"/ldis/signals/{s.uuid}/assess",
        data={
            "reliability": "a", "plausibility": "high", "local_relevance": "high",
            "severity": "extreme", "decision": "urgent_alert",
            "rationale": "Three deaths in two days with the same substance group.",
        },
    )
    a = db.session.scalar(select(Assessment))
    assert a is not None and a.decision is Decision.URGENT_ALERT
    assert response.status_code == 302 and f"assessment={a.uuid}" in response.location
    db.session.refresh(s)
    assert s.status is ItemStatus.ASSESSED
    page = client.get(f"/ldis/signals/{s.uuid}").get_data(as_text=True)
    assert "Urgent alert (risk to life)" in page
    assert f"assessment={a.uuid}" in page and "Draft the alert from this assessment" in page


def test_unchosen_grades_are_named_and_nothing_is_saved(
    app: Flask, client: Any, create_user: Any, login: Any
) -> None:
    s = _signal(utcnow().date())
    login(client, create_user(Role.COORDINATOR))
    response = client.post(
        f"/ldis/signals/{s.uuid}/assess", data={"decision": "bogus", "rationale": "x"}
    )
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Choose the source reliability, A to E." in html and "Choose the decision." in html
    assert db.session.scalar(select(Assessment)) is None


def test_only_the_areas_coordinators_assess(
    app: Flask, client: Any, create_user: Any, login: Any
) -> None:
    s = _signal(utcnow().date())
    login(client, create_user(Role.COORDINATOR, areas=("E06000008",)))
    assert client.get(f"/ldis/signals/{s.uuid}/assess").status_code == 404
    lead = app.test_client()
    login(lead, create_user(Role.LEAD))
    assert lead.get(f"/ldis/signals/{s.uuid}/assess").status_code == 403


def test_bank_holidays_and_london_days_stop_the_clock(app: Flask) -> None:
    # Christmas 2026: Friday 25 December, and Monday 28 December in place of Boxing Day (a
    # Saturday). Thursday 24th 12:00: 12 h Thursday, 24 h Tuesday 29th, 12 h Wednesday 30th.
    assert asm.due_at(at("2026-12-24 12:00"), False) == at("2026-12-30 12:00")
    # New Year 2027: Friday 1 January everywhere; Scotland also has Monday 4 January, in lieu of
    # Saturday 2nd. Thursday 31 December 12:00: 12 h Thursday, then 24 h Monday and 12 h Tuesday
    # in England; in Scotland, 24 h Tuesday and 12 h Wednesday.
    assert asm.add_working_hours(at("2026-12-31 12:00"), 48, "ENG") == at("2027-01-05 12:00")
    assert asm.add_working_hours(at("2026-12-31 12:00"), 48, "SCT") == at("2027-01-06 12:00")
    # In summer, Friday 23:30 UTC is already Saturday in London: the clock starts on Monday at
    # 00:00 London time (Sunday 23:00 UTC) and stops 48 hours later.
    assert asm.due_at(at("2026-06-05 23:30"), False) == at("2026-06-09 23:00")


def test_an_unknown_bank_holiday_region_stops_start_up(app_factory: Any) -> None:
    with pytest.raises(StartupError, match="BANK_HOLIDAY_REGION must be one of ENG, WLS"):
        app_factory(BANK_HOLIDAY_REGION="England")
