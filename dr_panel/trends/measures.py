"""The measures panels report on, beside the counts: how many deaths were known to treatment,
how often an overdose is a repeat, how long cases wait for the panel, how actions are going, and
which themes the panel records most.

These read the case, workflow, action and learning tables directly rather than the trend cube:
they need things the cube does not hold (a person's earlier events, the date a case was reviewed,
an action's state, learning themes), and every query is bounded by the user's areas and the
period, so it stays small.

Disclosure control is the trends' own (``dr_panel.privacy.disclosure``): for a viewer who is not
``exact_for`` the figures, the period is widened to whole years of the grid
(``queries.grid_range``), every count is perturbed by its cell key (the sum of its records'
keys: a case's ``record_key``; for an action, its case's key plus the action's id, fixed for
the life of the action) and then rounded, percentages are worked out from the shown figures, a
median is given only where the count shown is enough for a rate, and the top themes are chosen
and ordered by their shown counts.
"""

from __future__ import annotations

import calendar
import statistics
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.orm import aliased

from dr_panel.cases.models import (
    Case,
    CaseEvent,
    CaseStatus,
    CaseType,
    Substance,
    TreatmentStatus,
    case_substances,
)
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.privacy import disclosure
from dr_panel.privacy.disclosure import Shown
from dr_panel.reference.models import Area
from dr_panel.reviews.actions import OPEN_ACTION, Action, ActionStatus
from dr_panel.reviews.findings import LearningPoint, Theme, learning_point_themes
from dr_panel.trends import queries

if TYPE_CHECKING:
    from dr_panel.auth.models import User

TOP_THEMES = 5


@dataclass(frozen=True)
class Measure:
    """One figure for the panel, with what it counts and over which period."""

    key: str
    title: str
    value: str  # the headline as shown: "40%", "35 days", "*", "–"
    describes: str
    numerator: Shown | None = None
    denominator: Shown | None = None
    items: tuple[tuple[str, Shown], ...] = ()  # for lists (themes): label and count
    withheld: str = ""  # why the headline is not given, when it is not


@dataclass(frozen=True)
class Scope:
    """Areas and period a panel covers, and whether the viewer may see exact counts."""

    area_ids: tuple[int, ...]
    area_names: tuple[str, ...]
    date_from: date | None
    date_to: date | None  # last day included
    case_type: str | None
    substance: str | None
    exact: bool

    def period(self) -> str:
        if self.date_from and self.date_to:
            return f"events from {self.date_from:%d %B %Y} to {self.date_to:%d %B %Y}"
        if self.date_from:
            return f"events from {self.date_from:%d %B %Y}"
        if self.date_to:
            return f"events up to {self.date_to:%d %B %Y}"
        return "events of any date"

    def where(self) -> str:
        text = f"in {', '.join(self.area_names)}" if self.area_names else "in no area"
        if self.substance:
            text += f", mentioning {self.substance}"
        return text


def _month_end(d: date) -> date:
    return d.replace(day=calendar.monthrange(d.year, d.month)[1])


def scope_for(user: User, query: queries.TrendQuery) -> Scope:
    """The user's areas, narrowed to those the query names; the query's months, whole."""
    areas = [a for a in db.session.scalars(select(Area).order_by(Area.name))
             if a.id in user.area_ids]
    wanted = set(getattr(query, "area_codes", None) or ())
    if wanted:
        areas = [a for a in areas if a.ons_code in wanted]
    start = getattr(query, "date_from", None)
    end = getattr(query, "date_to", None)
    ids = tuple(a.id for a in areas)
    exact = disclosure.exact_for(user, ids)
    if not exact and start and end:  # whole years of the grid, as the trend tables
        first, last = queries.grid_range(getattr(query, "grain", "year"), queries._mi(start),
                                         queries._mi(end))
        start, end = queries._md(first), queries._md(last)
    return Scope(
        area_ids=ids,
        area_names=tuple(a.name for a in areas),
        date_from=start.replace(day=1) if start else None,
        date_to=_month_end(end) if end else None,
        case_type=getattr(query, "case_type", None) or None,
        substance=getattr(query, "substance", None) or None,
        exact=exact,
    )


