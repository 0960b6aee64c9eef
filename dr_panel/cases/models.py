"""Notifications (cases) of suspected drug-related deaths and non-fatal overdoses, the people they
are about, and the substances reference list.

Identifiers (name, date of birth, NHS number, address, postcode) live only on ``Person``, only
encrypted (``*_enc``), with keyed, truncated blind indexes (``bi_*``) for linking. A case carries
what is derived from them and safe to show pseudonymised: age at the event, age band, postcode
district.
"""

from __future__ import annotations

import enum
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Column,
    Date,
    Enum,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
    Time,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dr_panel.dbtypes import PublicIdMixin, UTCDateTime, utcnow
from dr_panel.extensions import db
from dr_panel.privacy.disclosure import new_record_key
from dr_panel.privacy.models import PersonToken
from dr_panel.reference.models import Agency, Area
from dr_panel.roles import Role

if TYPE_CHECKING:
    from dr_panel.auth.models import User


def str_enum(e: type[enum.Enum], length: int = 24) -> Enum:
    """Enums stored as their value in a plain string column: new values need no migration."""
    return Enum(
        e,
        native_enum=False,
        length=length,
        validate_strings=True,
        values_callable=lambda x: [m.value for m in x],
    )


class Labelled(enum.StrEnum):
    @property
    def label(self) -> str:
        return LABELS.get(self, self.value.replace("_", " ").capitalize())


class CaseType(Labelled):
    DEATH = "death"
    NFO = "nfo"


class CaseStatus(Labelled):
    """Where a case is in the panel's work; the allowed moves are in dr_panel.cases.workflow."""

    NOTIFIED = "notified"
    INFORMATION_GATHERING = "information_gathering"
    READY_FOR_PANEL = "ready_for_panel"
    REVIEWED = "reviewed"
    ACTIONS_IN_PROGRESS = "actions_in_progress"
    CLOSED = "closed"
    NO_REVIEW = "no_review"
    DUPLICATE = "duplicate"
    AWAITING_TOXICOLOGY = "awaiting_toxicology"
    AWAITING_INQUEST = "awaiting_inquest"


class Setting(Labelled):
    HOME = "home"
    HOSTEL = "hostel"
    STREET = "street"
    CUSTODY = "custody"
    HOSPITAL = "hospital"
    PRISON = "prison"
    OTHER = "other"


class Route(Labelled):
    INJECTED = "injected"
    SMOKED = "smoked"
    SNORTED = "snorted"
    ORAL = "oral"
    MIXED = "mixed"
    UNKNOWN = "unknown"


class YesNoUnknown(Labelled):
    YES = "yes"
    NO = "no"
    UNKNOWN = "unknown"


class NaloxoneBy(Labelled):
    AMBULANCE = "ambulance"
    POLICE = "police"
    PEER = "peer"
    FAMILY_FRIEND = "family_friend"
    HOSTEL_STAFF = "hostel_staff"
    TREATMENT_STAFF = "treatment_staff"
    OTHER = "other"
    UNKNOWN = "unknown"


class NfoOutcome(Labelled):
    CONVEYED = "conveyed"
    TREATED_AT_SCENE = "treated_at_scene"
    REFUSED_CONVEYANCE = "refused_conveyance"
    SELF_DISCHARGED = "self_discharged"
    OTHER = "other"
    UNKNOWN = "unknown"


class TreatmentStatus(Labelled):
    IN_TREATMENT = "in_treatment"
    LEFT_6M = "left_6m"
    PREVIOUSLY = "previously"
    NEVER = "never"
    UNKNOWN = "unknown"


class HousingStatus(Labelled):
    SETTLED = "settled"
    TEMPORARY = "temporary"
    HOSTEL_SUPPORTED = "hostel_supported"
    ROUGH_SLEEPING = "rough_sleeping"
    NO_FIXED_ABODE = "no_fixed_abode"
    OTHER = "other"
    UNKNOWN = "unknown"


class Toxicology(Labelled):
    AWAITED = "awaited"
    RECEIVED = "received"
    NOT_REQUESTED = "not_requested"
    UNKNOWN = "unknown"


class CoronerStage(Labelled):
    NOT_REFERRED = "not_referred"
    REFERRED = "referred"
    INQUEST_OPENED = "inquest_opened"
    INQUEST_CONCLUDED = "inquest_concluded"
    UNKNOWN = "unknown"


