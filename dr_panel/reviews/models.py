"""Every table of the panel's review work, in one place: information requests to agencies and
their returns, panel meetings, findings and learning, actions and safety plans. Free text is
encrypted at rest (dr_panel.crypto), bound to its row; the services that seal and open it are
``services`` (requests), ``meetings``, ``findings`` and ``actions``.

Per-record rules are ``can_*(user)`` methods here, reached through ``get_or_404(..., need=...)``.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, Date, ForeignKey, Integer, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dr_panel.auth.models import Role, User
from dr_panel.cases.models import Case, CaseStatus, Labelled, Person, YesNoUnknown, str_enum
from dr_panel.dbtypes import PublicIdMixin, UTCDateTime, utcnow
from dr_panel.extensions import db
from dr_panel.reference.models import Agency, Area

# -- information requests and returns ------------------------------------------------------------

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
    def can_view(self, user: User) -> bool:
        return self.case.can_view(user) or self.can_answer(user)

    def can_answer(self, user: User) -> bool:
        return bool(
            user.role is Role.AGENCY_CONTRIBUTOR
            and user.agency_id == self.agency_id
            and self.case.area_id in user.area_ids
            and self.status is not RequestStatus.WITHDRAWN
        )

    def can_edit(self, user: User) -> bool:
        return self.case.can_edit(user)


# -- panel meetings ------------------------------------------------------------------------------


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

    area: Mapped[Area] = relationship(lazy="joined")
    items: Mapped[list[MeetingItem]] = relationship(
        back_populates="meeting", order_by="MeetingItem.position", cascade="all, delete-orphan"
    )
    members: Mapped[list[MeetingMember]] = relationship(
        back_populates="meeting", cascade="all, delete-orphan"
    )

    def __repr__(self) -> str:
        return f"<Meeting {self.uuid}>"

    def member(self, user: User) -> MeetingMember | None:
        return next((m for m in self.members if m.user_id == user.id), None)

    def can_view(self, user: User) -> bool:
        if user.role is Role.COORDINATOR:
            return self.area_id in user.area_ids
        return user.role is Role.PANEL_MEMBER and self.member(user) is not None

    def can_edit(self, user: User) -> bool:
        return user.role is Role.COORDINATOR and self.area_id in user.area_ids

    def has_accepted(self, user: User) -> bool:
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
    user: Mapped[User] = relationship(lazy="joined")
    agency: Mapped[Agency | None] = relationship(lazy="joined")

    __table_args__ = (UniqueConstraint("meeting_id", "user_id"),)

    def __repr__(self) -> str:
        return f"<MeetingMember {self.id}>"


# -- findings and learning -----------------------------------------------------------------------


class _Worded(Labelled):
    """An enum whose labels are given here (not in the cases' label table)."""

    @property
    def label(self) -> str:
        return WORDS.get(self, self.value.replace("_", " ").capitalize())


class Domain(_Worded):
    PERSON = "person"
    FAMILY_SOCIAL = "family_social"
    SERVICE_PROVISION = "service_provision"
    WIDER_ENVIRONMENT = "wider_environment"


class Score(_Worded):
    """The child-death analysis form's scale for a factor."""

    NOT_AVAILABLE = "information_not_available"
    NOT_PRESENT = "not_present"
    UNLIKELY_CONTRIBUTED = "present_unlikely_contributed"
    MAY_HAVE_CONTRIBUTED = "may_have_contributed"
    FULLY_EXPLAINS = "fully_explains"


class Preventability(_Worded):
    NOT_KNOWN = "not_known"
    PREVENTABLE = "preventable"
    POTENTIALLY_PREVENTABLE = "potentially_preventable"
    NOT_PREVENTABLE = "not_preventable"


WORDS: dict[_Worded, str] = {
    Domain.PERSON: "The person",
    Domain.FAMILY_SOCIAL: "Family and social environment",
    Domain.SERVICE_PROVISION: "Service provision",
    Domain.WIDER_ENVIRONMENT: "Wider environment",
    Score.NOT_AVAILABLE: "Information not available",
    Score.NOT_PRESENT: "Not present",
    Score.UNLIKELY_CONTRIBUTED: "Present but unlikely to have contributed",
    Score.MAY_HAVE_CONTRIBUTED: "May have contributed",
    Score.FULLY_EXPLAINS: "Fully explains",
    Preventability.NOT_KNOWN: "Not yet known",
    Preventability.PREVENTABLE: "Preventable",
    Preventability.POTENTIALLY_PREVENTABLE: "Potentially preventable",
    Preventability.NOT_PREVENTABLE: "Not preventable",
}

# Findings are recorded from when the case is ready for panel.
FINDINGS_STATUSES = frozenset(
    {
        CaseStatus.READY_FOR_PANEL,
        CaseStatus.REVIEWED,
        CaseStatus.ACTIONS_IN_PROGRESS,
        CaseStatus.CLOSED,
    }
)


def can_view_findings(case: Case, user: User) -> bool:
    return bool(case.can_view(user))


def can_edit_findings(case: Case, user: User) -> bool:
    """Coordinators and panel members of the case's area record findings (DESIGN.md)."""
    return user.role in (Role.COORDINATOR, Role.PANEL_MEMBER) and case.area_id in user.area_ids


def open_for_findings(case: Case) -> bool:
    return case.status in FINDINGS_STATUSES


class Theme(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "themes"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(120), nullable=False)
    is_active: Mapped[bool] = mapped_column(default=True, nullable=False)

    def __repr__(self) -> str:
        return f"<Theme {self.code}>"


learning_point_themes = Table(
    "learning_point_themes",
    db.metadata,
    Column(
        "learning_point_id",
        Integer,
        ForeignKey("learning_points.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("theme_id", Integer, ForeignKey("themes.id"), primary_key=True, index=True),
)


class CaseReview(PublicIdMixin, db.Model):  # type: ignore[name-defined,misc]
    """The panel's judgement on one case; its version guards against overwriting a colleague."""

    __tablename__ = "case_reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    missed_opportunities_enc: Mapped[str | None] = mapped_column(Text)
    preventability: Mapped[Preventability] = mapped_column(
        str_enum(Preventability, 30), nullable=False, default=Preventability.NOT_KNOWN
    )
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    case: Mapped[Case] = relationship(lazy="joined")

    __mapper_args__ = {"version_id_col": version}

    def __repr__(self) -> str:
        return f"<CaseReview {self.uuid} v{self.version}>"

    def can_view(self, user: User) -> bool:
        return can_view_findings(self.case, user)

    def can_edit(self, user: User) -> bool:
        return can_edit_findings(self.case, user)


class Factor(PublicIdMixin, db.Model):  # type: ignore[name-defined,misc]
    """A contributory or modifiable factor in one domain, scored like the child-death form."""

    __tablename__ = "case_factors"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), nullable=False, index=True
    )
    domain: Mapped[Domain] = mapped_column(str_enum(Domain, 30), nullable=False)
    description_enc: Mapped[str] = mapped_column(Text, nullable=False)
    score: Mapped[Score] = mapped_column(str_enum(Score, 30), nullable=False)
    is_modifiable: Mapped[bool] = mapped_column(default=False, nullable=False)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    def __repr__(self) -> str:
        return f"<Factor {self.uuid} {self.domain.value}>"


class LearningPoint(PublicIdMixin, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "learning_points"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), nullable=False, index=True
    )
    text_enc: Mapped[str] = mapped_column(Text, nullable=False)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    themes: Mapped[list[Theme]] = relationship(
        secondary=learning_point_themes, lazy="selectin", order_by=Theme.id
    )

    def __repr__(self) -> str:
        return f"<LearningPoint {self.uuid}>"