def _case_filter(scope: Scope, case: Any = Case) -> list[ColumnElement[bool]]:
    cond: list[ColumnElement[bool]] = [
        case.area_id.in_(scope.area_ids or (-1,)),
        case.status != CaseStatus.DUPLICATE,
    ]
    if scope.date_from:
        cond.append(case.event_date >= scope.date_from)
    if scope.date_to:
        cond.append(case.event_date <= scope.date_to)
    if scope.substance:
        cond.append(
            exists(
                select(case_substances.c.case_id)
                .join(Substance, Substance.id == case_substances.c.substance_id)
                .where(case_substances.c.case_id == case.id, Substance.code == scope.substance)
            )
        )
    return cond


def _typed(scope: Scope) -> list[ColumnElement[bool]]:
    cond = _case_filter(scope)
    if scope.case_type:
        cond.append(Case.case_type == CaseType(scope.case_type))
    return cond


Cell = tuple[int, int]  # (count, sum of the records' keys)
CASE_KEYS = func.coalesce(func.sum(Case.record_key), 0)
# An action's record key: its case's key plus its own id (fixed, and different for each action
# of a case, so that two actions of one case do not count as one key twice).
ACTION_KEYS = func.coalesce(func.sum(Case.record_key + Action.id), 0)


def _cell(stmt: Any) -> Cell:
    """(count, key sum) from a statement selecting those two."""
    n, keys = db.session.execute(stmt).one()
    return int(n or 0), int(keys or 0)


def _shown(cell: Cell, scope: Scope) -> Shown:
    return disclosure.shown_count(cell[0], exact=scope.exact, key=cell[1])


def _share(key: str, title: str, num: Cell, den: Cell, scope: Scope, describes: str) -> Measure:
    shown_num, shown_den = _shown(num, scope), _shown(den, scope)
    value = disclosure.percent(shown_num, shown_den)
    return Measure(
        key=key,
        title=title,
        value=value,
        describes=f"{describes} ({shown_num.text} of {shown_den.text}).",
        numerator=shown_num,
        denominator=shown_den,
        withheld="" if value not in (disclosure.SUPPRESSED, "–") else (
            "Not given: too few cases to show." if value == disclosure.SUPPRESSED
            else "Not given: there are no cases to count."
        ),
    )


# -- the measures ---------------------------------------------------------------------------------


def known_to_treatment(scope: Scope) -> Measure:
    deaths = _case_filter(scope) + [Case.case_type == CaseType.DEATH]
    den = _cell(select(func.count(), CASE_KEYS).select_from(Case).where(*deaths))
    num = _cell(
        select(func.count(), CASE_KEYS)
        .select_from(Case)
        .where(
            *deaths,
            Case.treatment_status.in_([TreatmentStatus.IN_TREATMENT, TreatmentStatus.LEFT_6M]),
        )
    )
    return _share(
        "known_to_treatment",
        "Deaths known to treatment",
        num,
        den,
        scope,
        "Share of suspected drug-related deaths where the person was in treatment or had left "
        f"treatment in the 6 months before, of all deaths ({scope.period()}, {scope.where()}; "
        "deaths with treatment status not known count in the total)",
    )


def repeat_nfo(scope: Scope) -> Measure:
    earlier = aliased(Case)
    nfos = _case_filter(scope) + [Case.case_type == CaseType.NFO]
    den = _cell(select(func.count(), CASE_KEYS).select_from(Case).where(*nfos))
    had_earlier = exists(
        select(earlier.id).where(
            earlier.person_id == Case.person_id,
            earlier.case_type == CaseType.NFO,
            earlier.status != CaseStatus.DUPLICATE,
            or_(
                earlier.event_date < Case.event_date,
                and_(earlier.event_date == Case.event_date, earlier.id < Case.id),
            ),
        )
    )
    num = _cell(select(func.count(), CASE_KEYS).select_from(Case).where(*nfos, had_earlier))
    return _share(
        "repeat_nfo",
        "Repeat non-fatal overdoses",
        num,
        den,
        scope,
        "Share of non-fatal overdoses whose person had an earlier non-fatal overdose on record "
        f"(in any area), of all non-fatal overdoses ({scope.period()}, {scope.where()})",
    )


