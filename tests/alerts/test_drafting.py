"""Drafting, the gate at submission, second-person approval with the outbox, updates,
cancellations, frozen versions, stale edits, expiry, the pages and the archive."""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from dr_panel.alerts import cap
from dr_panel.alerts import drafting as dr
from dr_panel.alerts.models import (
    Alert,
    AlertLevel,
    AlertStatus,
    AlertVersion,
    Channel,
    Decision,
    Delivery,
    MsgType,
    Scope,
)
from dr_panel.audit.models import AuditEntry
from dr_panel.auth.models import Role
from dr_panel.cases.models import Person
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.privacy import identity as ident
from tests.alerts.drafting_helpers import (
    CAP_NS,
    CLEAN,
    draft_input,
    drafted,
    issued,
    make_assessment,
    valid_cap,
)
from tests.alerts.support import make_subscriber
from tests.conftest import csrf_token_from


@pytest.fixture
def people(create_user: Any) -> dict[str, Any]:
    return {
        "drafter": create_user(Role.COORDINATOR),
        "second": create_user(Role.COORDINATOR),
        "lead": create_user(Role.LEAD),
        "other_area": create_user(Role.COORDINATOR, areas=("E06000008",)),
        "member": create_user(Role.PANEL_MEMBER),
        "admin": create_user(Role.ADMIN),
    }


def deliveries(version: AlertVersion, event: str = "issued") -> int:
    return db.session.scalar(
        select(func.count()).select_from(Delivery).where(
            Delivery.version_id == version.id, Delivery.event == event
        )
    ) or 0


def revision_from(html: bytes) -> str:
    """The revision a page's form was shown (its hidden field)."""
    match = re.search(rb'name="revision" type="hidden" value="(\d+)"', html) or re.search(
        rb'id="revision" name="revision" type="hidden" value="(\d+)"', html
    )
    assert match, "no revision on the page"
    return match.group(1).decode()


def actions() -> list[str]:
    return list(db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.seq)))


# -- drafting from an assessment ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("observed", "said"),
    [(1, "Fewer than 8"), (3, "Fewer than 8"), (7, "Fewer than 8"), (8, "About 10"),
     (12, "About 10"), (13, "About 15"), (102, "About 100")],
)
def test_counts_follow_the_disclosure_rule(
    people: dict[str, Any], observed: int, said: str
) -> None:
    a = make_assessment(people["drafter"], observed=observed)
    alert = dr.start_draft(a, by=people["drafter"])
    counts = dr.content_of(alert.draft)["counts"]
    assert counts.startswith(f"{said} non-fatal overdoses involving opioids")
    # The raw count appears nowhere (the date of the signal, which has digits, aside).
    assert str(observed) not in counts.replace(dr._written(a.signal.day), "")


def test_a_draft_takes_level_and_area_from_the_assessment_and_no_free_text(
    people: dict[str, Any],
) -> None:
    a = make_assessment(people["drafter"], decision=Decision.URGENT_ALERT, report=True)
    alert = dr.start_draft(a, by=people["drafter"])
    db.session.commit()
    version = alert.draft
    assert version.level is AlertLevel.URGENT_ALERT
    assert [x.ons_code for x in version.areas] == ["E06000009"]
    assert version.scope is Scope.RESTRICTED
    content = dr.content_of(version)
    assert {k for k, v in content.items() if v} == {"counts"}  # nothing else is pre-written
    assert "Graded" not in json.dumps(content)
    assert alert.reference == f"LDIS-{utcnow().year}-0001"
    assert "alert.drafted" in actions()


def test_no_further_action_cannot_be_drafted(people: dict[str, Any]) -> None:
    a = make_assessment(people["drafter"], decision=Decision.NO_FURTHER_ACTION)
    with pytest.raises(dr.DraftError, match="no further action"):
        dr.start_draft(a, by=people["drafter"])


