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

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from dr_panel.audit.services import record
from dr_panel.auth.models import User
from dr_panel.cases.models import Case
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.privacy.identity import keys
from dr_panel.reviews.models import (
    FINDINGS_STATUSES,
    WORDS,
    CaseReview,
    Domain,
    Factor,
    LearningPoint,
    Preventability,
    Score,
    Theme,
    can_edit_findings,
    can_view_findings,
    learning_point_themes,
    open_for_findings,
)

# The models live in dr_panel.reviews.models; other packages still import them from here.
__all__ = [
    "FINDINGS_STATUSES",
    "WORDS",
    "CaseReview",
    "Domain",
    "Factor",
    "LearningPoint",
    "Preventability",
    "Score",
    "Theme",
    "can_edit_findings",
    "can_view_findings",
    "learning_point_themes",
    "open_for_findings",
]

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

MAX_TEXT = 20000
MAX_SHORT = 5000

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
    case: Case, data: FindingsInput, *, by: User, expected_version: int | None
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
    review.updated_by_id = by.id
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
                created_by_id=by.id,
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
                created_by_id=by.id,
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