def days_to_review(scope: Scope) -> Measure:
    first_review = (
        select(CaseEvent.case_id, func.min(CaseEvent.occurred_at).label("at"))
        .where(CaseEvent.to_status == CaseStatus.REVIEWED)
        .group_by(CaseEvent.case_id)
        .subquery()
    )
    rows = db.session.execute(
        select(Case.notified_on, first_review.c.at, Case.record_key)
        .join(first_review, first_review.c.case_id == Case.id)
        .where(*_typed(scope))
    ).all()
    days = [max(0, (at.date() - notified).days) for notified, at, _ in rows]
    n = len(days)
    shown_n = _shown((n, sum(key for _, _, key in rows)), scope)
    # Decided from the count shown (for a protected figure), so "not given" cannot narrow it.
    enough = n > 0 and (scope.exact or disclosure.rate_allowed_shown(shown_n))
    describes = (
        "Median days from notification to the panel's review (the first move to 'reviewed'), "
        f"over cases reviewed so far ({shown_n.text}; {scope.period()}, {scope.where()})."
    )
    if not enough:
        return Measure(
            key="days_to_review",
            title="Time from notification to panel review",
            value="–",
            describes=describes,
            numerator=shown_n,
            withheld=(
                "Not given: no case has been reviewed yet." if n == 0 else
                "Not given: a median is given only where the number of cases reviewed, as "
                f"shown, is at least {disclosure.min_events_for_rate()}."
            ),
        )
    median = statistics.median(days)
    return Measure(
        key="days_to_review",
        title="Time from notification to panel review",
        value=f"{median:.0f} days" if median != 1 else "1 day",
        describes=describes,
        numerator=shown_n,
    )


def actions_measures(scope: Scope, today: date | None = None) -> list[Measure]:
    today = today or utcnow().date()
    base = select(func.count(), ACTION_KEYS).select_from(Action).join(
        Case, Case.id == Action.case_id)
    cond = _typed(scope)
    total = _cell(base.where(*cond))
    done = _cell(base.where(*cond, Action.status == ActionStatus.DONE))
    overdue = _cell(base.where(*cond, Action.status.in_(OPEN_ACTION), Action.due_on < today))
    about = f"actions set on cases of {scope.period()}, {scope.where()}"
    return [
        _share(
            "actions_done",
            "Actions completed",
            done,
            total,
            scope,
            f"Share of {about} that are done, with evidence",
        ),
        _share(
            "actions_overdue",
            "Actions overdue",
            overdue,
            total,
            scope,
            f"Share of {about} still open or in progress after their due date "
            f"(as at {today:%d %B %Y})",
        ),
    ]


def top_themes(scope: Scope, limit: int = TOP_THEMES) -> Measure:
    tagged = (
        select(Theme.name.label("theme"), Case.id.label("case_id"),
               Case.record_key.label("record_key"))
        .select_from(LearningPoint)
        .join(learning_point_themes, learning_point_themes.c.learning_point_id == LearningPoint.id)
        .join(Theme, Theme.id == learning_point_themes.c.theme_id)
        .join(Case, Case.id == LearningPoint.case_id)
        .where(*_typed(scope))
        .distinct()
        .subquery()
    )
    rows = db.session.execute(
        select(tagged.c.theme, func.count(), func.sum(tagged.c.record_key)).group_by(
            tagged.c.theme)
    ).all()
    shown = [(name, _shown((int(n), int(keys or 0)), scope)) for name, n, keys in rows]
    # Chosen and ordered by the shown figures, so neither can rank counts the viewer cannot see.
    ranked = sorted(shown, key=lambda it: (-(it[1].value or 0), -(not it[1].suppressed), it[0]))
    items = tuple(ranked[:limit])
    return Measure(
        key="top_themes",
        title="Themes most often recorded",
        value=str(len(items)) if items else "–",
        describes=(
            f"The {limit} themes the panel tagged learning points with on the most cases, and on "
            f"how many cases ({scope.period()}, {scope.where()})."
        ),
        items=items,
        withheld="" if items else "No learning points recorded yet.",
    )


def measures_panel(user: User, query: queries.TrendQuery) -> list[Measure]:
    """Every measure for the user's areas (narrowed by the query) and the query's period."""
    scope = scope_for(user, query)
    out: list[Measure] = []
    if scope.case_type in (None, "death"):
        out.append(known_to_treatment(scope))
    if scope.case_type in (None, "nfo"):
        out.append(repeat_nfo(scope))
    out.append(days_to_review(scope))
    out.extend(actions_measures(scope))
    out.append(top_themes(scope))
    return out


def panel_note(user: User, query: queries.TrendQuery) -> str:
    """The disclosure sentence printed under the panel."""
    return disclosure.note(scope_for(user, query).exact)