# -- actions and safety plans --------------------------------------------------------------------


class ActionStatus(Labelled):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    NOT_ACCEPTED = "not_accepted"


class PlanStatus(Labelled):
    OPEN = "open"
    CLOSED = "closed"


class Intervention(Labelled):
    NALOXONE = "naloxone"
    TREATMENT_REFERRAL = "treatment_referral"
    HOUSING_REFERRAL = "housing_referral"
    MENTAL_HEALTH_REFERRAL = "mental_health_referral"
    OTHER = "other"


INTERVENTION_LABELS = {
    Intervention.NALOXONE: "Naloxone supplied",
    Intervention.TREATMENT_REFERRAL: "Treatment referral",
    Intervention.HOUSING_REFERRAL: "Housing referral",
    Intervention.MENTAL_HEALTH_REFERRAL: "Mental-health referral",
    Intervention.OTHER: "Other",
}

OPEN_ACTION = (ActionStatus.OPEN, ActionStatus.IN_PROGRESS)
OWNER_ROLES = (Role.PANEL_MEMBER, Role.AGENCY_CONTRIBUTOR)


class Action(PublicIdMixin, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "actions"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), nullable=False, index=True
    )
    description_enc: Mapped[str] = mapped_column(Text, nullable=False)
    owner_agency_id: Mapped[int] = mapped_column(
        ForeignKey("agencies.id"), nullable=False, index=True
    )
    due_on: Mapped[date] = mapped_column(Date, nullable=False)
    status: Mapped[ActionStatus] = mapped_column(
        str_enum(ActionStatus, 14), nullable=False, default=ActionStatus.OPEN
    )
    not_accepted_reason_enc: Mapped[str | None] = mapped_column(Text)
    evidence_enc: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1, nullable=False)

    case: Mapped[Case] = relationship(lazy="joined")
    owner_agency: Mapped[Agency] = relationship(lazy="joined")

    __mapper_args__ = {"version_id_col": version}

    def __repr__(self) -> str:
        return f"<Action {self.uuid} {self.status.value}>"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_ACTION

    def is_overdue(self, today: date) -> bool:
        return self.is_open and self.due_on < today

    # Per-record rules: the case's readers see its actions; the owner agency's panel members and
    # contributors in the case's area see and update them; the coordinator sets them.
    def can_view(self, user: User) -> bool:
        return self.case.can_view(user) or self.can_update(user)

    def can_update(self, user: User) -> bool:
        return bool(
            user.role in OWNER_ROLES
            and user.agency_id is not None
            and user.agency_id == self.owner_agency_id
            and self.case.area_id in user.area_ids
        )

    def can_edit(self, user: User) -> bool:
        return self.case.can_edit(user)


