"""Information requests: the coordinator asks the agencies that knew the person; an agency
contributor answers with a structured return (draft, then submitted); overdue requests are chased.

Free text (the coordinator's note and the return's texts) is encrypted at rest, bound to its
request. E-mails carry only a link and a due date, never who the person is.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import select

from dr_panel.audit.services import record
from dr_panel.auth.models import Role, User, user_areas
from dr_panel.cases.models import Case, CaseStatus, CaseType, YesNoUnknown
from dr_panel.concurrency import flush_or
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.mail import services as mail
from dr_panel.privacy import identity as ident
from dr_panel.reference.models import Agency
from dr_panel.reviews.models import RETURN_TEXTS, Engagement, InfoRequest, RequestStatus

DEFAULT_DAYS = 14
# Cases may be asked about while the panel is still gathering or about to meet.
OPEN_FOR_REQUESTS = {
    CaseStatus.INFORMATION_GATHERING,
    CaseStatus.READY_FOR_PANEL,
    CaseStatus.AWAITING_TOXICOLOGY,
    CaseStatus.AWAITING_INQUEST,
}


class RequestError(ValueError):
    def __init__(self, message: str, field: str = "agencies") -> None:
        super().__init__(message)
        self.field = field


class StaleReturn(RequestError):
    pass


STALE_RETURN = (
    "A colleague saved this return after you opened it, so your changes "
    "were not saved. Your entries are still below: compare, then save again."
)


def _seal(req: InfoRequest, stem: str, text: str | None) -> str | None:
    text = (text or "").strip()
    if not text:
        return None
    return ident.keys().encrypt(text, table="info_requests", column=stem, record=str(req.uuid))


def text_of(req: InfoRequest, stem: str) -> str | None:
    stored = getattr(req, f"{stem}_enc")
    if not stored:
        return None
    return ident.keys().decrypt(stored, table="info_requests", column=stem, record=str(req.uuid))


# -- asking -------------------------------------------------------------------------------------


class Sent(list[InfoRequest]):
    """The requests made (a list, one per agency), and the agencies nobody could be e-mailed at:
    no contributor of theirs works in the case's area, so the coordinator must tell them another
    way."""

    def __init__(self, made: Iterable[InfoRequest], unreachable: Iterable[Agency]) -> None:
        super().__init__(made)
        self.unreachable = list(unreachable)


def send_requests(
    case: Case, agencies: Iterable[Agency], *, due_on: date, note: str | None, by: User
) -> Sent:
    """One request per agency not already asked, each e-mailed to the agency's contributors in
    the case's area (in the same transaction: every door gets the e-mails). Raises RequestError
    saying what to fix."""
    agencies = list(agencies)
    if not agencies:
        raise RequestError("Tick at least one agency to ask.")
    if case.status not in OPEN_FOR_REQUESTS:
        raise RequestError(
            f"Requests are sent while a case is being gathered for panel; this "
            f"case is “{case.status.label}”. Triage it for review first."
        )
    if due_on < utcnow().date():
        raise RequestError("The due date is in the past: give a date from today on.", "due_on")
    if note and len(note) > 2000:
        raise RequestError("Keep the note to 2,000 characters.", "note")
    asked = set(
        db.session.scalars(select(InfoRequest.agency_id).where(InfoRequest.case_id == case.id))
    )
    again = [a.name for a in agencies if a.id in asked]
    if again:
        raise RequestError(f"Already asked: {', '.join(again)}. Untick them.")
    made = []
    for agency in agencies:
        req = InfoRequest(
            uuid=uuid.uuid4(),
            case=case,
            agency=agency,
            due_on=due_on,
            requested_by_id=by.id,
        )
        req.note_enc = _seal(req, "note", note)  # bound to the UUID, so set before the insert
        db.session.add(req)
        db.session.flush()
        made.append(req)
        record(
            "request.sent",
            actor=by,
            object_type="info_requests",
            object_uuid=req.uuid,
            details={"case": str(case.uuid), "agency": agency.code, "due_on": due_on.isoformat()},
        )
    db.session.flush()
    return Sent(made, [r.agency for r in made if not email_agency(r)])


def contributors_for(req: InfoRequest) -> list[User]:
    """Who at the agency can answer: its active contributors working in the case's area."""
    return [
        u
        for u in db.session.scalars(
            select(User).where(
                User.role == Role.AGENCY_CONTRIBUTOR,
                User.agency_id == req.agency_id,
                User.disabled_at.is_(None),
            )
        )
        if req.case.area_id in u.area_ids
    ]


def panel_of(area_id: int) -> list[User]:
    """The panel of an area: its active coordinators and panel members, by name. They are the
    members a meeting may invite and the people who may lead a safety plan."""
    return list(
        db.session.scalars(
            select(User)
            .join(user_areas, user_areas.c.user_id == User.id)
            .where(
                user_areas.c.area_id == area_id,
                User.role.in_([Role.COORDINATOR, Role.PANEL_MEMBER]),
                User.disabled_at.is_(None),
            )
            .order_by(User.display_name)
        )
    )


