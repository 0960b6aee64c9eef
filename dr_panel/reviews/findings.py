"""Findings and learning for a reviewed case: contributory and modifiable factors in four domains
(scored like the child-death analysis form), missed opportunities, a preventability judgement, and
learning points tagged with themes from a maintained list. Free text is encrypted at rest, bound to
its row's UUID. Themes are the anonymised feed for signals and trends.

One ``CaseReview`` row per case carries a version column (optimistic locking): every save bumps
it, and a save made from a page opened before someone else's save is refused, input kept.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Column, ForeignKey, Integer, String, Table, Text, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.orm.exc import StaleDataError

from dr_panel.audit.services import record
from dr_panel.cases.identity import keys
from dr_panel.cases.models import Case, CaseStatus, Labelled, str_enum
from dr_panel.dbtypes import PublicIdMixin, UTCDateTime, utcnow
from dr_panel.extensions import db

# -- vocabulary -----------------------------------------------------------------------------------


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


WORDS: dict[Any, str] = {
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

# The common themes, seeded by migration 0007 (and by ensure_themes for create_all databases).
SEED_THEMES: list[tuple[str, str]] = [
    ("left_treatment", "Left treatment in the last 6 months"),
    ("prison_release", "Recent prison release"),
    ("polysubstance_sedatives", "Polysubstance use with benzodiazepines or gabapentinoids"),
    ("no_naloxone", "No naloxone at the scene"),
    ("using_alone", "Using alone"),
    ("children_removed", "Children recently removed into care"),
    ("housing_instability", "Housing instability"),
    ("mental_health_crisis", "Mental-health crisis"),
    ("reduced_tolerance", "Reduced tolerance"),
    ("new_supply", "New or contaminated supply"),
]

# Findings are recorded from when the case is ready for panel.
FINDINGS_STATUSES = frozenset(
    {
        CaseStatus.READY_FOR_PANEL,
        CaseStatus.REVIEWED,
        CaseStatus.ACTIONS_IN_PROGRESS,
        CaseStatus.CLOSED,
    }
)
MAX_TEXT = 20000
MAX_SHORT = 5000

# -- models ---------------------------------------------------------------------------------------


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

    def can_view(self, user: Any) -> bool:
        return can_view_findings(self.case, user)

    def can_edit(self, user: Any) -> bool:
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


# -- rules ----------------------------------------------------------------------------------------


def can_view_findings(case: Case, user: Any) -> bool:
    return bool(case.can_view(user))


def can_edit_findings(case: Case, user: Any) -> bool:
    """Coordinators and panel members of the case's area record findings (DESIGN.md)."""
    return user.role in ("coordinator", "panel_member") and case.area_id in user.area_ids


def open_for_findings(case: Case) -> bool:
    return case.status in FINDINGS_STATUSES


# -- themes ---------------------------------------------------------------------------------------


def ensure_themes() -> int:
    """Add any seed theme that is missing (by code). Returns how many were added."""
    have = set(db.session.scalars(select(Theme.code)))
    added = 0
    for code, name in SEED_THEMES:
        if code not in have:
            db.session.add(Theme(code=code, name=name, is_active=True))
            added += 1
    db.session.flush()
    return added


def active_themes() -> list[Theme]:
    return list(db.session.scalars(select(Theme).where(Theme.is_active).order_by(Theme.id)))


# -- saving ---------------------------------------------------------------------------------------


class FindingsError(ValueError):
    def __init__(self, message: str, field: str = "missed_opportunities") -> None:
        super().__init__(message)
        self.field = field


class StaleFindings(FindingsError):
    pass


STALE_MESSAGE = (
    "Someone else saved these findings after you opened them, so your changes were not saved. "
    "Your entries are still below and what is saved now is shown beside them: merge the two, "
    "then save again."
)


@dataclass
class NewFactor:
    domain: Domain
    description: str
    score: Score | None
    is_modifiable: bool = False


@dataclass
class FindingsInput:
    missed_opportunities: str
    preventability: Preventability
    factors: list[NewFactor] = field(default_factory=list)
    learning_point: str = ""
    theme_codes: list[str] = field(default_factory=list)

    def __repr__(self) -> str:  # never the text
        return f"<FindingsInput {len(self.factors)} factors>"


def review_of(case: Case) -> CaseReview | None:
    return db.session.scalar(select(CaseReview).where(CaseReview.case_id == case.id))


def _seal(table: str, column: str, record_uuid: uuid.UUID, text: str) -> str:
    return keys().encrypt(text, table=table, column=column, record=str(record_uuid))


def _open(table: str, column: str, record_uuid: uuid.UUID, stored: str | None) -> str | None:
    if not stored:
        return None
    return keys().decrypt(stored, table=table, column=column, record=str(record_uuid))


