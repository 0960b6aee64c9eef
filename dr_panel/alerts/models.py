"""The local drug information system (LDIS): signals, drug-concern reports, their assessment,
alerts with frozen versions, subscribers and the broadcast outbox.

Nothing here holds an identifier of a person a case is about. Signals carry counts and dates;
reports are screened for identifiers before they are saved and their free text is encrypted all
the same (a reporter may describe someone); alerts pass the identifier-leak gate before approval.
Webhook secrets are encrypted with the field keys, which live outside the database.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import (
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dr_panel.cases.models import CaseType, Labelled, str_enum
from dr_panel.dbtypes import PublicIdMixin, UTCDateTime, utcnow
from dr_panel.extensions import db
from dr_panel.reference.models import Area
from dr_panel.roles import Role

if TYPE_CHECKING:
    from dr_panel.auth.models import User

# -- vocabularies -------------------------------------------------------------------------------


class SignalKind(Labelled):
    SPIKE = "spike"  # a statistical spike in daily counts (EARS C1/C2/C3, Poisson)
    CLUSTER = "cluster"  # N reviewed cases sharing a learning theme or substance in a window


class SignalMethod(Labelled):
    C1 = "c1"
    C2 = "c2"
    C3 = "c3"
    POISSON = "poisson"
    THEME = "theme"
    SUBSTANCE = "substance"


class ItemStatus(Labelled):
    """Where a signal or a report is in the LDIS panel's queue."""

    NEW = "new"
    ASSESSED = "assessed"  # graded, a decision recorded
    ALERTED = "alerted"  # an alert was drafted from it
    CLOSED = "closed"  # no further action


class ReportSource(Labelled):
    PUBLIC = "public"  # the public form, no account
    PROFESSIONAL = "professional"  # a signed-in partner


class Reliability(Labelled):
    """Source reliability, on the 5x5x5-style scale the UK intelligence community uses."""

    A = "a"  # reliable
    B = "b"  # usually reliable
    C = "c"  # fairly reliable
    D = "d"  # not usually reliable
    E = "e"  # reliability cannot be judged