def email_agency(req: InfoRequest, *, chase: bool = False) -> int:
    """Queue the request (or its chase) to the agency's contributors. Returns how many."""
    kind = "case review" if req.case.case_type is CaseType.DEATH else "overdose review"
    due = f"{req.due_on.day} {req.due_on:%B %Y}"
    subject = (
        f"Reminder: information request overdue (due {due})"
        if chase
        else f"Information request from the {kind} panel (due {due})"
    )
    text = (
        f"{'This request is now overdue. ' if chase else ''}"
        f"The {req.case.area.name} drug-related death and overdose panel has asked "
        f"{req.agency.name} for what it knows about a person, to help the panel learn and "
        f"prevent further deaths.\n\nOpen the request (sign-in needed): "
        f"{mail.link('reviews.answer_request', uuid=req.uuid)}\n\nPlease answer by {due}. "
        "Do not reply to this e-mail with personal details: use the link.\n"
    )
    sent = 0
    stamp = utcnow().date().isoformat() if chase else "sent"
    for user in contributors_for(req):
        if (
            mail.queue(
                user.email,
                subject,
                text,
                kind="request.chase" if chase else "request",
                dedupe_key=f"request:{req.uuid}:{user.uuid}:{stamp}",
            )
            is not None
        ):
            sent += 1
    return sent


def chase_overdue(today: date | None = None) -> int:
    """Chase every overdue open request, at most once a day each. Returns how many were chased."""
    today = today or utcnow().date()
    chased = 0
    for req in db.session.scalars(
        select(InfoRequest).where(
            InfoRequest.status.in_([RequestStatus.SENT, RequestStatus.DRAFT]),
            InfoRequest.due_on < today,
        )
    ):
        if req.last_chased_at is not None and req.last_chased_at.date() >= today:
            continue
        if email_agency(req, chase=True):
            req.last_chased_at = utcnow()
            req.chase_count += 1
            record(
                "request.chased",
                actor_label="system",
                object_type="info_requests",
                object_uuid=req.uuid,
                details={"agency": req.agency.code},
            )
            chased += 1
    db.session.flush()
    return chased


# -- answering ----------------------------------------------------------------------------------


@dataclass
class Return:
    known_to_agency: YesNoUnknown
    first_contact_on: date | None
    last_contact_on: date | None
    engagement: Engagement
    texts: dict[str, str | None]

    def __repr__(self) -> str:
        return "<Return>"


def save_return(
    req: InfoRequest, answer: Return, *, submit: bool, by: User, expected_version: int | None
) -> None:
    if not req.can_answer(by):
        raise RequestError("Only your agency's contributors can answer this request.")
    if req.status is RequestStatus.RETURNED:
        raise RequestError(
            "This return was already submitted; ask the coordinator if something must change."
        )
    if expected_version is not None and expected_version != req.version:
        raise StaleReturn(STALE_RETURN, "known_to_agency")
    if (
        answer.first_contact_on
        and answer.last_contact_on
        and answer.first_contact_on > answer.last_contact_on
    ):
        raise RequestError(
            "The first contact is after the last contact: check both dates.", "first_contact_on"
        )
    today = utcnow().date()
    for name in ("first_contact_on", "last_contact_on"):
        value = getattr(answer, name)
        if value and value > today:
            raise RequestError("That date is in the future: check it.", name)
    if submit and answer.known_to_agency is YesNoUnknown.UNKNOWN:
        raise RequestError(
            "Say whether the person was known to your agency before submitting.", "known_to_agency"
        )
    req.known_to_agency = answer.known_to_agency
    req.first_contact_on, req.last_contact_on = answer.first_contact_on, answer.last_contact_on
    req.engagement = answer.engagement
    for stem, _ in RETURN_TEXTS:
        text = answer.texts.get(stem)
        if text and len(text) > 20000:
            raise RequestError("Keep each answer to 20,000 characters.", stem)
        setattr(req, f"{stem}_enc", _seal(req, stem, text))
    req.answered_by_id = by.id
    req.saved_at = utcnow()
    if submit:
        req.status, req.returned_at = RequestStatus.RETURNED, utcnow()
    else:
        req.status = RequestStatus.DRAFT
    flush_or(lambda: StaleReturn(STALE_RETURN, "known_to_agency"))
    record(
        "request.returned" if submit else "request.draft_saved",
        actor=by,
        object_type="info_requests",
        object_uuid=req.uuid,
    )


def identifiers_for_agency(req: InfoRequest, *, by: User) -> dict[str, str]:
    """The minimum an agency needs to find the person in its own records: name, date of birth,
    NHS number. Never the address. Audited every time it is shown."""
    who = ident.unseal(req.case.person)
    record(
        "request.reveal",
        actor=by,
        object_type="info_requests",
        object_uuid=req.uuid,
        reason="answering an information request",
        details={"case": str(req.case.uuid)},
    )
    return {
        "Full name": who.full_name,
        "Date of birth": f"{who.dob.day} {who.dob:%B %Y}" if who.dob else "Not known",
        "NHS number": ident.format_nhs(who.nhs_number) if who.nhs_number else "Not known",
    }


def agency_queue(user: User) -> list[InfoRequest]:
    """The requests an agency contributor may see: their agency's, in their areas, not withdrawn;
    open ones first, soonest due first."""
    if user.role != Role.AGENCY_CONTRIBUTOR or user.agency_id is None:
        return []
    rows = db.session.scalars(
        select(InfoRequest)
        .join(InfoRequest.case)
        .where(
            InfoRequest.agency_id == user.agency_id,
            Case.area_id.in_(user.area_ids or {-1}),
            InfoRequest.status != RequestStatus.WITHDRAWN,
        )
    ).all()
    return sorted(rows, key=lambda r: (not r.is_open, r.due_on))


def default_due() -> date:
    return utcnow().date() + timedelta(days=DEFAULT_DAYS)