def test_areas_are_limited_to_the_drafters_network(people: dict[str, Any]) -> None:
    alert = drafted(people["drafter"], areas=("E06000009", "E06000008"))  # same network
    assert {a.ons_code for a in alert.draft.areas} == {"E06000009", "E06000008"}
    from tests.alerts.support import make_area

    make_area("E06000099", "Elsewhere", network="Another network")
    db.session.commit()
    alert2 = dr.start_draft(make_assessment(people["drafter"]), by=people["drafter"])
    with pytest.raises(dr.DraftError, match="network") as err:
        dr.edit_draft(alert2, draft_input(areas=("E06000099",)), by=people["drafter"],
                      expected_revision=None)
    assert err.value.field == "areas"


# -- the gate at submission ---------------------------------------------------------------------


def test_a_draft_naming_a_stored_person_is_blocked_until_edited(people: dict[str, Any]) -> None:
    person = Person(uuid=uuid.uuid4())
    ident.seal(person, ident.Identity(full_name="Ffion Ó Ceallaigh", nhs_number="9990000026"))
    db.session.add(person)
    db.session.commit()
    d = people["drafter"]
    alert = dr.start_draft(make_assessment(d), by=d)
    dirty = {**CLEAN, "advice": "FFION O CEALLAIGH was found; call 999."}
    dr.edit_draft(alert, draft_input(content=dirty), by=d, expected_revision=None)
    findings = dr.submit(alert, by=d, expected_revision=None)
    db.session.commit()
    assert [(f.field, f.kind, f.stored) for f in findings] == [("advice", "name", True)]
    assert alert.draft.submitted_at is None and alert.status is AlertStatus.DRAFT
    assert "alert.blocked" in actions()
    # Nobody can approve what was never submitted.
    with pytest.raises(dr.DraftError, match="not been sent"):
        dr.approve(alert, by=people["second"], expected_revision=None)
    dr.edit_draft(alert, draft_input(), by=d, expected_revision=None)
    assert dr.submit(alert, by=d, expected_revision=None) == []
    assert alert.status is AlertStatus.AWAITING_APPROVAL


def test_required_fields_are_asked_for_before_submission(people: dict[str, Any]) -> None:
    d = people["drafter"]
    alert = dr.start_draft(make_assessment(d), by=d)
    with pytest.raises(dr.DraftError, match="Fill in title") as err:
        dr.submit(alert, by=d, expected_revision=None)
    assert err.value.field == "title"


# -- approval -----------------------------------------------------------------------------------


def test_the_drafter_cannot_approve(people: dict[str, Any]) -> None:
    alert = drafted(people["drafter"])
    with pytest.raises(dr.NotAllowed, match="someone else must approve"):
        dr.approve(alert, by=people["drafter"], expected_revision=None)
    assert alert.current is None


def test_a_coordinator_of_another_area_cannot_approve(people: dict[str, Any]) -> None:
    alert = drafted(people["drafter"])
    assert not alert.can_approve(people["other_area"])
    with pytest.raises(dr.NotAllowed):
        dr.approve(alert, by=people["other_area"], expected_revision=None)


@pytest.mark.parametrize("approver", ["second", "lead"])
def test_approval_issues_and_queues_deliveries_in_the_same_transaction(
    people: dict[str, Any], approver: str
) -> None:
    for n in range(3):
        make_subscriber(Channel.EMAIL, email=f"team{n}@example.org")
    make_subscriber(Channel.EMAIL, areas=("E06000008",), email="bwd@example.org")  # network
    make_subscriber(Channel.EMAIL, email="public@example.org", receives_restricted=False)
    db.session.commit()
    alert = drafted(people["drafter"])
    version = alert.draft
    result = dr.approve(alert, by=people[approver], expected_revision=None)
    # Not committed yet: rolling back undoes both the issue and the queue.
    assert result.deliveries == 4
    db.session.rollback()
    db.session.refresh(version)
    assert version.issued_at is None and deliveries(version) == 0
    result = dr.approve(alert, by=people[approver], expected_revision=None)
    db.session.commit()
    db.session.refresh(version)
    assert version.is_frozen and version.approved_by_id == people[approver].id
    assert alert.status is AlertStatus.ISSUED
    assert deliveries(version) == 4  # the restricted alert skips the public-only subscriber
    assert "alert.issued" in actions()


