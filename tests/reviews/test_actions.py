"""Actions and safety plans: the coordinator sets actions on a reviewed case; only the owner
agency's people update them; the tracker puts overdue first; reminders and the safety-plan alert
e-mail a link and nothing that identifies the person; free text is encrypted at rest."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from dr_panel.audit.models import AuditEntry
from dr_panel.auth.models import Role
from dr_panel.cases import workflow
from dr_panel.cli import main
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.mail.models import OutboxMessage
from dr_panel.reference.models import Agency
from dr_panel.reviews import actions as act
from dr_panel.reviews.actions import Action, ActionStatus, PlanStatus, SafetyPlan
from tests.cases.test_intake import create

SECRETS = ("Siân", "Brien", "9990000018", "999 000 0018", "FY1", "1984", "Example Road")


@pytest.fixture
def coordinator(create_user: Any) -> Any:
    return create_user(Role.COORDINATOR, areas=("E06000009",))


@pytest.fixture
def case(coordinator: Any) -> Any:
    c = create(coordinator)
    for step in ("review", "ready", "reviewed"):
        workflow.move(c, step, by=coordinator)
    db.session.commit()
    return c


def agency(code: str) -> Agency:
    return db.session.scalars(db.select(Agency).where(Agency.code == code)).one()


def add(case: Any, by: Any, code: str = "TREATMENT", days: int = 30, what: str = "") -> Action:
    a = act.create_action(
        case,
        description=what or "Offer naloxone training to hostel staff by the end of the quarter",
        agency=agency(code),
        due_on=utcnow().date() + timedelta(days=days),
        by=by,
    )
    db.session.commit()
    return a


def test_actions_are_set_on_reviewed_cases_only_with_a_date_to_come(
    app: Any, coordinator: Any, login: Any
) -> None:
    fresh = create(coordinator)
    with pytest.raises(act.ActionError, match="once the panel has reviewed"):
        add(fresh, coordinator)
    db.session.rollback()
    for step in ("review", "ready", "reviewed"):
        workflow.move(fresh, step, by=coordinator)
    db.session.commit()
    with pytest.raises(act.ActionError, match="in the past"):
        add(fresh, coordinator, days=-1)
    db.session.rollback()
    client = app.test_client()
    login(client, coordinator)
    page = client.get(f"/cases/{fresh.uuid}").get_data(as_text=True)
    assert "Add an action" in page
    done = client.post(
        f"/cases/{fresh.uuid}/actions",
        follow_redirects=True,
        data={
            "description": "Review discharge planning",
            "agency": "POLICE",
            "due_on": (utcnow().date() + timedelta(days=10)).isoformat(),
        },
    )
    html = done.get_data(as_text=True)
    assert "Action added for Lancashire Constabulary" in html
    assert "Review discharge planning" in html
    refused = client.post(
        f"/cases/{fresh.uuid}/actions",
        follow_redirects=True,
        data={"description": "", "agency": "POLICE", "due_on": "2030-01-01"},
    )
    assert "Say what is to be done" in refused.get_data(as_text=True)
    assert len(db.session.scalars(db.select(Action)).all()) == 1


def test_only_the_owner_agency_updates_and_done_needs_evidence(
    app: Any, case: Any, coordinator: Any, create_user: Any, login: Any
) -> None:
    a = add(case, coordinator, "TREATMENT")
    owner = create_user(Role.AGENCY_CONTRIBUTOR, agency="TREATMENT")
    owner_member = create_user(Role.PANEL_MEMBER, agency="TREATMENT")
    other_agency = create_user(Role.AGENCY_CONTRIBUTOR, agency="POLICE")
    police_member = create_user(Role.PANEL_MEMBER, agency="POLICE")

    client = app.test_client()
    login(client, owner)
    assert "Offer naloxone training" in client.get(f"/actions/{a.uuid}").get_data(as_text=True)
    r = client.post(f"/actions/{a.uuid}", data={"status": "done", "version": "1"})
    assert r.status_code == 400 and "Give the evidence" in r.get_data(as_text=True)
    r = client.post(f"/actions/{a.uuid}", data={"status": "not_accepted", "version": "1"})
    assert r.status_code == 400 and "Say why your agency does not accept" in r.get_data(
        as_text=True
    )
    r = client.post(f"/actions/{a.uuid}", data={"status": "in_progress", "version": "1"})
    assert r.status_code == 302
    db.session.expire_all()
    assert db.session.get(Action, a.id).status is ActionStatus.IN_PROGRESS

    member = app.test_client()
    login(member, owner_member)
    r = member.post(
        f"/actions/{a.uuid}",
        data={"status": "done", "evidence": "Training held for 12 staff", "version": "2"},
    )
    assert r.status_code == 302
    db.session.expire_all()
    done = db.session.get(Action, a.id)
    assert done.status is ActionStatus.DONE and done.completed_at is not None
    assert act.text_of(done, "evidence") == "Training held for 12 staff"

    # Another agency's contributor cannot even see it; the police panel member sees it (the
    # case's reader) but may not update it; nor may the coordinator.
    outsider = app.test_client()
    login(outsider, other_agency)
    assert outsider.get(f"/actions/{a.uuid}").status_code == 404
    for who in (police_member, coordinator):
        c = app.test_client()
        login(c, who)
        page = c.get(f"/actions/{a.uuid}")
        assert page.status_code == 200 and "Update the action" not in page.get_data(as_text=True)
        r = c.post(f"/actions/{a.uuid}", data={"status": "open", "version": "3"})
        assert r.status_code == 403
    db.session.expire_all()
    assert db.session.get(Action, a.id).status is ActionStatus.DONE
    updates = db.session.scalars(
        db.select(AuditEntry).where(AuditEntry.action == "action.updated")
    ).all()
    assert len(updates) == 2
    assert all("Training" not in (e.details or "") for e in updates)


def test_a_stale_update_is_refused_with_the_input_kept(
    app: Any, case: Any, coordinator: Any, create_user: Any, login: Any
) -> None:
    a = add(case, coordinator, "TREATMENT")
    first, second = app.test_client(), app.test_client()
    login(first, create_user(Role.AGENCY_CONTRIBUTOR, agency="TREATMENT"))
    login(second, create_user(Role.AGENCY_CONTRIBUTOR, agency="TREATMENT"))
    ok = first.post(f"/actions/{a.uuid}", data={"status": "in_progress", "version": "1"})
    assert ok.status_code == 302
    late = second.post(
        f"/actions/{a.uuid}",
        data={"status": "not_accepted", "reason": "Outside our colleague's remit", "version": "1"},
    )
    html = late.get_data(as_text=True)
    assert late.status_code == 409 and "A colleague updated this action" in html
    assert "Outside our colleague&#39;s remit" in html
    db.session.expire_all()
    assert db.session.get(Action, a.id).status is ActionStatus.IN_PROGRESS


def test_the_tracker_groups_by_agency_with_overdue_first(
    app: Any, case: Any, coordinator: Any, create_user: Any, login: Any
) -> None:
    later = add(case, coordinator, "TREATMENT", days=20, what="Treatment later action")
    soon = add(case, coordinator, "TREATMENT", days=5, what="Treatment sooner action")
    late = add(case, coordinator, "POLICE", days=5, what="Police overdue action")
    late.due_on = utcnow().date() - timedelta(days=3)
    db.session.commit()
    assert [g.agency.code for g in act.tracker(coordinator)] == ["POLICE", "TREATMENT"]
    assert [a.id for a in act.tracker(coordinator)[1].actions] == [soon.id, later.id]

    client = app.test_client()
    login(client, coordinator)
    page = client.get("/actions").get_data(as_text=True)
    assert page.index("Lancashire Constabulary") < page.index("Treatment service")
    assert "1 overdue" in page
    assert page.index(f"/actions/{soon.uuid}") < page.index(f"/actions/{later.uuid}")

    contributor = app.test_client()
    login(contributor, create_user(Role.AGENCY_CONTRIBUTOR, agency="TREATMENT"))
    mine = contributor.get("/actions").get_data(as_text=True)
    assert f"/actions/{soon.uuid}" in mine and f"/actions/{late.uuid}" not in mine
    elsewhere = create_user(Role.COORDINATOR, areas=("E06000008",))
    assert act.tracker(elsewhere) == []


def test_reminders_go_to_the_owner_agency_before_and_after_the_due_date(
    app: Any, case: Any, coordinator: Any, create_user: Any, runner: Any
) -> None:
    owner = create_user(Role.AGENCY_CONTRIBUTOR, agency="TREATMENT")
    member = create_user(Role.PANEL_MEMBER, agency="TREATMENT")
    create_user(Role.AGENCY_CONTRIBUTOR, agency="TREATMENT", areas=("E06000008",))  # not here
    create_user(Role.AGENCY_CONTRIBUTOR, agency="POLICE")  # not the owner
    week = add(case, coordinator, "TREATMENT", days=7)
    add(case, coordinator, "TREATMENT", days=3)  # between stages: nothing today
    overdue = add(case, coordinator, "TREATMENT", days=1)
    overdue.due_on = utcnow().date() - timedelta(days=2)
    finished = add(case, coordinator, "TREATMENT", days=1)
    finished.due_on = utcnow().date() - timedelta(days=2)
    finished.status = ActionStatus.DONE
    db.session.commit()

    result = runner.invoke(main, ["actions", "remind"])
    assert result.exit_code == 0 and "Queued 4 reminders." in result.output
    assert act.remind() == 0  # not twice in a day
    db.session.commit()
    mails = db.session.scalars(db.select(OutboxMessage).order_by(OutboxMessage.id)).all()
    assert sorted(m.to_address for m in mails) == sorted([owner.email, member.email] * 2)
    assert {m.kind for m in mails} == {"action.before", "action.overdue"}
    for m in mails:
        for secret in (*SECRETS, case.reference, "naloxone training", "Offer"):
            assert secret not in m.body_text and secret not in m.subject
    before = next(m for m in mails if m.kind == "action.before")
    assert f"/actions/{week.uuid}" in before.body_text
    due = week.due_on
    assert f"{due.day} {due:%B %Y}" in before.subject
    tomorrow = utcnow().date() + timedelta(days=1)
    assert act.remind(tomorrow) == 2  # the overdue one again, the next day
    db.session.commit()


def plan_data(who: Any, **changes: Any) -> dict[str, Any]:
    data = {
        "status": "open",
        "risks": "Reduced tolerance after prison release",
        "protective": "Sister visits weekly",
        "interventions": ["naloxone", "housing_referral"],
        "lead": str(who.uuid),
        "lead_agency": "TREATMENT",
        "review_on": (utcnow().date() + timedelta(days=28)).isoformat(),
    }
    data.update(changes)
    return data


def test_safety_plan_and_a_new_overdose_alerts_its_lead(
    app: Any, coordinator: Any, create_user: Any, login: Any
) -> None:
    nfo = create(coordinator)
    lead = create_user(Role.PANEL_MEMBER, agency="TREATMENT")
    client = app.test_client()
    login(client, coordinator)
    assert "Make a safety plan" in client.get(f"/cases/{nfo.uuid}").get_data(as_text=True)
    bad = client.post(f"/cases/{nfo.uuid}/safety-plan", data=plan_data(lead, lead=""))
    assert bad.status_code == 400 and "Choose the lead professional" in bad.get_data(as_text=True)
    saved = client.post(
        f"/cases/{nfo.uuid}/safety-plan", data=plan_data(lead), follow_redirects=True
    )
    html = saved.get_data(as_text=True)
    assert "Safety plan saved" in html and "Naloxone supplied, Housing referral" in html
    assert "Reduced tolerance after prison release" in html
    plan = db.session.scalars(db.select(SafetyPlan)).one()
    assert plan.status is PlanStatus.OPEN and plan.lead_user_id == lead.id
    raw = db.session.execute(text("SELECT risks_enc, protective_enc FROM safety_plans")).one()
    assert "tolerance" not in raw[0] and "Sister" not in raw[1]
    assert db.session.scalars(db.select(OutboxMessage)).all() == []

    again = create(coordinator, event_date="2026-06-10", notified_on="2026-06-11")
    assert again.person_id == nfo.person_id
    (alert,) = db.session.scalars(db.select(OutboxMessage)).all()
    assert alert.to_address == lead.email and alert.kind == "safety_plan.alert"
    assert f"/cases/{again.uuid}/safety-plan" in alert.body_text
    for secret in (*SECRETS, nfo.reference, again.reference, "tolerance"):
        assert secret not in alert.body_text and secret not in alert.subject
    assert db.session.scalars(
        db.select(AuditEntry).where(AuditEntry.action == "safety_plan.alerted")
    ).one()

    home = client.get("/").get_data(as_text=True)
    assert "1 new overdose for people with an open safety plan" in home
    plan_page = client.get(f"/cases/{again.uuid}/safety-plan").get_data(as_text=True)
    assert again.reference in plan_page and "Review the plan now" in plan_page

    # A stale save keeps the input; a review date gone by is flagged.
    stale = client.post(
        f"/cases/{nfo.uuid}/safety-plan",
        data=plan_data(lead, risks="A newer view of the risks", version="0"),
    )
    assert stale.status_code == 409 and "A newer view of the risks" in stale.get_data(as_text=True)
    plan.review_on = utcnow().date() - timedelta(days=1)
    db.session.commit()
    assert "1 safety plan review overdue" in client.get("/").get_data(as_text=True)
    assert "Review overdue" in client.get(f"/cases/{nfo.uuid}/safety-plan").get_data(as_text=True)


def test_no_alert_without_an_open_plan(app: Any, coordinator: Any, create_user: Any) -> None:
    nfo = create(coordinator)
    lead = create_user(Role.PANEL_MEMBER)
    act.save_plan(
        nfo,
        act.PlanInput(
            status=PlanStatus.CLOSED,
            risks="",
            protective="",
            interventions=[],
            lead=lead,
            lead_agency=None,
            review_on=utcnow().date(),
        ),
        by=coordinator,
        expected_version=None,
    )
    db.session.commit()
    create(coordinator, event_date="2026-06-10", notified_on="2026-06-11")
    assert db.session.scalars(db.select(OutboxMessage)).all() == []


def test_free_text_is_encrypted_at_rest(case: Any, coordinator: Any, create_user: Any) -> None:
    a = add(case, coordinator, "TREATMENT", what="Audit the discharge letters")
    act.update_action(
        a,
        act.ActionUpdate(ActionStatus.NOT_ACCEPTED, reason="Commissioned elsewhere"),
        by=create_user(Role.AGENCY_CONTRIBUTOR, agency="TREATMENT"),
        expected_version=a.version,
    )
    db.session.commit()
    row = db.session.execute(
        text("SELECT description_enc, not_accepted_reason_enc FROM actions")
    ).one()
    assert row[0].startswith("v1:") and "discharge" not in row[0]
    assert "Commissioned" not in row[1]
    assert act.text_of(a, "not_accepted_reason") == "Commissioned elsewhere"


def test_access_lead_refused_and_other_areas_not_found(
    app: Any, case: Any, coordinator: Any, create_user: Any, login: Any
) -> None:
    a = add(case, coordinator, "TREATMENT")
    lead = app.test_client()
    login(lead, create_user(Role.LEAD))
    for url in ("/actions", f"/actions/{a.uuid}", f"/cases/{case.uuid}/safety-plan"):
        assert lead.get(url).status_code == 403
    away = app.test_client()
    login(away, create_user(Role.COORDINATOR, areas=("E06000008",)))
    assert away.get(f"/actions/{a.uuid}").status_code == 404
    assert away.get(f"/cases/{case.uuid}/safety-plan").status_code == 404
    assert away.post(f"/cases/{case.uuid}/actions", data={}).status_code == 404
    away_member = app.test_client()
    login(away_member, create_user(Role.PANEL_MEMBER, areas=("E06000008",), agency="TREATMENT"))
    assert away_member.get(f"/actions/{a.uuid}").status_code == 404


def test_two_people_starting_a_plan_for_one_person_at_once_get_a_clear_refusal(
    app: Any, create_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second plan's insert loses the race on the unique person: a clear refusal, no 500."""
    from dr_panel.reviews import actions as act

    coordinator = create_user(Role.COORDINATOR, areas=("E06000009",))
    case = create(coordinator)
    plan = act.PlanInput(status=act.PlanStatus.OPEN, risks="Reduced tolerance",
                         protective="Family support", interventions=[], lead=coordinator,
                         lead_agency=None, review_on=utcnow().date() + timedelta(days=30))
    act.save_plan(case, plan, by=coordinator, expected_version=0)
    db.session.commit()
    # The second person opened the form before the first plan existed; their save reaches the
    # database after it. Their lookup still saw no plan:
    monkeypatch.setattr(act, "plan_for", lambda person: None)
    with pytest.raises(act.StalePlan, match="started a safety plan"):
        act.save_plan(case, plan, by=coordinator, expected_version=0)
    db.session.rollback()
    monkeypatch.undo()
    assert act.plan_for(case.person) is not None  # the first plan is intact