class SafetyPlan(PublicIdMixin, db.Model):  # type: ignore[name-defined,misc]
    """One plan per person, made from one of their cases (the case it links back to)."""

    __tablename__ = "safety_plans"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(
        ForeignKey("persons.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), nullable=False, index=True)
    status: Mapped[PlanStatus] = mapped_column(
        str_enum(PlanStatus, 10), nullable=False, default=PlanStatus.OPEN
    )
    risks_enc: Mapped[str | None] = mapped_column(Text)
    protective_enc: Mapped[str | None] = mapped_column(Text)
    interventions: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    lead_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False, index=True)
    lead_agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"))
    review_on: Mapped[date] = mapped_column(Date, nullable=False)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1, nullable=False)

    person: Mapped[Person] = relationship()
    case: Mapped[Case] = relationship(lazy="joined")
    lead_user: Mapped[User] = relationship(foreign_keys=[lead_user_id], lazy="joined")
    lead_agency: Mapped[Agency | None] = relationship(lazy="joined")

    __mapper_args__ = {"version_id_col": version}

    def __repr__(self) -> str:
        return f"<SafetyPlan {self.uuid} {self.status.value}>"

    @property
    def intervention_list(self) -> list[Intervention]:
        return [Intervention(v) for v in self.interventions.split(",") if v]

    @property
    def intervention_labels(self) -> list[str]:
        return [INTERVENTION_LABELS[i] for i in self.intervention_list]

    def review_overdue(self, today: date) -> bool:
        return self.status is PlanStatus.OPEN and self.review_on < today

    def can_view(self, user: User) -> bool:
        return bool(self.person.can_view(user))

    def can_edit(self, user: User) -> bool:
        return user.role in (Role.COORDINATOR, Role.PANEL_MEMBER) and self.can_view(user)
