"""The case workflow: every move allowed from the right status for the right role, refused
otherwise with a message; each move on the timeline with who, when and why (encrypted)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from dr_panel.audit.models import AuditEntry
from dr_panel.auth.models import Role
from dr_panel.cases import workflow
from dr_panel.cases.models import Case, CaseEvent, CaseStatus
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from tests.cases.test_intake import create


@pytest.fixture
def coordinator(create_user: Any) -> Any:
    return create_user(Role.COORDINATOR, areas=("E06000009", "E06000008"))


def a_death(user: Any, **changes: Any) -> Case:
    return create(user, case_type="death", nfo_outcome="", toxicology="awaited", **changes)


def needs(t: workflow.Transition, user: Any) -> dict[str, Any]:
    return {
        "reason": "New information from the coroner's officer" if t.needs_reason else None,
        "expected_on": utcnow().date() + timedelta(days=30) if t.needs_date else None,
    }


@pytest.mark.parametrize("t", workflow.TRANSITIONS, ids=[t.name for t in workflow.TRANSITIONS])
def test_each_move_works_from_each_of_its_statuses_and_nowhere_else(
    coordinator: Any, t: workflow.Transition
) -> None:
    keep = a_death(coordinator, event_date="2026-01-02", notified_on="2026-01-03")
    for status in CaseStatus:
        case = a_death(coordinator)
        case.status = status
        db.session.commit()
        kwargs = needs(t, coordinator) | (
            {"duplicate_of_reference": keep.reference} if t.needs_duplicate_of else {}
        )
        if status in t.source:
            event = workflow.move(case, t.name, by=coordinator, **kwargs)
            assert (event.from_status, case.status) == (status, t.target)
            db.session.commit()
        else:
            with pytest.raises(workflow.WorkflowError, match="cannot move to"):
                workflow.move(case, t.name, by=coordinator, **kwargs)
            db.session.rollback()
            assert db.session.get(Case, case.id).status is status


@pytest.mark.parametrize("role", [Role.PANEL_MEMBER, Role.LEAD, Role.AGENCY_CONTRIBUTOR])
def test_only_coordinators_move_cases(
    app: Any, coordinator: Any, create_user: Any, login: Any, role: Role
) -> None:
    case = create(coordinator)
    user = create_user(role)
    with pytest.raises(workflow.WorkflowError, match="Only a panel coordinator"):
        workflow.move(case, "review", by=user)
    client = app.test_client()
    login(client, user)
    assert (
        client.post(f"/cases/{case.uuid}/transition", data={"transition": "review"}).status_code
        == 403
    )
    db.session.expire_all()
    assert db.session.get(Case, case.id).status is CaseStatus.NOTIFIED


def test_deaths_only_steps_are_refused_for_overdoses(coordinator: Any) -> None:
    case = create(coordinator)
    workflow.move(case, "review", by=coordinator)
    assert "await_toxicology" not in {t.name for t in workflow.available(case, coordinator)}
    with pytest.raises(workflow.WorkflowError, match="for deaths only"):
        workflow.move(
            case,
            "await_toxicology",
            by=coordinator,
            expected_on=utcnow().date() + timedelta(days=9),
        )


def test_steps_that_need_a_reason_a_date_or_a_case_say_so(coordinator: Any) -> None:
    case = a_death(coordinator)
    with pytest.raises(workflow.WorkflowError, match="Say why") as err:
        workflow.move(case, "no_review", by=coordinator, reason="   ")
    assert err.value.field == "why"
    with pytest.raises(workflow.WorkflowError, match="Give the reference") as err:
        workflow.move(case, "duplicate", by=coordinator)
    with pytest.raises(workflow.WorkflowError, match="No case NFO-2026-9999 in Blackpool"):
        workflow.move(case, "duplicate", by=coordinator, duplicate_of_reference="nfo-2026-9999")
    with pytest.raises(workflow.WorkflowError, match="cannot be a duplicate of itself"):
        workflow.move(case, "duplicate", by=coordinator, duplicate_of_reference=case.reference)
    workflow.move(case, "review", by=coordinator)
    with pytest.raises(workflow.WorkflowError, match="Give the date") as err:
        workflow.move(case, "await_toxicology", by=coordinator)
    assert err.value.field == "expected_on"
    with pytest.raises(workflow.WorkflowError, match="in the past"):
        workflow.move(
            case,
            "await_toxicology",
            by=coordinator,
            expected_on=utcnow().date() - timedelta(days=1),
        )


def test_a_month_of_work_on_the_case_page_with_its_timeline(
    app: Any, client: Any, coordinator: Any, login: Any
) -> None:
    case = a_death(coordinator)
    login(client, coordinator)
    page = client.get(f"/cases/{case.uuid}").get_data(as_text=True)
    assert "Status: Notified, waiting for triage" in page and "Review at panel" in page

    def move(**data: Any) -> Any:
        version = db.session.get(Case, case.id).version
        return client.post(f"/cases/{case.uuid}/transition", data={"version": version, **data})

    assert move(transition="review").status_code == 302
    due = (utcnow().date() + timedelta(days=42)).isoformat()
    assert move(transition="await_toxicology", expected_on=due).status_code == 302
    page = client.get(f"/cases/{case.uuid}").get_data(as_text=True)
    assert "Status: Awaiting toxicology" in page and "Expected by" in page
    assert move(transition="results_arrived").status_code == 302
    assert move(transition="ready").status_code == 302
    refused = move(transition="close")
    assert refused.status_code == 400 and "cannot move to" in refused.get_data(as_text=True)
    assert move(transition="reviewed").status_code == 302
    assert move(transition="close").status_code == 302
    assert move(transition="reopen", why="Inquest found new evidence").status_code == 302
    page = client.get(f"/cases/{case.uuid}").get_data(as_text=True)
    assert "Status: Information gathering" in page
    assert "Why: Inquest found new evidence" in page
    assert page.index("Awaiting toxicology") < page.index("Why: Inquest found new evidence")
    # The reason is stored encrypted, and every move is in the audit log.
    stored = db.session.scalars(
        db.select(CaseEvent.reason_enc).where(CaseEvent.transition == "reopen")
    ).one()
    assert "Inquest" not in stored
    raw = db.session.execute(text("SELECT reason_enc FROM case_events")).scalars().all()
    assert not any(v and "Inquest" in v for v in raw)
    moves = db.session.scalars(
        db.select(AuditEntry).where(
            AuditEntry.action == "case.transition", AuditEntry.object_uuid == str(case.uuid)
        )
    ).all()
    assert len(moves) == 7


def test_a_stale_step_is_refused(app: Any, coordinator: Any, login: Any) -> None:
    case = create(coordinator)
    first, second = app.test_client(), app.test_client()
    login(first, coordinator)
    login(second, coordinator)
    version = case.version
    assert (
        first.post(
            f"/cases/{case.uuid}/transition", data={"transition": "review", "version": version}
        ).status_code
        == 302
    )
    response = second.post(
        f"/cases/{case.uuid}/transition",
        data={"transition": "no_review", "why": "Out of scope here", "version": version},
    )
    assert response.status_code == 409
    assert "Someone else changed this case" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Case, case.id).status is CaseStatus.INFORMATION_GATHERING


def test_duplicate_points_at_the_case_kept(client: Any, coordinator: Any, login: Any) -> None:
    kept = create(coordinator)
    dup = create(coordinator, event_date="2026-05-03", notified_on="2026-05-05")
    login(client, coordinator)
    response = client.post(
        f"/cases/{dup.uuid}/transition",
        data={
            "transition": "duplicate",
            "duplicate_of": kept.reference.lower(),
            "version": dup.version,
        },
        follow_redirects=True,
    )
    html = response.get_data(as_text=True)
    assert (
        "is now “Duplicate (merged)”" in html
        and f"Merged into {kept.reference}"
        in html.replace(f'<a href="/cases/{kept.uuid}">', "").replace("</a>", "")
    )
