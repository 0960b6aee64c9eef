"""Disposal: what is erased and what is kept, counts unchanged, audit entries free of
identifiers, the dry run, the command, two runs at once, reports, the case page."""

from __future__ import annotations

import threading
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from dr_panel.alerts.leakgate import check_fields
from dr_panel.alerts.models import DrugReport, ItemStatus
from dr_panel.alerts.reports import ReportInput, content_of, file_report
from dr_panel.audit.models import AuditEntry
from dr_panel.auth.models import Role
from dr_panel.cases import services as case_services
from dr_panel.cases.models import Case, CaseEvent, Person
from dr_panel.cli import main
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.mail.models import OutboxMessage
from dr_panel.privacy import identity as ident
from dr_panel.retention import services as retention
from dr_panel.retention.schedule import RecordKind
from tests.retention.support import (
    ADDRESS,
    DOB,
    NAME,
    NHS,
    POSTCODE,
    SECRETS,
    at,
    full_history,
    nfo,
    stored_text,
)

EVENT = date(2026, 5, 3)  # the demo notification's event date (tests.cases.test_intake)
DUE = date(2034, 5, 3)  # 8 years on


@pytest.fixture
def coordinator(create_user: Any) -> Any:
    return create_user(Role.COORDINATOR, areas=("E06000009", "E06000008"))


@pytest.fixture
def people(create_user: Any) -> tuple[Any, Any]:
    contributor = create_user(Role.AGENCY_CONTRIBUTOR, agency="TREATMENT")
    lead = create_user(Role.PANEL_MEMBER, agency="TREATMENT")
    return contributor, lead


def audit_text(*actions: str) -> str:
    rows = db.session.execute(
        select(AuditEntry.action, AuditEntry.details, AuditEntry.reason).where(
            AuditEntry.action.in_(actions)
        )
    ).all()
    return "\n".join(" ".join(str(v) for v in row) for row in rows)


def cube(runner: Any) -> str:
    result = runner.invoke(main, ["trends", "verify"])
    assert result.exit_code == 0, result.output
    from dr_panel.trends import aggregates

    stored = aggregates.stored()
    db.session.rollback()
    return repr(stored)


def test_disposal_erases_identifiers_indexes_and_free_text_and_keeps_the_facts(
    app: Any, coordinator: Any, people: Any, runner: Any
) -> None:
    case = full_history(coordinator, *people)
    other = nfo(coordinator, full_name="Tomasz Wiśniewski", date_of_birth="1979-11-05",
                nhs_number="9990000026", event_date="2026-11-10", notified_on="2026-11-11")
    before = cube(runner)
    assert [f for f in check_fields({"title": f"Concern about {NAME}"}) if f.kind == "name"]
    assert case_services.find_match(
        ident.Identity(NAME, date.fromisoformat(DOB), NHS, ADDRESS, POSTCODE)
    ).person is not None
    assert all(stored_text()[t] for t in ("case_events", "info_requests", "case_factors",
                                          "learning_points", "actions", "safety_plans"))
    facts = db.session.execute(
        select(Case.case_type, Case.event_date, Case.age_band, Case.postcode_district,
               Case.setting, Case.status).where(Case.id == case.id)
    ).one()

    assert retention.run(now=at(DUE - timedelta(days=1))).total == 0  # a day early: nothing
    report = retention.run(now=at(DUE))

    assert report.disposed[RecordKind.LIVING] == 1
    person = db.session.get(Person, case.person_id)
    assert person.disposed_at is not None and person.disposal_rule == "living"
    assert not any(getattr(person, c.key) for c in Person.__table__.c
                   if c.name.endswith("_enc") or c.name.startswith("bi_"))
    # Every free-text value of their cases is gone; the other person's is untouched.
    left = stored_text()
    assert left["info_requests"] == [] and left["actions"] == [] and left["safety_plans"] == []
    assert db.session.scalar(select(func.count()).select_from(CaseEvent).where(
        CaseEvent.case_id == case.id, CaseEvent.reason_enc.is_not(None))) == 0
    assert ident.unseal(db.session.get(Person, other.person_id)).full_name == "Tomasz Wiśniewski"
    # The coded facts, and so every trend count, are unchanged.
    assert db.session.execute(
        select(Case.case_type, Case.event_date, Case.age_band, Case.postcode_district,
               Case.setting, Case.status).where(Case.id == case.id)
    ).one() == facts
    assert cube(runner) == before
    # Key rotation and verification see the erased values as no value, not as broken ones.
    verified = runner.invoke(main, ["keys", "verify"])
    assert verified.exit_code == 0 and "Every value decrypts." in verified.output
    # Linking no longer finds them: the same person notified again is a new person.
    match = case_services.find_match(
        ident.Identity(NAME, date.fromisoformat(DOB), NHS, ADDRESS, POSTCODE)
    )
    assert match.person is None
    # Nor does the alert leak gate by their name.
    assert not [f for f in check_fields({"title": f"Concern about {NAME}"}) if f.kind == "name"]