def save_findings(
    case: Case, data: FindingsInput, *, by: Any, expected_version: int | None
) -> CaseReview:
    """Save the judgement, add the new factors and the learning point. ``expected_version`` is
    the version the form was opened at (0 when nothing was saved yet)."""
    if not can_edit_findings(case, by):
        raise FindingsError("Only the panel of this case's area can record its findings.")
    if not open_for_findings(case):
        raise FindingsError(closed_message(case))
    review = review_of(case)
    current = review.version if review is not None else 0
    if expected_version != current:
        raise StaleFindings(STALE_MESSAGE)
    missed = (data.missed_opportunities or "").strip()
    if len(missed) > MAX_TEXT:
        raise FindingsError("Keep the missed opportunities to 20,000 characters.")
    factors = _check_factors(data.factors)
    point = (data.learning_point or "").strip()
    if len(point) > MAX_SHORT:
        raise FindingsError("Keep a learning point to 5,000 characters.", "learning_point")
    themes: list[Theme] = []
    if data.theme_codes:
        by_code = {t.code: t for t in active_themes()}
        unknown = [c for c in data.theme_codes if c not in by_code]
        if unknown:
            raise FindingsError("Tick themes from the list only.", "themes")
        if not point:
            raise FindingsError(
                "Write the learning point the ticked themes belong to.", "learning_point"
            )
        themes = [by_code[c] for c in dict.fromkeys(data.theme_codes)]

    if review is None:
        review = CaseReview(uuid=uuid.uuid4(), case=case)
        db.session.add(review)
    review.missed_opportunities_enc = (
        _seal("case_reviews", "missed_opportunities", review.uuid, missed) if missed else None
    )
    review.preventability = data.preventability
    review.updated_by_id = getattr(by, "id", None)
    review.updated_at = utcnow()  # always a change, so every save moves the version on
    for f in factors:
        row_uuid = uuid.uuid4()
        db.session.add(
            Factor(
                uuid=row_uuid,
                case_id=case.id,
                domain=f.domain,
                description_enc=_seal("case_factors", "description", row_uuid, f.description),
                score=f.score,
                is_modifiable=f.is_modifiable,
                created_by_id=getattr(by, "id", None),
            )
        )
    if point:
        row_uuid = uuid.uuid4()
        db.session.add(
            LearningPoint(
                uuid=row_uuid,
                case_id=case.id,
                text_enc=_seal("learning_points", "text", row_uuid, point),
                themes=themes,
                created_by_id=getattr(by, "id", None),
            )
        )
    try:
        db.session.flush()
    except (StaleDataError, IntegrityError):  # a colleague's save landed between read and write
        db.session.rollback()
        raise StaleFindings(STALE_MESSAGE) from None
    record(
        "case.findings_saved",
        actor=by,
        object_type="cases",
        object_uuid=case.uuid,
        details={
            "version": review.version,
            "factors_added": len(factors),
            "learning_points_added": 1 if point else 0,
            "themes_tagged": len(themes),
        },
    )
    return review


def _check_factors(factors: list[NewFactor]) -> list[NewFactor]:
    out = []
    for f in factors:
        description = (f.description or "").strip()
        prefix = f.domain.value
        if not description and f.score is None:
            continue
        if not description:
            raise FindingsError(
                f"Describe the factor in {f.domain.label.lower()} you scored.",
                f"{prefix}_description",
            )
        if f.score is None:
            raise FindingsError(
                f"Score the factor in {f.domain.label.lower()}, from 'Information not "
                "available' to 'Fully explains'.",
                f"{prefix}_score",
            )
        if len(description) > MAX_SHORT:
            raise FindingsError(
                "Keep a factor's description to 5,000 characters.", f"{prefix}_description"
            )
        out.append(NewFactor(f.domain, description, f.score, f.is_modifiable))
    return out


def closed_message(case: Case) -> str:
    return (
        f"Findings are recorded once a case is ready for panel; this case is "
        f"{case.status.label.lower()}. A coordinator moves it on when the information is in."
    )


# -- reading --------------------------------------------------------------------------------------


@dataclass
class ShownFactor:
    factor: Factor
    description: str | None


@dataclass
class ShownPoint:
    point: LearningPoint
    text: str | None


@dataclass
class FindingsView:
    review: CaseReview | None
    missed_opportunities: str | None
    factors: dict[Domain, list[ShownFactor]]
    learning_points: list[ShownPoint]

    @property
    def version(self) -> int:
        return self.review.version if self.review is not None else 0


def findings_of(case: Case) -> FindingsView:
    review = review_of(case)
    missed = (
        _open("case_reviews", "missed_opportunities", review.uuid, review.missed_opportunities_enc)
        if review is not None
        else None
    )
    grouped: dict[Domain, list[ShownFactor]] = {d: [] for d in Domain}
    for f in db.session.scalars(
        select(Factor).where(Factor.case_id == case.id).order_by(Factor.id)
    ):
        grouped[f.domain].append(
            ShownFactor(f, _open("case_factors", "description", f.uuid, f.description_enc))
        )
    points = [
        ShownPoint(p, _open("learning_points", "text", p.uuid, p.text_enc))
        for p in db.session.scalars(
            select(LearningPoint).where(LearningPoint.case_id == case.id).order_by(LearningPoint.id)
        )
    ]
    return FindingsView(review, missed, grouped, points)
