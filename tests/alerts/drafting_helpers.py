"""Helpers for the drafting, CAP, feed and alert-API tests: an assessed signal or report, a
clean draft, and an issued alert, made through the real services."""

from __future__ import annotations

import itertools
import uuid
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from xml.etree import ElementTree  # noqa: S405 -- parsing our own output in tests

import xmlschema
from flask import current_app
from sqlalchemy import select

from dr_panel.alerts import drafting as dr
from dr_panel.alerts.models import (
    Alert,
    AlertLevel,
    Assessment,
    Decision,
    DrugReport,
    ItemStatus,
    Rating,
    Reliability,
    ReportSource,
    Scope,
    Severity,
    Signal,
    SignalKind,
    SignalMethod,
)
from dr_panel.cases.models import CaseType
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.reference.models import Area

CLEAN = {
    "title": "Blue tablets sold as diazepam: suspected nitazene",
    "substance": "Suspected nitazene (a strong synthetic opioid)",
    "sold_as": "Diazepam ('blues')",
    "appearance": "Blue round tablets marked DB, 10mg",
    "adulterant": "Nitazene suspected; laboratory results awaited",
    "signs_of_harm": "Pinpoint pupils, slow or stopped breathing, blue lips",
    "advice": "Do not use alone. Carry naloxone. Call 999 at once if someone will not wake.",
    "professional_actions": "Offer naloxone to everyone who may witness an overdose.",
}


_DAYS = itertools.count()  # each signal on its own day: a scan finds a signal once


def area(code: str) -> Area:
    found = db.session.scalar(select(Area).where(Area.ons_code == code))
    assert found is not None
    return found


def _seal(a: Assessment, column: str, text: str) -> str:
    return current_app.extensions["dr_panel.keys"].encrypt(
        text, table="assessments", column=column, record=str(a.uuid)
    )


def make_assessment(
    assessor: Any,
    *,
    decision: Decision = Decision.DRUG_ALERT,
    observed: int = 3,
    area_code: str = "E06000009",
    report: bool = False,
    severity: Severity = Severity.SEVERE,
    reliability: Reliability = Reliability.B,
    plausibility: Rating = Rating.HIGH,
) -> Assessment:
    """A signal (a spike of non-fatal overdoses) or a report, and its assessment; committed."""
    where = area(area_code)
    signal = drug_report = None
    if report:
        drug_report = DrugReport(
            uuid=uuid.uuid4(), reference=f"DCR-T{uuid.uuid4().hex[:8]}",
            source=ReportSource.PROFESSIONAL, area_id=where.id,
            seen_on=utcnow().date() - timedelta(days=1), content_enc="-",
            status=ItemStatus.ASSESSED,
        )
        db.session.add(drug_report)
    else:
        signal = Signal(
            uuid=uuid.uuid4(), kind=SignalKind.SPIKE, method=SignalMethod.C2, area_id=where.id,
            case_type=CaseType.NFO, subject="opioids",
            day=utcnow().date() - timedelta(days=next(_DAYS)), observed=observed,
            expected=0.5, threshold=2.1, evidence="{}", status=ItemStatus.ASSESSED,
        )
        db.session.add(signal)
    db.session.flush()
    a = Assessment(
        uuid=uuid.uuid4(), signal_id=signal.id if signal else None,
        report_id=drug_report.id if drug_report else None, assessor_id=assessor.id,
        reliability=reliability, plausibility=plausibility, local_relevance=Rating.HIGH,
        severity=severity, decision=decision, rationale_enc="-",
    )
    a.rationale_enc = _seal(a, "rationale", "Graded at the LDIS panel.")
    db.session.add(a)
    db.session.commit()
    return a


def draft_input(
    *,
    content: dict[str, str] | None = None,
    scope: Scope = Scope.RESTRICTED,
    areas: tuple[str, ...] = ("E06000009",),
    audiences: tuple[str, ...] = (),
    level: AlertLevel = AlertLevel.DRUG_ALERT,
    expires_on: date | None = None,
    note: str = "",
) -> dr.DraftInput:
    body = dict(content or CLEAN)
    body.setdefault("counts", "Fewer than 8 people needed hospital care.")
    if note:
        body["note"] = note
    return dr.DraftInput(
        content=body, level=level, scope=scope, area_codes=list(areas),
        audiences=list(audiences),
        expires_on=expires_on or utcnow().date() + timedelta(days=28),
    )


def drafted(drafter: Any, **kwargs: Any) -> Alert:
    """A clean draft, submitted for approval; committed."""
    a = make_assessment(drafter)
    alert = dr.start_draft(a, by=drafter)
    dr.edit_draft(alert, draft_input(**kwargs), by=drafter, expected_revision=None)
    assert dr.submit(alert, by=drafter, expected_revision=None) == []
    db.session.commit()
    return alert


def issued(drafter: Any, approver: Any, **kwargs: Any) -> Alert:
    alert = drafted(drafter, **kwargs)
    result = dr.approve(alert, by=approver, expected_revision=None)
    assert result.findings == []
    db.session.commit()
    return alert


# OASIS's CAP 1.2 schema from the workplace's standards folder (../shared/standards beside the
# checkout); where that is absent, the identical copy kept with the tests so they run anywhere.
SHARED_CAP_XSD = Path(__file__).resolve().parents[3] / "shared" / "standards" / "CAP-v1.2.xsd"
CAP_XSD = (SHARED_CAP_XSD if SHARED_CAP_XSD.exists()
           else Path(__file__).parent / "data" / "CAP-v1.2.xsd")
CAP_NS = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}


@lru_cache(maxsize=1)
def cap_schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(CAP_XSD))


def valid_cap(xml: bytes) -> ElementTree.Element:
    """The document, after checking it against the CAP 1.2 schema (raises if it does not fit)."""
    cap_schema().validate(xml.decode("utf-8"))
    return ElementTree.fromstring(xml)  # noqa: S314 -- our own output, in a test
