"""Information requests to agencies, and their structured returns. Free text in a return is
encrypted at rest like the identifiers (dr_panel.crypto), bound to its request."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dr_panel.cases.models import Case, Labelled, YesNoUnknown, str_enum
from dr_panel.dbtypes import PublicIdMixin, UTCDateTime, utcnow
from dr_panel.extensions import db
from dr_panel.reference.models import Agency


class RequestStatus(Labelled):
    SENT = "sent"  # waiting for the agency
    DRAFT = "draft"  # the agency has saved a draft return
    RETURNED = "returned"  # submitted
    WITHDRAWN = "withdrawn"


class Engagement(Labelled):
    ENGAGED = "engaged"
    PARTLY = "partly"
    NOT_ENGAGED = "not_engaged"
    UNKNOWN = "unknown"


# Free-text parts of a return: (attribute stem, label for the agency answering). Each is stored
# as "<stem>_enc". PANEL_LABELS are the same parts as the panel reads them.
RETURN_TEXTS = [
    ("risks", "Risks known to your agency"),
    ("services", "Services involved"),
    ("safeguarding", "Safeguarding concerns"),
    ("chronology", "Chronology of contact"),
]
PANEL_LABELS = {
    "risks": "Risks known to the agency",
    "services": "Services involved",
    "safeguarding": "Safeguarding concerns",
    "chronology": "Chronology of contact",
}


class InfoRequest(PublicIdMixin, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "info_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), nullable=False, index=True
    )
    agency_id: Mapped[int] = mapped_column(ForeignKey("agencies.id"), nullable=False, index=True)
    status: Mapped[RequestStatus] = mapped_column(
        str_enum(RequestStatus, 12), nullable=False, default=RequestStatus.SENT
    )
    due_on: Mapped[date] = mapped_column(Date, nullable=False)
    note_enc: Mapped[str | None] = mapped_column(Text)  # the coordinator's note to the agency
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    last_chased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    chase_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    # The return.
    known_to_agency: Mapped[YesNoUnknown] = mapped_column(
        str_enum(YesNoUnknown, 10), default=YesNoUnknown.UNKNOWN, nullable=False
    )
    first_contact_on: Mapped[date | None] = mapped_column(Date)
    last_contact_on: Mapped[date | None] = mapped_column(Date)
    engagement: Mapped[Engagement] = mapped_column(
        str_enum(Engagement, 12), default=Engagement.UNKNOWN, nullable=False
    )
    risks_enc: Mapped[str | None] = mapped_column(Text)
    services_enc: Mapped[str | None] = mapped_column(Text)
    safeguarding_enc: Mapped[str | None] = mapped_column(Text)
    chronology_enc: Mapped[str | None] = mapped_column(Text)
    answered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    saved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    returned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1, nullable=False)

    case: Mapped[Case] = relationship(lazy="joined")
    agency: Mapped[Agency] = relationship(lazy="joined")

    __table_args__ = (UniqueConstraint("case_id", "agency_id"),)
    __mapper_args__ = {"version_id_col": version}

    def __repr__(self) -> str:
        return f"<InfoRequest {self.uuid} {self.status.value}>"

    @property
    def is_open(self) -> bool:
        return self.status in (RequestStatus.SENT, RequestStatus.DRAFT)

    def is_overdue(self, today: date) -> bool:
        return self.is_open and self.due_on < today

    # Per-record rules: the case's readers see requests; an agency contributor sees only the
    # requests addressed to their own agency, in their own areas, and answers them.
    def can_view(self, user: Any) -> bool:
        return self.case.can_view(user) or self.can_answer(user)

    def can_answer(self, user: Any) -> bool:
        return bool(
            user.role == "agency_contributor"
            and user.agency_id == self.agency_id
            and self.case.area_id in user.area_ids
            and self.status is not RequestStatus.WITHDRAWN
        )

    def can_edit(self, user: Any) -> bool:
        return self.case.can_edit(user)


class MeetingStatus(Labelled):
    SCHEDULED = "scheduled"
    HELD = "held"
    CANCELLED = "cancelled"


CONFIDENTIALITY_STATEMENT = (
    "I will keep confidential everything discussed and shown at this meeting. I will use it only "
    "for the panel's purpose of learning and preventing drug-related deaths, will not copy or "
    "share the meeting pack, and will not disclose anything that could identify a person, except "
    "where the law or a safeguarding duty requires it."
)


class Meeting(PublicIdMixin, db.Model):  # type: ignore[name-defined,misc]
    """A panel meeting for one area: an agenda of cases ready for panel, its members (each of
    whom accepts the confidentiality statement before seeing its cases), attendance, minutes."""

    __tablename__ = "meetings"

    id: Mapped[int] = mapped_column(primary_key=True)
    area_id: Mapped[int] = mapped_column(ForeignKey("areas.id"), nullable=False, index=True)
    held_on: Mapped[date] = mapped_column(Date, nullable=False)
    location: Mapped[str] = mapped_column(String(120), nullable=False)
    status: Mapped[MeetingStatus] = mapped_column(
        str_enum(MeetingStatus, 12), nullable=False, default=MeetingStatus.SCHEDULED
    )
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    area: Mapped[Any] = relationship("Area", lazy="joined")
    items: Mapped[list[MeetingItem]] = relationship(
        back_populates="meeting", order_by="MeetingItem.position", cascade="all, delete-orphan"
    )
    members: Mapped[list[MeetingMember]] = relationship(
        back_populates="meeting", cascade="all, delete-orphan"
    )

    def __repr__(self) -> str:
        return f"<Meeting {self.uuid}>"

    def member(self, user: Any) -> MeetingMember | None:
        return next((m for m in self.members if m.user_id == user.id), None)

    def can_view(self, user: Any) -> bool:
        if user.role == "coordinator":
            return self.area_id in user.area_ids
        return user.role == "panel_member" and self.member(user) is not None

    def can_edit(self, user: Any) -> bool:
        return user.role == "coordinator" and self.area_id in user.area_ids

    def has_accepted(self, user: Any) -> bool:
        member = self.member(user)
        return member is not None and member.accepted_at is not None


class MeetingItem(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "meeting_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(
        ForeignKey("meetings.id", ondelete="CASCADE"), nullable=False
    )
    case_id: Mapped[int] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), nullable=False, index=True
    )
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    minutes_enc: Mapped[str | None] = mapped_column(Text)
    # Minutes are edited by several people at a meeting: a save made from an older version is
    # refused (StaleDataError -> "someone else saved this first") instead of overwriting.
    version: Mapped[int] = mapped_column(Integer, default=1, nullable=False)

    meeting: Mapped[Meeting] = relationship(back_populates="items")
    case: Mapped[Case] = relationship(lazy="joined")

    __table_args__ = (UniqueConstraint("meeting_id", "case_id"),)
    __mapper_args__ = {"version_id_col": version}

    def __repr__(self) -> str:
        return f"<MeetingItem {self.id}>"


class MeetingMember(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "meeting_members"

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(
        ForeignKey("meetings.id", ondelete="CASCADE"), nullable=False
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"))
    present: Mapped[bool | None] = mapped_column()
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    meeting: Mapped[Meeting] = relationship(back_populates="members")
    user: Mapped[Any] = relationship("User", lazy="joined")
    agency: Mapped[Agency | None] = relationship(lazy="joined")

    __table_args__ = (UniqueConstraint("meeting_id", "user_id"),)

    def __repr__(self) -> str:
        return f"<MeetingMember {self.id}>"
