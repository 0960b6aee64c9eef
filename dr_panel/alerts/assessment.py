"""The LDIS panel's queue and its assessment of signals and reports.

The queue: new signals and reports in a coordinator's areas, most urgent due first, with the
target time: 24 hours from detection or receipt when urgent (a death series, a cluster with a
death, a report of a death or hospital care), otherwise 48 working hours: the clock runs around
the clock on working days and stops on Saturdays, Sundays and the bank holidays of the nation in
``BANK_HOLIDAY_REGION`` (the ``holidays`` package's calendar, substitute days included), with
days as they fall in Europe/London, so a report on Friday at 23:30 UTC in summer (Saturday 00:30
in London) is not given half an hour of Friday.

An assessment grades the item (source reliability A-E, plausibility, local relevance, severity
of harm), records notes and the decision with its rationale (both encrypted), and moves the
item: "no further action" closes it, any other decision marks it assessed; an alert decision
then leads to drafting (``alerts.new_draft``). An item can be graded again while it is new or
assessed; once closed, or once an alert was drafted from it, it cannot.
"""

from __future__ import annotations

import uuid as uuid_mod
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import holidays
from flask import current_app
from sqlalchemy import select

from dr_panel.alerts.models import (
    Assessment,
    Decision,
    DrugReport,
    ItemStatus,
    Rating,
    Reliability,
    Severity,
    Signal,
)
from dr_panel.audit.services import record
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.privacy.identity import keys
from dr_panel.roles import Role

if TYPE_CHECKING:
    from dr_panel.auth.models import User

URGENT_WITHIN = timedelta(hours=24)
WORKING_HOURS = 48
OPEN_FOR_ASSESSMENT = (ItemStatus.NEW, ItemStatus.ASSESSED)
TEXT_MAX = 4000

RELIABILITY_LABELS = {
    Reliability.A: "A: reliable",
    Reliability.B: "B: usually reliable",
    Reliability.C: "C: fairly reliable",
    Reliability.D: "D: not usually reliable",
    Reliability.E: "E: reliability cannot be judged",
}
DECISION_LABELS = {
    Decision.NO_FURTHER_ACTION: "No further action",
    Decision.INFORMATION_NOTICE: "Information notice",
    Decision.DRUG_ALERT: "Drug alert",
    Decision.URGENT_ALERT: "Urgent alert (risk to life)",
}
ALERT_DECISIONS = (Decision.INFORMATION_NOTICE, Decision.DRUG_ALERT, Decision.URGENT_ALERT)


LONDON = ZoneInfo("Europe/London")


@cache
def bank_holidays(region: str) -> holidays.HolidayBase:
    """The UK bank holidays of one nation (ENG, WLS, SCT or NIR); years fill in as asked."""
    return holidays.country_holidays("GB", subdiv=region)


def is_working_day(day: date, region: str) -> bool:
    return day.weekday() < 5 and day not in bank_holidays(region)


def add_working_hours(start: datetime, hours: int, region: str = "ENG") -> datetime:
    """``start`` (aware) plus ``hours`` of working-day time; weekends and ``region``'s bank
    holidays, as London days, do not count. Differences are taken in UTC, so the 23- and 25-hour
    days when the clocks change count as long as they really are."""
    remaining = timedelta(hours=hours)
    t = start.astimezone(UTC)
    while True:
        today = t.astimezone(LONDON).date()
        midnight = datetime.combine(today + timedelta(days=1), time(), LONDON).astimezone(UTC)
        if is_working_day(today, region):
            if remaining <= midnight - t:
                return t + remaining
            remaining -= midnight - t
        t = midnight


def due_at(since: datetime, is_urgent: bool) -> datetime:
    if is_urgent:
        return since + URGENT_WITHIN
    return add_working_hours(since, WORKING_HOURS, current_app.config["BANK_HOLIDAY_REGION"])


@dataclass
class QueueItem:
    kind: str  # "signal" or "report"
    item: Signal | DrugReport
    since: datetime
    due: datetime

    @property
    def is_urgent(self) -> bool:
        return bool(self.item.is_urgent)

    def is_overdue(self, now: datetime) -> bool:
        return now > self.due


def queue(user: User) -> list[QueueItem]:
    """New signals and reports in the coordinator's areas, soonest due first."""
    if user.role != Role.COORDINATOR:
        return []
    areas = user.area_ids or {-1}
    items: list[QueueItem] = []
    for s in db.session.scalars(
        select(Signal).where(Signal.area_id.in_(areas), Signal.status == ItemStatus.NEW)
    ):
        items.append(QueueItem("signal", s, s.detected_at, due_at(s.detected_at, s.is_urgent)))
    for r in db.session.scalars(
        select(DrugReport).where(DrugReport.area_id.in_(areas), DrugReport.status == ItemStatus.NEW)
    ):
        items.append(QueueItem("report", r, r.received_at, due_at(r.received_at, r.is_urgent)))
    items.sort(key=lambda q: (q.due, q.since))
    return items


