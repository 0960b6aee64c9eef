"""Who may learn that a person is held in dr-panel: one rule for every form that checks free text
against stored people (drug-concern reports on every door, reveal reasons).

The identifier detector (``dr_panel.alerts.leakgate.check_fields``) finds two sorts of spans:
patterns (an NHS-number-like run of digits, a date, a postcode, an address, a phone number, an
e-mail address), which say nothing about what is stored, and matches against stored people. A
stored match is only shown to a user who may already see one of the matched people's cases: a
coordinator or panel member whose areas hold a case of that person (``Case.can_view``). For
anyone else (the public, a partner, a lead, a colleague in another area) showing it would tell
them that the person died or overdosed, so the caller holds it instead, out of their sight.

A person with cases in several areas is visible to a user of any of them; a finding that matched
several people (two people of the same name) is shown if the user may see any one of them, since
it would have been found for that one alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeGuard

from sqlalchemy import select

from dr_panel.auth.models import User
from dr_panel.extensions import db
from dr_panel.privacy.detector import Span
from dr_panel.roles import Role

# The roles that see people's cases at all (``Case.can_view``); the others never see a match.
CASE_ROLES = frozenset({Role.COORDINATOR, Role.PANEL_MEMBER})


def is_stored(finding: Span) -> bool:
    """True for a match against a stored person, False for a pattern."""
    return finding.stored


def person_ids_of(finding: Span) -> frozenset[int]:
    """The internal ids of the people a stored finding matched (empty for a pattern; a stored
    finding without them is held from everyone)."""
    return finding.person_ids


def _may_see_cases(user: User | None) -> TypeGuard[User]:
    """Flask-Login's anonymous user counts as the public, as None does."""
    return (
        user is not None
        and bool(getattr(user, "is_authenticated", False))
        and getattr(user, "role", None) in CASE_ROLES
        and bool(getattr(user, "area_ids", None))
    )


def visible_people(user: User | None, person_ids: Iterable[int]) -> frozenset[int]:
    """Those of ``person_ids`` with a case in one of ``user``'s areas, for a role that sees
    cases. One query, run even when there is no one to look for, so that a form with a stored
    match takes no longer than one without."""
    from dr_panel.cases.models import Case

    if not _may_see_cases(user):
        return frozenset()
    wanted = sorted(set(person_ids)) or [0]  # no person has id 0
    rows = db.session.scalars(
        select(Case.person_id)
        .where(Case.person_id.in_(wanted), Case.area_id.in_(sorted(user.area_ids)))
        .distinct()
    )
    return frozenset(rows)


def may_see_person(user: User | None, person_id: int) -> bool:
    """May ``user`` learn that this person is held? Only if they may see one of their cases.
    ``user`` None is the public."""
    return person_id in visible_people(user, [person_id])


def split_findings(
    findings: Iterable[Span], user: User | None
) -> tuple[list[Span], list[Span]]:
    """``(shown, held)``: patterns and the stored matches ``user`` may see are shown; every other
    stored match is held, never to be shown to ``user`` nor to change what they see."""
    findings = list(findings)
    ids = {pid for f in findings if is_stored(f) for pid in person_ids_of(f)}
    visible = visible_people(user, ids)
    shown: list[Span] = []
    held: list[Span] = []
    for f in findings:
        if not is_stored(f) or person_ids_of(f) & visible:
            shown.append(f)
        else:
            held.append(f)
    return shown, held