def test_issued_versions_cannot_be_edited(people: dict[str, Any]) -> None:
    alert = issued(people["drafter"], people["second"])
    with pytest.raises(dr.DraftError, match="issued versions cannot be changed"):
        dr.edit_draft(alert, draft_input(), by=people["drafter"], expected_revision=None)
    with pytest.raises(dr.DraftError):
        dr.submit(alert, by=people["drafter"], expected_revision=None)


def test_a_stale_edit_is_refused(people: dict[str, Any]) -> None:
    d, s = people["drafter"], people["second"]
    alert = dr.start_draft(make_assessment(d), by=d)
    db.session.commit()
    seen = alert.draft.revision
    dr.edit_draft(alert, draft_input(), by=s, expected_revision=seen)
    db.session.commit()
    with pytest.raises(dr.StaleDraft, match="Someone else changed"):
        dr.edit_draft(alert, draft_input(), by=d, expected_revision=seen)


def test_an_edit_after_submission_withdraws_it(people: dict[str, Any]) -> None:
    alert = drafted(people["drafter"])
    dr.edit_draft(alert, draft_input(), by=people["second"], expected_revision=None)
    assert alert.status is AlertStatus.DRAFT and alert.draft.submitted_at is None
    # The last editor is now the drafter: the first one may approve once it is resubmitted.
    dr.submit(alert, by=people["second"], expected_revision=None)
    with pytest.raises(dr.NotAllowed):
        dr.approve(alert, by=people["second"], expected_revision=None)
    assert dr.approve(alert, by=people["drafter"], expected_revision=None).findings == []


# -- updates and cancellations ------------------------------------------------------------------


def _references(version: AlertVersion) -> str:
    doc = valid_cap(cap.document(version))
    return doc.findtext("cap:references", namespaces=CAP_NS) or ""


def test_update_is_a_new_version_referencing_the_original(people: dict[str, Any]) -> None:
    make_subscriber(Channel.EMAIL, email="team@example.org")
    d, s = people["drafter"], people["second"]
    alert = issued(d, s)
    first = alert.current
    update = dr.start_update(alert, by=d)
    assert update.msg_type is MsgType.UPDATE and update.references is first
    with pytest.raises(dr.DraftError, match="Say what changed"):
        dr.submit(alert, by=d, expected_revision=None)
    dr.edit_draft(alert, draft_input(note="Now also seen as green tablets."), by=d,
                  expected_revision=None)
    assert dr.submit(alert, by=d, expected_revision=None) == []
    with pytest.raises(dr.NotAllowed):
        dr.approve(alert, by=d, expected_revision=None)
    result = dr.approve(alert, by=s, expected_revision=None)
    db.session.commit()
    assert alert.current is update and alert.status is AlertStatus.ISSUED
    assert result.deliveries == 1
    refs = _references(update)
    assert refs == f"{cap.sender()},urn:uuid:{first.uuid},{cap.cap_time(first.issued_at)}"
    doc = valid_cap(cap.document(update))
    assert doc.findtext("cap:msgType", namespaces=CAP_NS) == "Update"
    assert "green tablets" in (doc.findtext("cap:note", namespaces=CAP_NS) or "")
    assert first.is_frozen and dr.content_of(first)["note"] == ""