def test_each_disposal_is_audited_with_references_and_the_rule_never_an_identifier(
    app: Any, coordinator: Any, people: Any
) -> None:
    case = full_history(coordinator, *people)
    retention.run(now=at(DUE))
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "retention.disposed")
    ).one()
    assert entry.actor_label == "retention schedule"
    assert case.reference in entry.details and "8 years after the last event" in entry.details
    assert '"info_requests":1' in entry.details and '"index_rows":' in entry.details
    text = audit_text("retention.disposed", "retention.run")
    assert "retention.run" in text
    for secret in SECRETS:
        assert secret not in text


def test_a_dry_run_says_what_would_go_and_changes_nothing(
    app: Any, coordinator: Any, people: Any, runner: Any
) -> None:
    case = full_history(coordinator, *people)
    snapshot = (stored_text(), db.session.scalar(select(func.count()).select_from(AuditEntry)))
    db.session.commit()
    from unittest import mock

    with mock.patch("dr_panel.retention.services.utcnow", return_value=at(DUE)):
        result = runner.invoke(main, ["retention", "run", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "Would dispose of 1: A living person's identifiers" in result.output
    assert case.reference in result.output and "Dry run: nothing was changed." in result.output
    for secret in SECRETS:
        assert secret not in result.output
    assert (stored_text(), db.session.scalar(select(func.count()).select_from(AuditEntry))) == (
        snapshot
    )
    assert db.session.get(Person, case.person_id).disposed_at is None

    with mock.patch("dr_panel.retention.services.utcnow", return_value=at(DUE)):
        real = runner.invoke(main, ["retention", "run"])
    assert real.exit_code == 0 and "Disposed of 1: A living person's" in real.output
    again = runner.invoke(main, ["retention", "run"])  # resumable: nothing is done twice
    assert "Disposed of 0: A living person's" in again.output


def test_open_work_holds_a_person_and_the_run_says_so(app: Any, coordinator: Any) -> None:
    case = nfo(coordinator)  # still "notified": never triaged
    report = retention.run(now=at(DUE + timedelta(days=400)))
    assert report.total == 0 and report.held == 1
    assert db.session.get(Person, case.person_id).disposed_at is None


def test_a_death_waits_for_its_review_to_finish_then_the_death_period(
    app: Any, coordinator: Any
) -> None:
    from dr_panel.cases import workflow
    from dr_panel.retention.schedule import add_years

    case = nfo(coordinator, case_type="death", nfo_outcome="")
    # Eight years after the death itself, the case is still open: held.
    assert retention.run(now=at(DUE)).held == 1
    workflow.move(case, "no_review", by=coordinator, reason="Known natural causes")
    db.session.commit()
    due = add_years(utcnow().date(), 8)  # from the day it was closed, not the day of the death
    assert retention.run(now=at(due - timedelta(days=1))).total == 0
    assert db.session.get(Person, case.person_id).disposed_at is None
    report = retention.run(now=at(due))
    assert report.disposed[RecordKind.DEATH] == 1
    assert db.session.get(Person, case.person_id).disposal_rule == "death"


def run_at_once(app: Any, when: Any, n: int = 2) -> list[retention.RunReport]:
    reports: list[retention.RunReport] = []
    errors: list[BaseException] = []
    start = threading.Barrier(n)

    def one() -> None:
        try:
            with app.app_context():
                start.wait()
                reports.append(retention.run(now=when, batch_size=3))
        except BaseException as err:  # noqa: BLE001  reported below
            errors.append(err)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    return reports


def test_two_runs_at_once_dispose_of_each_person_once(app: Any, coordinator: Any) -> None:
    from dr_panel.cases import workflow

    valid = (f"{n}" for n in range(9990001000, 9990002000) if not ident.nhs_number_problem(f"{n}"))
    for i, nhs in zip(range(8), valid, strict=False):
        c = nfo(coordinator, full_name=f"Test Person{i}", nhs_number=nhs,
                date_of_birth=f"19{70 + i}-01-0{1 + i}")
        workflow.move(c, "no_review", by=coordinator, reason="Seen by the GP")
    db.session.commit()
    made = db.session.scalar(select(func.count()).select_from(Person))
    db.session.commit()
    reports = run_at_once(app, at(DUE + timedelta(days=30)))
    assert sum(r.total for r in reports) == made
    assert db.session.scalar(
        select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "retention.disposed")
    ) == made
    assert db.session.scalar(
        select(func.count(func.distinct(AuditEntry.object_uuid))).where(
            AuditEntry.action == "retention.disposed")
    ) == made
    assert db.session.scalar(
        select(func.count()).select_from(Person).where(Person.disposed_at.is_(None))
    ) == 0


def public_report(app: Any, contact: str = "reporter@example.org") -> DrugReport:
    report = file_report(
        ReportInput(area="E06000009", seen_on=utcnow().date(), contact=contact,
                    texts={"substance": "Blue tablets marked 'T'", "effects": "Very drowsy"})
    )
    db.session.commit()
    return report


def test_a_reporters_address_goes_once_the_confirmation_is_sent_or_the_period_ends(
    app: Any,
) -> None:
    sent, unsent = public_report(app), public_report(app, "other@example.org")
    now = utcnow()
    assert retention.run(now=now).disposed[RecordKind.REPORT_CONTACT] == 0
    message = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.dedupe_key == f"drug_report:{sent.uuid}")
    ).one()
    message.sent_at = now
    db.session.commit()
    assert retention.run(now=now).disposed[RecordKind.REPORT_CONTACT] == 1
    db.session.refresh(sent)
    db.session.refresh(unsent)
    assert sent.reporter_contact_enc is None and sent.contact_erased_at is not None
    assert unsent.reporter_contact_enc is not None
    unsent_key = f"drug_report:{unsent.uuid}"
    assert db.session.scalars(
        select(OutboxMessage.to_address_enc).where(OutboxMessage.dedupe_key == unsent_key)
    ).one()
    assert retention.run(now=now + timedelta(days=30)).disposed[RecordKind.REPORT_CONTACT] == 1
    # The confirmation that never went held the only other (sealed) copy: gone with it.
    assert db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.dedupe_key == unsent_key)
    ).all() == []
    text = audit_text("retention.report_contact_erased")
    assert sent.reference in text and "example.org" not in text