class Rating(Labelled):
    """Plausibility and local relevance."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class Severity(Labelled):
    """Severity of harm; drives CAP <severity>."""

    EXTREME = "extreme"  # deaths or risk to life
    SEVERE = "severe"  # hospital admissions, serious harm
    MODERATE = "moderate"
    MINOR = "minor"


class Decision(Labelled):
    NO_FURTHER_ACTION = "no_further_action"
    INFORMATION_NOTICE = "information_notice"
    DRUG_ALERT = "drug_alert"
    URGENT_ALERT = "urgent_alert"  # risk to life


class AlertLevel(Labelled):
    INFORMATION_NOTICE = "information_notice"
    DRUG_ALERT = "drug_alert"
    URGENT_ALERT = "urgent_alert"


class Scope(Labelled):
    PUBLIC = "public"  # CAP scope Public: the feed shows it to anyone
    RESTRICTED = "restricted"  # CAP scope Restricted: an API token is needed


class AlertStatus(Labelled):
    DRAFT = "draft"
    AWAITING_APPROVAL = "awaiting_approval"
    ISSUED = "issued"  # the current version is live
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class MsgType(Labelled):
    """CAP msgType of a version."""

    ALERT = "Alert"
    UPDATE = "Update"
    CANCEL = "Cancel"


class Channel(Labelled):
    EMAIL = "email"
    WEBHOOK = "webhook"


class DeliveryStatus(Labelled):
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"  # will be retried at next_attempt_at
    GAVE_UP = "gave_up"  # the endpoint was disabled or retries ran out


AUDIENCES: dict[str, str] = {
    "treatment": "Drug and alcohol treatment services",
    "hostels": "Hostels and supported housing",
    "emergency_departments": "A&E / emergency departments",
    "ambulance": "Ambulance service",
    "police": "Police",
    "outreach": "Outreach and harm-reduction teams",
    "pharmacies": "Pharmacies",
    "prisons_probation": "Prisons and probation",
    "primary_care": "GPs and primary care",
    "public": "The public",
}


# -- signals, reports, assessment ---------------------------------------------------------------


class SignalSettings(db.Model):  # type: ignore[name-defined,misc]
    """An area's own spike-scan settings, set by its coordinators on the settings page: the
    keys of ``ears.Settings`` it overrides, as JSON (numbers and true/false, never identifiers).
    Applied after the defaults and the configuration (``signals.settings_for``)."""

    __tablename__ = "signal_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    area_id: Mapped[int] = mapped_column(
        ForeignKey("areas.id", ondelete="CASCADE"), unique=True, nullable=False
    )
    overrides: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    # Optimistic lock: a save from a page opened before someone else's save is refused.
    revision: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False
    )

    area: Mapped[Area] = relationship()
    updated_by: Mapped[User | None] = relationship("User")

    __mapper_args__ = {"version_id_col": revision}

    def __repr__(self) -> str:
        return f"<SignalSettings area={self.area_id}>"


class Signal(PublicIdMixin, db.Model):  # type: ignore[name-defined,misc]
    """Something that may need an alert, found by the scan. Never broadcast by itself.

    ``evidence`` is JSON of counts, dates and thresholds (and, for clusters, case UUIDs, which a
    coordinator of the area can open): no identifiers, no free text.
    """

    __tablename__ = "signals"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[SignalKind] = mapped_column(str_enum(SignalKind, 10), nullable=False)
    method: Mapped[SignalMethod] = mapped_column(str_enum(SignalMethod, 10), nullable=False)
    area_id: Mapped[int] = mapped_column(ForeignKey("areas.id"), nullable=False)
    case_type: Mapped[CaseType | None] = mapped_column(str_enum(CaseType, 10))
    # A substance group ("opioids"), a substance code, or a theme code, with what it is.
    subject: Mapped[str] = mapped_column(String(40), nullable=False)
    day: Mapped[date] = mapped_column(Date, nullable=False)  # the day (or window end) flagged
    observed: Mapped[int] = mapped_column(Integer, nullable=False)
    expected: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    evidence: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    status: Mapped[ItemStatus] = mapped_column(
        str_enum(ItemStatus, 12), nullable=False, default=ItemStatus.NEW
    )
    is_urgent: Mapped[bool] = mapped_column(default=False, nullable=False)
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    area: Mapped[Area] = relationship(lazy="joined")

    __table_args__ = (
        # Scanning twice finds the same signal once.
        UniqueConstraint("kind", "method", "area_id", "case_type", "subject", "day"),
        Index("ix_signals_status_detected_at", "status", "detected_at"),
    )

    def __repr__(self) -> str:
        return f"<Signal {self.uuid} {self.method.value} {self.day}>"

    def can_view(self, user: User) -> bool:
        return user.role == Role.COORDINATOR and self.area_id in user.area_ids

    can_assess = can_view


class DrugReport(PublicIdMixin, db.Model):  # type: ignore[name-defined,misc]
    """A "bad batch" report from the professional information network or the public.

    What was seen, sold as, appearance, effects and where are free text, so they are encrypted
    together in ``content_enc`` (JSON). The reporter's contact address, if given, is kept only to
    send the confirmation and is encrypted too.
    """

    __tablename__ = "drug_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(20), unique=True, nullable=False)
    source: Mapped[ReportSource] = mapped_column(str_enum(ReportSource, 12), nullable=False)
    area_id: Mapped[int] = mapped_column(ForeignKey("areas.id"), nullable=False)
    reporter_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reporter_contact_enc: Mapped[str | None] = mapped_column(Text)
    seen_on: Mapped[date] = mapped_column(Date, nullable=False)
    content_enc: Mapped[str] = mapped_column(Text, nullable=False)
    # The reporter says someone died or needed hospital care: assess within 24 hours.
    is_urgent: Mapped[bool] = mapped_column(default=False, nullable=False)
    status: Mapped[ItemStatus] = mapped_column(
        str_enum(ItemStatus, 12), nullable=False, default=ItemStatus.NEW
    )
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    # When the retention schedule erased the reporter's contact address, and the free text
    # (``content_enc`` then holds an empty set of fields) (dr_panel.retention).
    contact_erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    text_erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Words matching a stored person whom the reporter may not be told about: the report was
    # accepted as any other, and held for the coordinator with the spans marked
    # (``dr_panel.alerts.reports``). ``held_enc`` is encrypted JSON of the spans and the matched
    # people, sealed for every report (an empty list when nothing is held).
    is_held: Mapped[bool] = mapped_column(default=False, nullable=False)
    held_enc: Mapped[str | None] = mapped_column(Text)

    area: Mapped[Area] = relationship(lazy="joined")

    __table_args__ = (Index("ix_drug_reports_status_received_at", "status", "received_at"),)

    def __repr__(self) -> str:
        return f"<DrugReport {self.uuid} {self.source.value}>"

    def can_view(self, user: User) -> bool:
        return user.role == Role.COORDINATOR and self.area_id in user.area_ids

    can_assess = can_view


class Assessment(PublicIdMixin, db.Model):  # type: ignore[name-defined,misc]
    """The LDIS panel's grading of one signal or report, and its decision. Exactly one of
    ``signal_id`` and ``report_id`` is set. Notes and rationale are encrypted free text."""

    __tablename__ = "assessments"

    id: Mapped[int] = mapped_column(primary_key=True)
    signal_id: Mapped[int | None] = mapped_column(ForeignKey("signals.id"), index=True)
    report_id: Mapped[int | None] = mapped_column(ForeignKey("drug_reports.id"), index=True)
    assessor_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    reliability: Mapped[Reliability] = mapped_column(str_enum(Reliability, 2), nullable=False)
    plausibility: Mapped[Rating] = mapped_column(str_enum(Rating, 8), nullable=False)
    local_relevance: Mapped[Rating] = mapped_column(str_enum(Rating, 8), nullable=False)
    severity: Mapped[Severity] = mapped_column(str_enum(Severity, 10), nullable=False)
    decision: Mapped[Decision] = mapped_column(str_enum(Decision, 20), nullable=False)
    notes_enc: Mapped[str | None] = mapped_column(Text)
    rationale_enc: Mapped[str] = mapped_column(Text, nullable=False)
    assessed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    signal: Mapped[Signal | None] = relationship()
    report: Mapped[DrugReport | None] = relationship()
    assessor: Mapped[User] = relationship("User")

    def __repr__(self) -> str:
        return f"<Assessment {self.uuid} {self.decision.value}>"


# -- alerts and their versions ------------------------------------------------------------------


alert_version_areas = Table(
    "alert_version_areas",
    db.metadata,
    Column("version_id", Integer, ForeignKey("alert_versions.id", ondelete="CASCADE"),
           primary_key=True),
    Column("area_id", Integer, ForeignKey("areas.id"), primary_key=True),
)


class Alert(PublicIdMixin, db.Model):  # type: ignore[name-defined,misc]
    """One alert through its life: versions 1..n, each frozen once issued."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(20), unique=True, nullable=False)
    status: Mapped[AlertStatus] = mapped_column(
        str_enum(AlertStatus, 20), nullable=False, default=AlertStatus.DRAFT
    )
    assessment_id: Mapped[int | None] = mapped_column(ForeignKey("assessments.id"))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    # The area whose coordinators own the alert; the versions say which areas it covers.
    area_id: Mapped[int] = mapped_column(ForeignKey("areas.id"), nullable=False)

    area: Mapped[Area] = relationship(lazy="joined")
    assessment: Mapped[Assessment | None] = relationship()
    created_by: Mapped[User] = relationship("User")
    versions: Mapped[list[AlertVersion]] = relationship(
        back_populates="alert", order_by="AlertVersion.number", cascade="all, delete-orphan"
    )

    def __repr__(self) -> str:
        return f"<Alert {self.uuid} {self.status.value}>"

    @property
    def current(self) -> AlertVersion | None:
        """The latest issued version."""
        issued = [v for v in self.versions if v.issued_at is not None]
        return issued[-1] if issued else None

    @property
    def draft(self) -> AlertVersion | None:
        """The version being prepared (not yet issued), if any."""
        pending = [v for v in self.versions if v.issued_at is None]
        return pending[-1] if pending else None

    def can_view(self, user: User) -> bool:
        if user.role == Role.LEAD:
            return bool(set(self.covered_area_ids()) & set(user.area_ids))
        return user.role == Role.COORDINATOR and self.area_id in user.area_ids

    def can_edit(self, user: User) -> bool:
        return user.role == Role.COORDINATOR and self.area_id in user.area_ids

    def can_read(self, user: User) -> bool:
        """The archive (A2): everyone ``can_view`` admits sees every version, drafts too;
        coordinators, leads, panel members and agency contributors also see the issued
        versions of alerts covering one of their areas. Admins see none."""
        if self.can_view(user):
            return True
        readers = (Role.COORDINATOR, Role.LEAD, Role.PANEL_MEMBER, Role.AGENCY_CONTRIBUTOR)
        if user.role not in readers:
            return False
        issued = {a.id for v in self.versions if v.issued_at is not None for a in v.areas}
        return bool(issued & set(user.area_ids))

    def can_approve(self, user: User) -> bool:
        """A second coordinator of the area, or a lead covering it; never the drafter."""
        draft = self.draft
        if draft is None or draft.drafted_by_id == user.id:
            return False
        return user.role in (Role.COORDINATOR, Role.LEAD) and self.can_view(user)

    def covered_area_ids(self) -> list[int]:
        version = self.draft or self.current
        ids = [a.id for a in version.areas] if version else []
        return ids or [self.area_id]