def test_cancel_needs_a_second_person_and_references_the_original(
    people: dict[str, Any],
) -> None:
    d, s = people["drafter"], people["second"]
    alert = issued(d, s)
    first = alert.current
    result = dr.cancel(alert, reason="Laboratory tests found no nitazene.", urgent=False, by=d)
    db.session.commit()
    assert result.deliveries == 0 and alert.status is AlertStatus.ISSUED
    cancel = alert.draft
    assert cancel.msg_type is MsgType.CANCEL and cancel.submitted_at is not None
    with pytest.raises(dr.NotAllowed):
        dr.approve(alert, by=d, expected_revision=None)
    dr.approve(alert, by=s, expected_revision=None)
    db.session.commit()
    assert alert.status is AlertStatus.CANCELLED
    doc = valid_cap(cap.document(cancel))
    assert doc.findtext("cap:msgType", namespaces=CAP_NS) == "Cancel"
    assert f"urn:uuid:{first.uuid}" in _references(cancel)
    with pytest.raises(dr.DraftError, match="Only a live alert"):
        dr.start_update(alert, by=d)


def test_an_urgent_cancel_is_issued_at_once_and_says_so(people: dict[str, Any]) -> None:
    make_subscriber(Channel.EMAIL, email="team@example.org")
    alert = issued(people["drafter"], people["second"])
    result = dr.cancel(alert, reason="Issued in error.", urgent=True, by=people["drafter"])
    db.session.commit()
    assert alert.status is AlertStatus.CANCELLED and result.deliveries == 1
    entry = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "alert.issued").order_by(
            AuditEntry.seq.desc())
    ).first()
    assert entry is not None and "urgent_without_second_person" in json.dumps(entry.details)


def test_a_cancel_reason_with_an_identifier_is_blocked(people: dict[str, Any]) -> None:
    alert = issued(people["drafter"], people["second"])
    result = dr.cancel(alert, reason="Ring 07700 900123.", urgent=True, by=people["drafter"])
    db.session.commit()
    assert [f.kind for f in result.findings] == ["phone"]
    assert alert.status is AlertStatus.ISSUED and alert.draft is None


# -- expiry -------------------------------------------------------------------------------------


def test_expire_due_marks_expired_and_queues_the_notice(people: dict[str, Any]) -> None:
    make_subscriber(Channel.EMAIL, email="team@example.org")
    alert = issued(people["drafter"], people["second"])
    live = alert.current
    assert dr.expire_due(utcnow()) == 0
    assert dr.expire_due(live.expires_at + timedelta(seconds=1)) == 1
    db.session.commit()
    assert alert.status is AlertStatus.EXPIRED
    assert deliveries(live, "expired") == 1
    assert dr.expire_due(live.expires_at + timedelta(days=1)) == 0


# -- pages --------------------------------------------------------------------------------------