class Sex(Labelled):
    FEMALE = "female"
    MALE = "male"
    OTHER = "other"
    UNKNOWN = "unknown"


class MatchStatus(Labelled):
    NONE = "none"  # no other person looked like this one
    LINKED = "linked"  # linked on a matching NHS number and name/date of birth
    SUGGESTED = "suggested"  # a possible match waits for the coordinator
    CONFIRMED = "confirmed"
    REJECTED = "rejected"


LABELS: dict[Any, str] = {
    CaseStatus.NOTIFIED: "Notified, waiting for triage",
    MatchStatus.NONE: "Not linked to any earlier event",
    MatchStatus.LINKED: (
        "Linked automatically to earlier events (same NHS number and date of birth)"
    ),
    MatchStatus.SUGGESTED: "A possible match waits for a coordinator",
    MatchStatus.CONFIRMED: "Linked to earlier events by a coordinator",
    MatchStatus.REJECTED: "A possible match was rejected by a coordinator",
    CaseStatus.NO_REVIEW: "No review needed",
    CaseStatus.DUPLICATE: "Duplicate (merged)",
    CaseType.DEATH: "Suspected drug-related death",
    CaseType.NFO: "Non-fatal overdose",
    Setting.HOSTEL: "Hostel / supported housing",
    Setting.STREET: "Street / public place",
    YesNoUnknown.YES: "Yes",
    YesNoUnknown.NO: "No",
    YesNoUnknown.UNKNOWN: "Not known",
    NaloxoneBy.FAMILY_FRIEND: "Family or friend",
    NaloxoneBy.PEER: "Peer (person who uses drugs)",
    NfoOutcome.CONVEYED: "Conveyed to hospital",
    TreatmentStatus.LEFT_6M: "Left treatment in the last 6 months",
    TreatmentStatus.PREVIOUSLY: "In treatment previously (over 6 months ago)",
    TreatmentStatus.NEVER: "Never in treatment",
    TreatmentStatus.IN_TREATMENT: "In treatment",
    HousingStatus.HOSTEL_SUPPORTED: "Hostel / supported housing",
    HousingStatus.NO_FIXED_ABODE: "No fixed abode",
    Toxicology.NOT_REQUESTED: "Not requested",
}

AGE_BANDS = [
    (0, 17, "under 18"),
    (18, 24, "18-24"),
    (25, 34, "25-34"),
    (35, 44, "35-44"),
    (45, 54, "45-54"),
    (55, 64, "55-64"),
    (65, 200, "65+"),
]


def age_band(age: int | None) -> str | None:
    if age is None:
        return None
    return next(label for lo, hi, label in AGE_BANDS if lo <= age <= hi)


class Substance(db.Model):  # type: ignore[name-defined,misc]
    """The maintained list of suspected substances."""

    __tablename__ = "substances"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(30), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(80), nullable=False)
    group: Mapped[str] = mapped_column(String(30), nullable=False)  # for spikes and trends
    is_active: Mapped[bool] = mapped_column(default=True, nullable=False)

    def __repr__(self) -> str:
        return f"<Substance {self.code}>"


case_substances = Table(
    "case_substances",
    db.metadata,
    Column("case_id", Integer, ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True),
    Column("substance_id", Integer, ForeignKey("substances.id"), primary_key=True),
    Index("ix_case_substances_substance_id", "substance_id", "case_id"),
)