class AlertVersion(PublicIdMixin, db.Model):  # type: ignore[name-defined,misc]
    """One version of an alert. Editable while a draft; frozen from ``issued_at`` on.

    ``content`` is JSON of the structured fields (title, substance, sold_as, appearance,
    adulterant, signs_of_harm, advice, professional_actions, counts): drafted by hand, never
    copied from a case's free text, and checked by the identifier-leak gate before approval.
    It is not encrypted: once issued it is published to subscribers and, if public, to anyone.
    """

    __tablename__ = "alert_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(
        ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False, index=True
    )
    number: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    msg_type: Mapped[MsgType] = mapped_column(str_enum(MsgType, 8), nullable=False)
    level: Mapped[AlertLevel] = mapped_column(str_enum(AlertLevel, 20), nullable=False)
    scope: Mapped[Scope] = mapped_column(str_enum(Scope, 12), nullable=False)
    content: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    audiences: Mapped[str] = mapped_column(Text, nullable=False, default="[]")  # JSON codes
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    drafted_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"), nullable=False)
    drafted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # sent for approval
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # The version this one updates or cancels (CAP <references>).
    references_id: Mapped[int | None] = mapped_column(ForeignKey("alert_versions.id"))
    # Optimistic lock (A2): a save, submission or approval based on an older revision is
    # refused, so two people editing (or approving) one draft cannot overwrite each other.
    revision: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    alert: Mapped[Alert] = relationship(back_populates="versions")
    areas: Mapped[list[Area]] = relationship(secondary=alert_version_areas, order_by=Area.name)
    drafted_by: Mapped[User] = relationship("User", foreign_keys=[drafted_by_id])
    approved_by: Mapped[User | None] = relationship("User", foreign_keys=[approved_by_id])
    references: Mapped[AlertVersion | None] = relationship(remote_side="AlertVersion.id")

    __table_args__ = (UniqueConstraint("alert_id", "number"),)
    __mapper_args__ = {"version_id_col": revision}

    def __repr__(self) -> str:
        return f"<AlertVersion {self.uuid} v{self.number} {self.msg_type.value}>"

    @property
    def is_frozen(self) -> bool:
        return self.issued_at is not None