def test_the_whole_flow_through_the_pages(
    app: Flask, people: dict[str, Any], login: Any
) -> None:
    d = people["drafter"]
    a = make_assessment(d)
    drafter: FlaskClient = app.test_client()
    login(drafter, d)
    page = drafter.get(f"/ldis/alerts/new?assessment={a.uuid}")
    assert page.status_code == 200 and b"Start the draft" in page.data
    made = drafter.post(f"/ldis/alerts/new?assessment={a.uuid}",
                        data={"csrf_token": csrf_token_from(page.data)})
    assert made.status_code == 302
    alert = db.session.scalar(select(Alert))
    edit = drafter.get(made.location)
    form = {
        "csrf_token": csrf_token_from(edit.data), **CLEAN,
        "advice": "Tell clients. Reports from 999 000 0018.",
        "level": "drug_alert", "scope": "public", "areas": ["E06000009"],
        "audiences": ["outreach"], "expires_on": (utcnow().date() + timedelta(days=20)).isoformat(),
        "revision": revision_from(edit.data), "counts": "Fewer than 8 people.",
    }
    saved = drafter.post(f"/ldis/alerts/{alert.uuid}/edit", data=form)
    assert saved.status_code == 302, saved.data
    check = drafter.get(saved.location)
    assert check.status_code == 200
    assert b"The leak gate found 1 possible identifier" in check.data
    assert b"<mark" in check.data and b"999 000 0018</span>" not in check.data
    assert b"999 000 0018" in check.data
    assert b"Send for approval" not in check.data
    # Sending it anyway is refused with the same explanation.
    refused = drafter.post(f"/ldis/alerts/{alert.uuid}/submit",
                           data={"csrf_token": csrf_token_from(check.data),
                                 "revision": revision_from(check.data)})
    assert refused.status_code == 302
    assert b"Not sent: the leak gate" in drafter.get(refused.location).data
    # A colleague's stale form (revision 1) is refused with the input kept.
    stale = drafter.post(f"/ldis/alerts/{alert.uuid}/edit", data=form)  # the first revision
    assert stale.status_code == 409 and b"Someone else changed" in stale.data
    assert b"999 000 0018" in stale.data
    fixed = drafter.post(f"/ldis/alerts/{alert.uuid}/edit",
                         data={**form, "advice": CLEAN["advice"],
                               "revision": revision_from(stale.data)})
    assert fixed.status_code == 302
    check = drafter.get(fixed.location)
    assert b"The leak gate found nothing" in check.data
    sent = drafter.post(f"/ldis/alerts/{alert.uuid}/submit",
                        data={"csrf_token": csrf_token_from(check.data),
                              "revision": revision_from(check.data)})
    assert sent.status_code == 302
    # The drafter sees the approval page but cannot approve.
    own = drafter.get(f"/ldis/alerts/{alert.uuid}/approve")
    assert b"you cannot approve it" in own.data and b"Approve and issue" not in own.data
    assert drafter.post(f"/ldis/alerts/{alert.uuid}/approve",
                        data={"csrf_token": csrf_token_from(own.data)}).status_code == 403
    # A lead covering the area approves.
    approver = app.test_client()
    login(approver, people["lead"])
    page = approver.get(f"/ldis/alerts/{alert.uuid}/approve")
    assert page.status_code == 200 and b"Approve and issue" in page.data
    assert CLEAN["title"].encode() in page.data
    done = approver.post(f"/ldis/alerts/{alert.uuid}/approve",
                         data={"csrf_token": csrf_token_from(page.data),
                               "revision": revision_from(page.data)})
    assert done.status_code == 302
    shown = approver.get(done.location)
    assert b"Issued. 0 deliveries queued." in shown.data
    db.session.expire_all()
    assert db.session.get(Alert, alert.id).status is AlertStatus.ISSUED
    # Admins reach nothing here; a panel member of the area reads the issued alert.
    admin = app.test_client()
    login(admin, people["admin"])
    assert admin.get("/ldis/alerts").status_code == 403
    member = app.test_client()
    login(member, people["member"])
    archive = member.get("/ldis/alerts?q=nitazene")
    assert archive.status_code == 200 and alert.reference.encode() in archive.data
    assert member.get(f"/ldis/alerts/{alert.uuid}").status_code == 200
    assert member.get(f"/ldis/alerts/{alert.uuid}/draft").status_code == 403


def test_the_archive_filters_and_keeps_them_in_the_url(
    app: Flask, people: dict[str, Any], login: Any
) -> None:
    d, s = people["drafter"], people["second"]

    def listed(alert: Alert, page: Any) -> bool:
        return f">{alert.reference}</a>".encode() in page.data

    one = issued(d, s)
    two = issued(d, s, content={**CLEAN, "title": "Yellow powder sold as ketamine"},
                 level=AlertLevel.INFORMATION_NOTICE)
    client = app.test_client()
    login(client, s)
    page = client.get("/ldis/alerts?q=ketamine")
    assert listed(two, page) and not listed(one, page)
    page = client.get("/ldis/alerts?level=drug_alert&status=issued&area=E06000009")
    assert listed(one, page) and not listed(two, page)
    future = (utcnow().date() + timedelta(days=2)).isoformat()
    assert b"No alerts match" in client.get(f"/ldis/alerts?since={future}").data
    bad = client.get("/ldis/alerts?since=yesterday")
    assert bad.status_code == 400 and b"YYYY-MM-DD" in bad.data
    other = app.test_client()
    login(other, people["other_area"])  # the alert covers Blackpool only
    assert not listed(one, other.get("/ldis/alerts"))