class Person(PublicIdMixin, db.Model):  # type: ignore[name-defined,misc]
    """Someone a notification is about. Every identifier is encrypted and bound to this row."""

    __tablename__ = "persons"

    id: Mapped[int] = mapped_column(primary_key=True)
    name_enc: Mapped[str] = mapped_column(Text, nullable=False)
    dob_enc: Mapped[str | None] = mapped_column(Text)
    nhs_number_enc: Mapped[str | None] = mapped_column(Text)
    address_enc: Mapped[str | None] = mapped_column(Text)
    postcode_enc: Mapped[str | None] = mapped_column(Text)
    sex: Mapped[Sex] = mapped_column(str_enum(Sex, 10), default=Sex.UNKNOWN, nullable=False)
    # Blind indexes: truncated keyed HMACs (dr_panel.privacy.identity). Not unique by design.
    bi_nhs: Mapped[int | None] = mapped_column(Integer, index=True)
    bi_name_dob: Mapped[int | None] = mapped_column(Integer, index=True)
    # Folded first and last name: lets the alert leak gate find a stored name in a draft.
    bi_name: Mapped[int | None] = mapped_column(Integer, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    # Set when the retention schedule erased every identifier (``name_enc`` is then empty) and
    # the free text of their cases (dr_panel.retention); the rule is a RecordKind value.
    disposed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disposal_rule: Mapped[str | None] = mapped_column(String(20))

    cases: Mapped[list[Case]] = relationship(
        back_populates="person", order_by="Case.event_date", foreign_keys="Case.person_id"
    )
    # Keyed-HMAC tokens of the name and address parts, for the identifier detector.
    tokens: Mapped[list[PersonToken]] = relationship(cascade="all, delete-orphan")

    def __repr__(self) -> str:
        return f"<Person {self.uuid}>"

    def can_view(self, user: User) -> bool:
        return any(c.can_view(user) for c in self.cases)


class Case(PublicIdMixin, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(20), nullable=False)
    area_id: Mapped[int] = mapped_column(ForeignKey("areas.id"), nullable=False)
    case_type: Mapped[CaseType] = mapped_column(str_enum(CaseType, 10), nullable=False)
    status: Mapped[CaseStatus] = mapped_column(
        str_enum(CaseStatus, 30), nullable=False, default=CaseStatus.NOTIFIED
    )
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), nullable=False)
    notifying_agency_id: Mapped[int | None] = mapped_column(ForeignKey("agencies.id"))
    notified_on: Mapped[date] = mapped_column(Date, nullable=False)
    event_date: Mapped[date] = mapped_column(Date, nullable=False)
    event_time: Mapped[time | None] = mapped_column(Time)
    date_is_found: Mapped[bool] = mapped_column(default=False, nullable=False)
    setting: Mapped[Setting] = mapped_column(str_enum(Setting), nullable=False)
    route: Mapped[Route] = mapped_column(str_enum(Route), default=Route.UNKNOWN, nullable=False)
    naloxone_given: Mapped[YesNoUnknown] = mapped_column(
        str_enum(YesNoUnknown, 10), default=YesNoUnknown.UNKNOWN, nullable=False
    )
    naloxone_by: Mapped[NaloxoneBy | None] = mapped_column(str_enum(NaloxoneBy))
    naloxone_doses: Mapped[int | None] = mapped_column(SmallInteger)
    nfo_outcome: Mapped[NfoOutcome | None] = mapped_column(str_enum(NfoOutcome))
    treatment_status: Mapped[TreatmentStatus] = mapped_column(
        str_enum(TreatmentStatus), default=TreatmentStatus.UNKNOWN, nullable=False
    )
    recent_prison_release: Mapped[YesNoUnknown] = mapped_column(
        str_enum(YesNoUnknown, 10), default=YesNoUnknown.UNKNOWN, nullable=False
    )
    housing_status: Mapped[HousingStatus] = mapped_column(
        str_enum(HousingStatus), default=HousingStatus.UNKNOWN, nullable=False
    )
    children_in_household: Mapped[YesNoUnknown] = mapped_column(
        str_enum(YesNoUnknown, 10), default=YesNoUnknown.UNKNOWN, nullable=False
    )
    previous_overdoses: Mapped[int | None] = mapped_column(SmallInteger)
    toxicology: Mapped[Toxicology | None] = mapped_column(str_enum(Toxicology))
    coroner_stage: Mapped[CoronerStage | None] = mapped_column(str_enum(CoronerStage))
    # Derived at intake from the encrypted identifiers, so they are never typed twice.
    age_at_event: Mapped[int | None] = mapped_column(SmallInteger)
    age_band: Mapped[str | None] = mapped_column(String(10))
    postcode_district: Mapped[str | None] = mapped_column(String(4))
    match_status: Mapped[MatchStatus] = mapped_column(
        str_enum(MatchStatus, 10), nullable=False, default=MatchStatus.NONE
    )
    suggested_person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    version: Mapped[int] = mapped_column(Integer, default=1, nullable=False)
    # Set while the case waits for toxicology or an inquest, and when merged as a duplicate.
    awaiting_until: Mapped[date | None] = mapped_column(Date)
    duplicate_of_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    # Random 0..255, drawn once and never changed: the record key of the cell key method that
    # protects trend figures (dr_panel.privacy.disclosure). Never shown to anyone.
    record_key: Mapped[int] = mapped_column(SmallInteger, nullable=False, default=new_record_key)

    area: Mapped[Area] = relationship(lazy="joined")
    notifying_agency: Mapped[Agency | None] = relationship(lazy="joined")
    person: Mapped[Person] = relationship(back_populates="cases", foreign_keys=[person_id])
    suggested_person: Mapped[Person | None] = relationship(foreign_keys=[suggested_person_id])
    duplicate_of: Mapped[Case | None] = relationship(
        remote_side="Case.id", foreign_keys=[duplicate_of_id]
    )
    events: Mapped[list[CaseEvent]] = relationship(
        back_populates="case", order_by="CaseEvent.occurred_at", cascade="all, delete-orphan"
    )
    substances: Mapped[list[Substance]] = relationship(
        secondary=case_substances, lazy="selectin", order_by=Substance.name
    )
    former_references: Mapped[list[RetiredReference]] = relationship(
        order_by="RetiredReference.retired_at"
    )

    __table_args__ = (
        UniqueConstraint("area_id", "reference"),
        Index("ix_cases_area_id_event_date", "area_id", "event_date"),
        # Filtering one area's deaths or overdoses over a period (the commonest filter).
        Index("ix_cases_area_type_date", "area_id", "case_type", "event_date"),
        # Newest first across all of a user's areas walks this index and stops after a page.
        Index("ix_cases_event_date_id", "event_date", "id"),
        Index("ix_cases_person_id_event_date", "person_id", "event_date"),
    )
    __mapper_args__ = {"version_id_col": version}

    def __repr__(self) -> str:
        return f"<Case {self.uuid} {self.case_type.value}>"

    # Per-record rules (DESIGN.md): leads see aggregates only; agency contributors reach a case
    # only through their requests; admins see no case content.
    def can_view(self, user: User) -> bool:
        return user.role in (Role.COORDINATOR, Role.PANEL_MEMBER) and self.area_id in user.area_ids

    def can_reveal(self, user: User) -> bool:
        return self.can_view(user)

    def can_edit(self, user: User) -> bool:
        return user.role == Role.COORDINATOR and self.area_id in user.area_ids