# -- subscribers and deliveries -----------------------------------------------------------------


subscriber_areas = Table(
    "subscriber_areas",
    db.metadata,
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"),
           primary_key=True),
    Column("area_id", Integer, ForeignKey("areas.id"), primary_key=True),
)


class Subscriber(PublicIdMixin, db.Model):  # type: ignore[name-defined,misc]
    """A person or organisation of the professional information network (e-mail), or a partner
    system (webhook), with the areas and audiences it receives alerts for.

    A webhook's signing secret (``whsec_...``) is encrypted with the field keys; during a rotation
    the previous secret stays valid (and signs too) until ``previous_secret_until``.
    """

    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[Channel] = mapped_column(str_enum(Channel, 10), nullable=False)
    name: Mapped[str] = mapped_column(String(160), nullable=False)
    organisation: Mapped[str | None] = mapped_column(String(160))
    email: Mapped[str | None] = mapped_column(String(254))
    url: Mapped[str | None] = mapped_column(String(500))
    secret_enc: Mapped[str | None] = mapped_column(Text)
    previous_secret_enc: Mapped[str | None] = mapped_column(Text)
    previous_secret_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    audiences: Mapped[str] = mapped_column(Text, nullable=False, default="[]")  # JSON codes
    # Only restricted-scope alerts' recipients need this: the public receives public alerts.
    receives_restricted: Mapped[bool] = mapped_column(default=True, nullable=False)
    is_active: Mapped[bool] = mapped_column(default=True, nullable=False)
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    areas: Mapped[list[Area]] = relationship(secondary=subscriber_areas, order_by=Area.name)

    __table_args__ = (Index("ix_subscribers_channel_active", "channel", "is_active"),)

    def __repr__(self) -> str:
        return f"<Subscriber {self.uuid} {self.channel.value}>"

    def can_view(self, user: User) -> bool:
        return user.role == Role.COORDINATOR and bool(
            {a.id for a in self.areas} & set(user.area_ids)
        )

    can_edit = can_view


