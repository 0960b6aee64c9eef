"""Panel meetings: scheduling, the agenda (cases ready for panel), members and attendance, the
confidentiality statement each member accepts before seeing the meeting's cases, minutes per case
(encrypted), and the meeting pack (pseudonymised; every view and download audited as an export).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select

from dr_panel.audit.services import record
from dr_panel.auth.models import Role, User
from dr_panel.cases.models import Case, CaseStatus
from dr_panel.concurrency import flush_or
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.privacy.identity import keys
from dr_panel.reference.models import Area
from dr_panel.reviews.models import (
    RETURN_TEXTS,
    InfoRequest,
    Meeting,
    MeetingItem,
    MeetingMember,
    MeetingStatus,
    RequestStatus,
)
from dr_panel.reviews.services import panel_of, text_of


class MeetingError(ValueError):
    def __init__(self, message: str, field: str = "held_on") -> None:
        super().__init__(message)
        self.field = field


def schedule(area: Area, held_on: date, location: str, *, by: User) -> Meeting:
    if area.id not in by.area_ids:
        raise MeetingError("Choose one of your areas.", "area")
    if held_on < utcnow().date():
        raise MeetingError("The meeting date is in the past: choose a date from today on.")
    location = location.strip()
    if not location or len(location) > 120:
        raise MeetingError(
            "Say where it is held (a room, or 'Teams'), in at most 120 characters.", "location"
        )
    meeting = Meeting(
        area=area, held_on=held_on, location=location, created_by_id=by.id
    )
    db.session.add(meeting)
    db.session.flush()
    record(
        "meeting.scheduled",
        actor=by,
        object_type="meetings",
        object_uuid=meeting.uuid,
        details={"area": area.ons_code, "held_on": held_on.isoformat()},
    )
    return meeting


def agenda_candidates(meeting: Meeting) -> list[Case]:
    """Cases of the meeting's area that are ready for panel and not yet on its agenda."""
    on = {i.case_id for i in meeting.items}
    return [
        c
        for c in db.session.scalars(
            select(Case)
            .where(Case.area_id == meeting.area_id, Case.status == CaseStatus.READY_FOR_PANEL)
            .order_by(Case.event_date)
        )
        if c.id not in on
    ]


def add_to_agenda(meeting: Meeting, cases: Iterable[Case], *, by: User) -> int:
    allowed = {c.id for c in agenda_candidates(meeting)}
    added = 0
    position = max((i.position for i in meeting.items), default=0)
    for case in cases:
        if case.id not in allowed:
            raise MeetingError(
                f"{case.reference} is not ready for panel in {meeting.area.name}.", "cases"
            )
        position += 1
        meeting.items.append(MeetingItem(case=case, position=position))
        added += 1
    db.session.flush()
    record(
        "meeting.agenda_changed",
        actor=by,
        object_type="meetings",
        object_uuid=meeting.uuid,
        details={"added": added},
    )
    return added


def eligible_members(meeting: Meeting) -> list[User]:
    """Panel members and coordinators who work in the meeting's area."""
    return panel_of(meeting.area_id)


def invite(meeting: Meeting, users: Iterable[User], *, by: User) -> int:
    allowed = {u.id for u in eligible_members(meeting)}
    added = 0
    for user in users:
        if user.id not in allowed:
            raise MeetingError(
                f"{user.display_name} does not work in {meeting.area.name}.", "members"
            )
        if meeting.member(user) is None:
            meeting.members.append(MeetingMember(user=user, agency_id=user.agency_id))
            added += 1
    db.session.flush()
    record(
        "meeting.members_changed",
        actor=by,
        object_type="meetings",
        object_uuid=meeting.uuid,
        details={"added": added},
    )
    return added


def accept_statement(meeting: Meeting, user: User) -> None:
    member = meeting.member(user)
    if member is None:
        raise MeetingError("You are not a member of this meeting.", "accept")
    if member.accepted_at is None:
        member.accepted_at = utcnow()
        record(
            "meeting.confidentiality_accepted",
            actor=user,
            object_type="meetings",
            object_uuid=meeting.uuid,
        )