class RetiredReference(db.Model):  # type: ignore[name-defined,misc]
    """A reference a case gave up when it moved to another area or case type. It stays taken in
    its old area, so no later case is given it: minutes, e-mails and requests that quote it
    never come to mean someone else. The case page shows it as "formerly"."""

    __tablename__ = "retired_references"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"),
                                                index=True)
    area_id: Mapped[int] = mapped_column(ForeignKey("areas.id"), nullable=False)
    reference: Mapped[str] = mapped_column(String(20), nullable=False)
    retired_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    area: Mapped[Area] = relationship(lazy="joined")

    __table_args__ = (UniqueConstraint("area_id", "reference"),)

    def __repr__(self) -> str:
        return f"<RetiredReference area={self.area_id}>"


class CaseEvent(PublicIdMixin, db.Model):  # type: ignore[name-defined,misc]
    """One step in a case's life (a status change, with who, when and why), for its timeline.
    The reason is free text, so it is encrypted like the identifiers."""

    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), nullable=False, index=True
    )
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    transition: Mapped[str] = mapped_column(String(40), nullable=False)
    from_status: Mapped[CaseStatus] = mapped_column(str_enum(CaseStatus, 30), nullable=False)
    to_status: Mapped[CaseStatus] = mapped_column(str_enum(CaseStatus, 30), nullable=False)
    reason_enc: Mapped[str | None] = mapped_column(Text)
    expected_on: Mapped[date | None] = mapped_column(Date)

    case: Mapped[Case] = relationship(back_populates="events")
    actor: Mapped[User | None] = relationship("User", lazy="joined")

    def __repr__(self) -> str:
        return f"<CaseEvent {self.transition} {self.from_status.value}->{self.to_status.value}>"
