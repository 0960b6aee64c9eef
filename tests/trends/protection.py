"""What a lead should be shown for a set of cases, worked out from the cases themselves (their
number and their record keys) by the published method, independently of the trend cube: the
tests compare dr-panel's figures with this, so a figure from the wrong cells, or unprotected,
fails."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, select

from dr_panel.cases.models import Case, CaseStatus, CaseType
from dr_panel.extensions import db
from dr_panel.privacy import disclosure
from dr_panel.reference.models import Area


def cell(
    *,
    areas: tuple[str, ...] = (),
    start: date | None = None,
    end: date | None = None,
    case_type: str | None = None,
) -> tuple[int, int]:
    """(number of counted cases, sum of their record keys) with events from ``start`` to
    ``end`` (inclusive) in ``areas`` (ONS codes; all when empty)."""
    stmt = select(func.count(), func.coalesce(func.sum(Case.record_key), 0)).where(
        Case.status != CaseStatus.DUPLICATE
    )
    if areas:
        stmt = stmt.join(Area, Area.id == Case.area_id).where(Area.ons_code.in_(areas))
    if start:
        stmt = stmt.where(Case.event_date >= start)
    if end:
        stmt = stmt.where(Case.event_date <= end)
    if case_type:
        stmt = stmt.where(Case.case_type == CaseType(case_type))
    n, keys = db.session.execute(stmt).one()
    return int(n), int(keys)


def shown(**filters: Any) -> disclosure.Shown:
    """The protected figure a lead should see for these cases."""
    n, keys = cell(**filters)
    return disclosure.shown_count(n, exact=False, key=keys)


def month(year: int, m: int) -> dict[str, date]:
    """``start``/``end`` filters for one calendar month."""
    end = date(year + (m == 12), m % 12 + 1, 1)
    return {"start": date(year, m, 1), "end": date.fromordinal(end.toordinal() - 1)}


def year(y: int) -> dict[str, date]:
    return {"start": date(y, 1, 1), "end": date(y, 12, 31)}