@dataclass
class Grading:
    """An assessment as entered; ``__repr__`` shows no free text."""

    reliability: Reliability
    plausibility: Rating
    local_relevance: Rating
    severity: Severity
    decision: Decision
    rationale: str
    notes: str = ""

    def __repr__(self) -> str:
        return f"<Grading {self.decision.value}>"


class AssessmentError(ValueError):
    def __init__(self, message: str, field: str = "decision") -> None:
        super().__init__(message)
        self.field = field


def _seal(a: Assessment, column: str, text: str) -> str | None:
    text = text.strip()
    if not text:
        return None
    return keys().encrypt(text, table="assessments", column=column, record=str(a.uuid))


def text_of(a: Assessment, column: str) -> str:
    stored = getattr(a, f"{column}_enc")
    if not stored:
        return ""
    return keys().decrypt(stored, table="assessments", column=column, record=str(a.uuid))


def assess(item: Signal | DrugReport, grading: Grading, *, by: User) -> Assessment:
    """Record the panel's grading and decision, and move the item. The caller commits."""
    if not item.can_assess(by):
        raise AssessmentError("Only coordinators of the item's area can assess it.")
    if item.status not in OPEN_FOR_ASSESSMENT:
        raise AssessmentError(
            f"This item is “{item.status.label}”: it can no longer be assessed. Start from a "
            "new signal or report."
        )
    rationale = (grading.rationale or "").strip()
    notes = (grading.notes or "").strip()
    if not rationale:
        raise AssessmentError(
            "Give the rationale for the decision: what the panel weighed and why.", "rationale"
        )
    if len(rationale) > TEXT_MAX:
        raise AssessmentError("Keep the rationale to 4,000 characters.", "rationale")
    if len(notes) > TEXT_MAX:
        raise AssessmentError("Keep the notes to 4,000 characters.", "notes")
    is_signal = isinstance(item, Signal)
    a = Assessment(
        uuid=uuid_mod.uuid4(),
        signal_id=item.id if is_signal else None,
        report_id=None if is_signal else item.id,
        assessor_id=by.id,
        reliability=grading.reliability,
        plausibility=grading.plausibility,
        local_relevance=grading.local_relevance,
        severity=grading.severity,
        decision=grading.decision,
        assessed_at=utcnow(),
    )
    a.rationale_enc = keys().encrypt(  # never empty: checked above
        rationale, table="assessments", column="rationale", record=str(a.uuid)
    )
    a.notes_enc = _seal(a, "notes", notes)
    before = item.status
    item.status = (
        ItemStatus.CLOSED if grading.decision is Decision.NO_FURTHER_ACTION else ItemStatus.ASSESSED
    )
    db.session.add(a)
    db.session.flush()
    record(
        "assessment.recorded",
        actor=by,
        object_type="assessments",
        object_uuid=a.uuid,
        details={
            "item": "signals" if is_signal else "drug_reports",
            "item_uuid": str(item.uuid),
            "decision": grading.decision.value,
            "severity": grading.severity.value,
            "reliability": grading.reliability.value,
            "from": before.value,
            "to": item.status.value,
        },
    )
    return a


def assessments_of(item: Signal | DrugReport) -> list[Assessment]:
    column = Assessment.signal_id if isinstance(item, Signal) else Assessment.report_id
    return list(
        db.session.scalars(
            select(Assessment).where(column == item.id).order_by(Assessment.assessed_at.desc())
        )
    )


def item_of(a: Assessment) -> Signal | DrugReport:
    if a.signal_id is not None:
        return db.session.get(Signal, a.signal_id)  # type: ignore[return-value]
    return db.session.get(DrugReport, a.report_id)  # type: ignore[return-value]


# -- the JSON API's shapes ------------------------------------------------------------------------


def assessment_json(a: Assessment, item: Signal | DrugReport) -> dict[str, Any]:
    return {
        "uuid": str(a.uuid),
        "item": {
            "type": "signal" if isinstance(item, Signal) else "report",
            "uuid": str(item.uuid),
            "status": item.status.value,
        },
        "reliability": a.reliability.value,
        "plausibility": a.plausibility.value,
        "local_relevance": a.local_relevance.value,
        "severity": a.severity.value,
        "decision": a.decision.value,
        "assessed_at": a.assessed_at.isoformat(),
    }