def test_a_reports_text_goes_after_its_period_once_decided(app: Any) -> None:
    decided, waiting = public_report(app, ""), public_report(app, "")
    decided.status = ItemStatus.CLOSED
    db.session.commit()
    later = utcnow() + timedelta(days=730)
    assert retention.run(now=later - timedelta(days=1)).disposed[RecordKind.REPORT_TEXT] == 0
    assert retention.run(now=later).disposed[RecordKind.REPORT_TEXT] == 1
    db.session.refresh(decided)
    assert decided.text_erased_at is not None
    assert set(content_of(decided).values()) == {""}  # the page still opens, with nothing in it
    assert content_of(db.session.get(DrugReport, waiting.id))["effects"] == "Very drowsy"


def test_the_case_page_and_reveal_say_the_identifiers_were_erased(
    app: Any, coordinator: Any, login: Any
) -> None:
    case = nfo(coordinator)
    from dr_panel.cases import workflow

    workflow.move(case, "no_review", by=coordinator, reason="Seen by the GP")
    db.session.commit()
    retention.run(now=at(DUE + timedelta(days=30)))
    client = app.test_client()
    login(client, coordinator)
    page = client.get(f"/cases/{case.uuid}").get_data(as_text=True)
    assert "Identifiers erased on" in page and "under the retention schedule" in page
    assert "See who this is" not in page
    revealed = client.post(f"/cases/{case.uuid}/reveal",
                           data={"reason": "Checking before the panel meeting"})
    assert revealed.status_code == 200
    assert "Identifiers erased on" in revealed.get_data(as_text=True)