def record_attendance(meeting: Meeting, present_user_ids: set[int], *, by: User) -> None:
    for member in meeting.members:
        member.present = member.user_id in present_user_ids
    if meeting.status is MeetingStatus.SCHEDULED and meeting.held_on <= utcnow().date():
        meeting.status = MeetingStatus.HELD
    record(
        "meeting.attendance",
        actor=by,
        object_type="meetings",
        object_uuid=meeting.uuid,
        details={
            "present": len(present_user_ids & {m.user_id for m in meeting.members}),
            "members": len(meeting.members),
        },
    )


class StaleMinutes(MeetingError):
    """Someone else saved this case's minutes since the form was opened."""

    def __init__(self) -> None:
        super().__init__(
            "Someone else saved the minutes for this case first, so yours were not saved. "
            "Their text is shown below yours: combine them and save again.",
            "minutes",
        )


def save_minutes(
    item: MeetingItem, text: str, *, by: User, expected_version: int | None = None
) -> None:
    """Save one case's minutes. Refuses a form opened before someone else's save (the version
    it was read at differs), like every other edited record: minutes were silently overwritten.
    A save racing past this check is refused at flush by ``version_id_col``, the same way."""
    if expected_version is not None and expected_version != item.version:
        raise StaleMinutes()
    text = text.strip()
    if len(text) > 20000:
        raise MeetingError("Keep the minutes for one case to 20,000 characters.", "minutes")
    item.minutes_enc = (
        keys().encrypt(text, table="meeting_items", column="minutes", record=str(item.id))
        if text
        else None
    )
    flush_or(StaleMinutes)
    record(
        "meeting.minutes_saved",
        actor=by,
        object_type="cases",
        object_uuid=item.case.uuid,
        details={"meeting": str(item.meeting.uuid)},
    )


def minutes_of(item: MeetingItem) -> str | None:
    if not item.minutes_enc:
        return None
    return keys().decrypt(
        item.minutes_enc, table="meeting_items", column="minutes", record=str(item.id)
    )


@dataclass
class PackCase:
    item: MeetingItem
    events: list[Case]
    returns: list[tuple[InfoRequest, dict[str, str | None]]]
    waiting: list[InfoRequest]
    minutes: str | None


def pack(meeting: Meeting, *, by: User, download: bool) -> list[PackCase]:
    """The meeting pack: each agenda case pseudonymised, with the agencies' returns and the
    person's linked events. No identifiers. Audited as an export."""
    out = []
    for item in meeting.items:
        case = item.case
        requests = list(
            db.session.scalars(
                select(InfoRequest)
                .where(InfoRequest.case_id == case.id)
                .order_by(InfoRequest.requested_at)
            )
        )
        returns = [
            (r, {stem: text_of(r, stem) for stem, _ in RETURN_TEXTS})
            for r in requests
            if r.status is RequestStatus.RETURNED
        ]
        waiting = [r for r in requests if r.is_open]
        events = list(
            db.session.scalars(
                select(Case)
                .where(Case.person_id == case.person_id)
                .order_by(Case.event_date, Case.id)
            )
        )
        out.append(PackCase(item, events, returns, waiting, minutes_of(item)))
    record(
        "meeting.pack_exported" if download else "meeting.pack_viewed",
        actor=by,
        object_type="meetings",
        object_uuid=meeting.uuid,
        details={"cases": len(out)},
    )
    return out


def meetings_for(user: User) -> list[Meeting]:
    if user.role is Role.COORDINATOR:
        stmt = select(Meeting).where(Meeting.area_id.in_(user.area_ids or {-1}))
    elif user.role is Role.PANEL_MEMBER:
        stmt = select(Meeting).join(MeetingMember).where(MeetingMember.user_id == user.id)
    else:
        return []
    return list(db.session.scalars(stmt.order_by(Meeting.held_on.desc())))
