"""CAP 1.2 documents: every one validates against OASIS's schema, and says what the version
is (identifier, sender, sent, status, msgType and references, scope, info, area)."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from dr_panel.alerts import cap
from dr_panel.alerts import drafting as dr
from dr_panel.alerts.models import AlertLevel, Decision, Rating, Reliability, Scope, Severity
from dr_panel.auth.models import Role
from dr_panel.extensions import db
from tests.alerts.drafting_helpers import (
    CAP_NS,
    CLEAN,
    draft_input,
    make_assessment,
    valid_cap,
)


@pytest.fixture
def two(create_user: Any) -> tuple[Any, Any]:
    return create_user(Role.COORDINATOR), create_user(Role.COORDINATOR)


def text(doc: Any, path: str) -> str | None:
    return doc.findtext(path, namespaces=CAP_NS)


def issue(drafter: Any, approver: Any, **kwargs: Any) -> Any:
    assessment_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in (
        "decision", "report", "severity", "reliability", "plausibility")}
    alert = dr.start_draft(make_assessment(drafter, **assessment_kwargs), by=drafter)
    dr.edit_draft(alert, draft_input(**kwargs), by=drafter, expected_revision=None)
    assert dr.submit(alert, by=drafter, expected_revision=None) == []
    dr.approve(alert, by=approver, expected_revision=None)
    db.session.commit()
    return alert


def test_a_restricted_alert(app: Flask, two: tuple[Any, Any]) -> None:
    alert = issue(*two, areas=("E06000009", "E06000008"), audiences=("outreach", "police"))
    version = alert.current
    doc = valid_cap(cap.document(version))
    assert text(doc, "cap:identifier") == f"urn:uuid:{version.uuid}"
    assert text(doc, "cap:sender") == "ldis@127.0.0.1"
    sent = text(doc, "cap:sent")
    assert sent is not None and sent.endswith("-00:00") and "Z" not in sent
    assert text(doc, "cap:status") == "Exercise"  # not production
    assert "not a real alert" in (text(doc, "cap:note") or "")
    assert text(doc, "cap:msgType") == "Alert"
    assert doc.find("cap:references", CAP_NS) is None
    assert text(doc, "cap:scope") == "Restricted"
    assert "Blackburn with Darwen" in (text(doc, "cap:restriction") or "")
    info = doc.find("cap:info", CAP_NS)
    assert text(info, "cap:category") == "Health"
    assert text(info, "cap:event") == "Drug alert"
    assert text(info, "cap:responseType") == "Avoid"
    assert (text(info, "cap:urgency"), text(info, "cap:severity"),
            text(info, "cap:certainty")) == ("Expected", "Severe", "Observed")
    assert text(info, "cap:headline") == CLEAN["title"]
    assert CLEAN["signs_of_harm"] in (text(info, "cap:description") or "")
    assert CLEAN["advice"] in (text(info, "cap:instruction") or "")
    assert text(info, "cap:expires") == cap.cap_time(version.expires_at)
    assert (text(info, "cap:web") or "").endswith(f"/ldis/alerts/{alert.uuid}#v1")
    assert "Outreach" in (text(info, "cap:audience") or "")
    areas = [
        (text(a, "cap:areaDesc"), text(a, "cap:geocode/cap:valueName"),
         text(a, "cap:geocode/cap:value"))
        for a in info.findall("cap:area", CAP_NS)
    ]
    assert areas == [("Blackburn with Darwen", "ONS", "E06000008"),
                     ("Blackpool", "ONS", "E06000009")]


def test_a_public_urgent_alert_from_a_report(app: Flask, two: tuple[Any, Any]) -> None:
    alert = issue(*two, decision=Decision.URGENT_ALERT, report=True, severity=Severity.EXTREME,
                  reliability=Reliability.A, plausibility=Rating.HIGH, scope=Scope.PUBLIC,
                  level=AlertLevel.URGENT_ALERT)
    doc = valid_cap(cap.document(alert.current))
    assert text(doc, "cap:scope") == "Public"
    assert doc.find("cap:restriction", CAP_NS) is None
    info = doc.find("cap:info", CAP_NS)
    assert (text(info, "cap:urgency"), text(info, "cap:severity"),
            text(info, "cap:certainty")) == ("Immediate", "Extreme", "Likely")
    assert text(info, "cap:event") == "Urgent drug alert"


@pytest.mark.parametrize(
    ("reliability", "plausibility", "certainty"),
    [(Reliability.A, Rating.HIGH, "Likely"), (Reliability.C, Rating.HIGH, "Possible"),
     (Reliability.B, Rating.MEDIUM, "Possible"), (Reliability.D, Rating.HIGH, "Unlikely"),
     (Reliability.A, Rating.LOW, "Unlikely")],
)
def test_certainty_follows_the_grading_of_a_report(
    app: Flask, two: tuple[Any, Any], reliability: Reliability, plausibility: Rating,
    certainty: str,
) -> None:
    alert = issue(*two, report=True, reliability=reliability, plausibility=plausibility,
                  level=AlertLevel.INFORMATION_NOTICE)
    info = valid_cap(cap.document(alert.current)).find("cap:info", CAP_NS)
    assert text(info, "cap:certainty") == certainty
    assert text(info, "cap:urgency") == "Future"
    assert text(info, "cap:responseType") == "Monitor"


def test_update_and_cancel_validate_and_reference_what_they_follow(
    app: Flask, two: tuple[Any, Any]
) -> None:
    d, s = two
    alert = issue(d, s)
    first = alert.current
    dr.start_update(alert, by=d)
    dr.edit_draft(alert, draft_input(note="Also sold as oxycodone."), by=d,
                  expected_revision=None)
    dr.submit(alert, by=d, expected_revision=None)
    dr.approve(alert, by=s, expected_revision=None)
    db.session.commit()
    second = alert.current
    dr.cancel(alert, reason="Tests found no nitazene.", urgent=False, by=d)
    dr.approve(alert, by=s, expected_revision=None)
    db.session.commit()
    third = alert.current
    docs = [valid_cap(cap.document(v)) for v in (first, second, third)]
    assert [text(x, "cap:msgType") for x in docs] == ["Alert", "Update", "Cancel"]
    assert text(docs[1], "cap:references") == cap.reference_of(first)
    assert text(docs[2], "cap:references") == cap.reference_of(second)
    assert len({text(x, "cap:identifier") for x in docs}) == 3
    cancel_info = docs[2].find("cap:info", CAP_NS)
    assert text(cancel_info, "cap:responseType") == "AllClear"
    assert text(cancel_info, "cap:urgency") == "Past"
    assert "no nitazene" in (text(docs[2], "cap:note") or "")


def test_production_says_actual(app: Flask, two: tuple[Any, Any]) -> None:
    alert = issue(*two)
    app.config["ENV_NAME"] = "production"
    try:
        doc = valid_cap(cap.document(alert.current))
    finally:
        app.config["ENV_NAME"] = "testing"
    assert text(doc, "cap:status") == "Actual"
    assert doc.find("cap:note", CAP_NS) is None


def test_a_draft_has_no_cap_document(app: Flask, two: tuple[Any, Any]) -> None:
    alert = dr.start_draft(make_assessment(two[0]), by=two[0])
    with pytest.raises(ValueError, match="issued"):
        cap.document(alert.draft)
