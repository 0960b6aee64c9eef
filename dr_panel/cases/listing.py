"""The case list, for both doors: the page (``cases.list_cases``) and the API
(``api.cases.list_cases``) take the same filters under the same names and find the same cases.

Only the paging differs: the page walks newest-first by keyset (``services.page_of_cases``:
"older" continues after the last case shown), the API keeps its numbered ``page``/``per_page``
pages, which programs already use and which a client can fetch in any order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Select, func, or_, select

from dr_panel.auth.models import User
from dr_panel.cases.models import Case, RetiredReference, Substance
from dr_panel.cases.services import CaseFilter, visible_cases
from dr_panel.extensions import db
from dr_panel.search import contains


@dataclass(frozen=True)
class CaseSearch:
    """What a person asks of the list: the filters, and ``q``, (part of) a reference."""

    filter: CaseFilter = field(default_factory=CaseFilter)
    q: str | None = None


def matching_cases(user: User, search: CaseSearch) -> Select[tuple[Case]]:
    """The cases ``user`` may list that match ``search``, newest event first. A reference of a
    case the user may not see finds nothing, exactly as a reference that does not exist."""
    stmt = visible_cases(user, search.filter)
    typed = (search.q or "").strip().upper()
    if typed:
        # A reference as quoted in older minutes finds the case under its former one too.
        stmt = stmt.where(or_(
            contains(Case.reference, typed),
            Case.id.in_(select(RetiredReference.case_id).where(
                contains(RetiredReference.reference, typed))),
        ))
    return stmt


def substance_codes() -> list[str]:
    """Every substance code, retired ones too: the list may be filtered by any of them."""
    return list(db.session.scalars(select(Substance.code).order_by(Substance.code)))


def area_problem(user: User, area_code: str | None) -> str | None:
    """Why ``area_code`` cannot filter ``user``'s list (it is not one of their areas), if so."""
    mine = sorted(a.ons_code for a in user.areas)
    if area_code is None or area_code in mine:
        return None
    return ("not one of your areas. Use the ONS code of an area you work in: "
            + (", ".join(mine) or "you have none") + ".")


def linked_counts(cases: Iterable[Case], user: User) -> dict[int, int]:
    """How many other cases of each case's person ``user`` can see (never those they cannot),
    by person id."""
    person_ids = {c.person_id for c in cases}
    if not person_ids:
        return {}
    rows = db.session.execute(
        select(Case.person_id, func.count())
        .where(Case.person_id.in_(person_ids), Case.area_id.in_(user.area_ids or {-1}))
        .group_by(Case.person_id)
    )
    return {pid: max(n - 1, 0) for pid, n in rows}
