"""The subject-access export (UK GDPR Article 15): everything the coordinator's areas hold about
one living person, as a printable page and a JSON file, with a reason, audited.

Choices:

- **Who and what.** A coordinator of the case's area asks from a case page. The export covers
  every case of that person that the coordinator's areas hold. Other areas are separate panels
  (separate controllers under their sharing agreements): the export always says that other
  areas may hold more, whether or not they do, so it never tells whether they do. Other areas'
  cases are not read at all, so nothing about them (not even a death) shapes the answer.
- **The living only.** A right of access is the data subject's; the dead have no UK GDPR
  rights, and their records go through the Access to Health Records Act 1990 (a personal
  representative) or the coroner. A person with a death among the coordinator's cases is
  refused with that explanation (409), and the refusal is audited.
- **Contents.** Identifiers (or, after disposal, when they were erased), each case's facts,
  its timeline with reasons, agency requests and returns, meeting minutes, findings, learning
  points, actions, the safety plan, and who accessed these records (from the audit log: when,
  who, what, outcome; staff act in a professional capacity, which the ICO's guidance treats as
  ordinarily disclosable). Audit entries' own details and reasons are not copied.
- **Audit.** Each export (page or file) is one ``subject_access.export`` entry with the reason
  through the audit service's reason handling, the format, and the number of cases, never an
  identifier.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from dr_panel.audit.models import AuditEntry, Outcome
from dr_panel.audit.services import record
from dr_panel.cases import workflow
from dr_panel.cases.models import Case, CaseType, Person
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.privacy import identity as ident

if TYPE_CHECKING:
    from dr_panel.auth.models import User

OTHER_AREAS_NOTE = (
    "This covers the records held by the areas you coordinate. Other areas' panels are separate "
    "and may hold more: the person can ask each of them."
)
DECEASED_MESSAGE = (
    "A subject access request is for living people: this person's record includes a death. "
    "Requests about someone who has died go through the Access to Health Records Act 1990 (by "
    "their personal representative) or the coroner; ask your information governance lead."
)


class SubjectAccessRefused(ValueError):
    """The export is refused; the message says why, in words for the coordinator."""


@dataclass(frozen=True)
class Scope:
    person: Person
    cases: list[Case]


def scope(case: Case, by: User) -> Scope:
    """The person's cases that ``by``'s areas hold (the caller has checked ``case.can_edit``).
    Refuses a deceased person, judged only from those cases."""
    areas = set(by.area_ids)
    cases = list(
        db.session.scalars(
            select(Case)
            .where(Case.person_id == case.person_id, Case.area_id.in_(areas or {-1}))
            .order_by(Case.event_date, Case.id)
        )
    )
    if any(c.case_type is CaseType.DEATH for c in cases):
        raise SubjectAccessRefused(DECEASED_MESSAGE)
    return Scope(case.person, cases)


def refuse(case: Case, *, by: User, why: str) -> None:
    record(
        "subject_access.export",
        outcome=Outcome.DENIED,
        actor=by,
        object_type="cases",
        object_uuid=case.uuid,
        details={"why": why},
    )


def export(case: Case, *, reason: str, by: User, fmt: str) -> dict[str, Any]:
    """Build the export and audit it in the caller's transaction (the caller commits). The
    reason is checked for identifiers first, as a reveal reason is: ``ReasonRefused`` after a
    refusal entry."""
    from dr_panel.cases.reasons import reason_for_audit

    held = scope(case, by)
    stored = reason_for_audit(
        reason, by=by, action="subject_access.export", object_type="cases",
        object_uuid=case.uuid, details={"format": fmt},
    )
    content = build(held, generated_by=getattr(by, "email", ""))
    record(
        "subject_access.export",
        actor=by,
        object_type="cases",
        object_uuid=case.uuid,
        reason=stored,
        details={"format": fmt, "cases": len(held.cases), "person": str(held.person.uuid)},
    )
    return content


# -- building -----------------------------------------------------------------------------------


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _label(value: Any) -> str | None:
    return getattr(value, "label", None) if value is not None else None


def build(held: Scope, *, generated_by: str = "") -> dict[str, Any]:
    """The export as plain JSON-able data; the page renders the same structure."""
    person = held.person
    out: dict[str, Any] = {
        "generated_at": _iso(utcnow()),
        "generated_by": generated_by,
        "note": OTHER_AREAS_NOTE,
        "person": _person(person),
        "cases": [_case(c) for c in held.cases],
        "safety_plan": _plan(person, {c.id for c in held.cases}),
    }
    out["access_log"] = _access_log(held)
    return out


def _person(person: Person) -> dict[str, Any]:
    if person.disposed_at is not None:
        return {
            "identifiers_erased_at": _iso(person.disposed_at),
            "sex": _label(person.sex),
            "note": "Identifiers were erased under the retention schedule.",
        }
    who = ident.unseal(person)
    return {
        "full_name": who.full_name,
        "date_of_birth": _iso(who.dob),
        "nhs_number": ident.format_nhs(who.nhs_number) if who.nhs_number else None,
        "address": who.address,
        "postcode": who.postcode,
        "sex": _label(person.sex),
    }


def _case(case: Case) -> dict[str, Any]:
    from dr_panel.reviews.actions import Action, text_of
    from dr_panel.reviews.findings import findings_of
    from dr_panel.reviews.meetings import minutes_of
    from dr_panel.reviews.models import RETURN_TEXTS, InfoRequest, MeetingItem
    from dr_panel.reviews.services import text_of as request_text

    requests = db.session.scalars(
        select(InfoRequest).where(InfoRequest.case_id == case.id).order_by(InfoRequest.id)
    ).all()
    items = db.session.scalars(
        select(MeetingItem).where(MeetingItem.case_id == case.id).order_by(MeetingItem.id)
    ).all()
    actions = db.session.scalars(
        select(Action).where(Action.case_id == case.id).order_by(Action.id)
    ).all()
    findings = findings_of(case)
    return {
        "reference": case.reference,
        "type": case.case_type.label,
        "status": case.status.label,
        "area": case.area.name,
        "event_date": _iso(case.event_date),
        "notified_on": _iso(case.notified_on),
        "notified_by": case.notifying_agency.name if case.notifying_agency else None,
        "setting": case.setting.label,
        "substances": [s.name for s in case.substances],
        "route": case.route.label,
        "naloxone": case.naloxone_given.label,
        "outcome": _label(case.nfo_outcome),
        "treatment": case.treatment_status.label,
        "housing": case.housing_status.label,
        "recent_prison_release": case.recent_prison_release.label,
        "children_in_household": case.children_in_household.label,
        "previous_overdoses": case.previous_overdoses,
        "age_band": case.age_band,
        "postcode_district": case.postcode_district,
        "timeline": [
            {
                "at": _iso(e.occurred_at),
                "step": e.transition,
                "from": e.from_status.label,
                "to": e.to_status.label,
                "reason": workflow.reason_of(e),
            }
            for e in case.events
        ],
        "requests": [
            {
                "agency": r.agency.name,
                "status": r.status.label,
                "requested_at": _iso(r.requested_at),
                "due_on": _iso(r.due_on),
                "note": request_text(r, "note"),
                "known_to_agency": r.known_to_agency.label,
                "first_contact_on": _iso(r.first_contact_on),
                "last_contact_on": _iso(r.last_contact_on),
                "engagement": r.engagement.label,
                "returned_at": _iso(r.returned_at),
                **{stem: request_text(r, stem) for stem, _ in RETURN_TEXTS},
            }
            for r in requests
        ],
        "minutes": [
            {"meeting": _iso(i.meeting.held_on), "minutes": minutes_of(i)} for i in items
        ],
        "findings": {
            "preventability": _label(findings.review.preventability) if findings.review else None,
            "missed_opportunities": findings.missed_opportunities,
            "factors": [
                {
                    "domain": f.factor.domain.label,
                    "score": f.factor.score.label,
                    "modifiable": f.factor.is_modifiable,
                    "description": f.description,
                }
                for shown in findings.factors.values()
                for f in shown
            ],
            "learning_points": [
                {"text": p.text, "themes": [t.name for t in p.point.themes]}
                for p in findings.learning_points
            ],
        },
        "actions": [
            {
                "description": text_of(a, "description"),
                "owner": a.owner_agency.name,
                "due_on": _iso(a.due_on),
                "status": a.status.label,
                "evidence": text_of(a, "evidence"),
                "not_accepted_reason": text_of(a, "not_accepted_reason"),
            }
            for a in actions
        ],
    }


def _plan(person: Person, case_ids: set[int]) -> dict[str, Any] | None:
    from dr_panel.reviews.actions import SafetyPlan, text_of

    plan = db.session.scalar(select(SafetyPlan).where(SafetyPlan.person_id == person.id))
    if plan is None or plan.case_id not in case_ids:
        return None
    return {
        "status": plan.status.label,
        "risks": text_of(plan, "risks"),
        "protective_factors": text_of(plan, "protective"),
        "interventions": plan.intervention_labels,
        "lead_agency": plan.lead_agency.name if plan.lead_agency else None,
        "review_on": _iso(plan.review_on),
    }


def _object_uuids(held: Scope) -> set[str]:
    from dr_panel.reviews.actions import Action, SafetyPlan
    from dr_panel.reviews.findings import CaseReview, Factor, LearningPoint
    from dr_panel.reviews.models import InfoRequest

    ids = [c.id for c in held.cases]
    uuids = {str(c.uuid) for c in held.cases}
    if not ids:
        return uuids
    for model in (InfoRequest, Action, CaseReview, Factor, LearningPoint):
        found = db.session.scalars(select(model.uuid).where(model.case_id.in_(ids)))
        uuids |= {str(u) for u in found}
    uuids |= {
        str(u)
        for u in db.session.scalars(
            select(SafetyPlan.uuid).where(
                SafetyPlan.person_id == held.person.id, SafetyPlan.case_id.in_(ids)
            )
        )
    }
    return uuids


def _access_log(held: Scope) -> list[dict[str, Any]]:
    """Who did what with these records: only entries about the cases in scope and their
    parts, never the person-level entries other areas' work may have made."""
    uuids = sorted(_object_uuids(held))
    rows: list[AuditEntry] = []
    for start in range(0, len(uuids), 500):
        rows += db.session.scalars(
            select(AuditEntry).where(AuditEntry.object_uuid.in_(uuids[start : start + 500]))
        ).all()
    rows.sort(key=lambda e: (e.occurred_at, e.seq))
    return [
        {
            "at": _iso(e.occurred_at),
            "who": e.actor_label or "",
            "action": e.action,
            "outcome": e.outcome.value if hasattr(e.outcome, "value") else str(e.outcome),
            "record": e.object_type,
        }
        for e in rows
    ]