class Delivery(PublicIdMixin, db.Model):  # type: ignore[name-defined,misc]
    """One alert version to one subscriber: the broadcast outbox.

    Rows are written in the transaction that issues the version, so issuing and queuing are one.
    The UUID is stable: it is the ``webhook-id`` (``msg_<uuid hex>``) and the e-mail's Message-ID,
    so a receiver that honours it sees every message once even if a worker crashed after sending
    and before recording it. The UUID in the e-mail's acknowledgement link only lets its holder
    acknowledge that one delivery.
    """

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("alert_versions.id"), nullable=False)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id"), nullable=False)
    channel: Mapped[Channel] = mapped_column(str_enum(Channel, 10), nullable=False)
    # "issued" for a version going out (Alert, Update or Cancel); "expired" for the notice that
    # an alert's last version has expired, which has no version of its own.
    event: Mapped[str] = mapped_column(String(10), nullable=False, default="issued")
    status: Mapped[DeliveryStatus] = mapped_column(
        str_enum(DeliveryStatus, 10), nullable=False, default=DeliveryStatus.QUEUED
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    # A worker claims a delivery until this time, so two workers never send it at once.
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(200))
    response_status: Mapped[int | None] = mapped_column(SmallInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    version: Mapped[AlertVersion] = relationship()
    subscriber: Mapped[Subscriber] = relationship()

    __table_args__ = (
        UniqueConstraint("version_id", "subscriber_id", "event"),
        Index("ix_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )

    def __repr__(self) -> str:
        return f"<Delivery {self.uuid} {self.channel.value} {self.status.value}>"
