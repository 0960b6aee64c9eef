"""The record-level extract, for national returns and research: one row per counted event.

What is in a row, and what never is:

- no identifier (name, date of birth, NHS number, address, postcode, case reference or UUID) and
  no free text: only coded fields;
- every field an acquaintance could know is a quasi-identifier: period, area and postcode
  district, age band, sex, case type, setting, the substances (as a set), the overdose's outcome
  and treatment status. The file is k-anonymous over all of them together: any combination of
  their values in the file is shared by at least k rows, so someone who knows all of that about
  one event still finds k rows that could be it;
- to get there the fields are recoded locally (``dr_panel.trends.recoding``: Mondrian-style
  partitioning over the hierarchies in ``HIERARCHIES``), not for the whole file at once. The
  events are first cut into blocks by area, year and quarter, as far as each block keeps k
  events (an area's quiet quarters are shown together as their year, so its busy quarters keep
  their label); then each block is refined by case type, age, sex, substances, setting,
  treatment status, outcome, month and postcode district, in the order of the weights, as far
  as k allows. A busy area keeps its months and districts; a quiet one gives up detail only
  where it must. On the demo data about 87-92% of rows keep a quarter (or month) and an area,
  whatever the day the demo is loaded;
- route and whether naloxone was given are kept as recorded; they are not quasi-identifiers (an
  acquaintance rarely knows them), and they are what the file is for;
- a pseudonymous person id: HMAC-SHA256 of the person's internal id under a random salt made for
  this extract and never stored, so it links one person's events within the extract but cannot be
  linked across two extracts (or back to the person by anyone, us included).

**k is never below the aggregate rule's threshold.** The trends pages show counts of 1-7 as
``*`` (``DISCLOSURE_SUPPRESS_BELOW``, 8). A class of 5-7 alike rows would state such a count
exactly, so the extract's k is ``max(EXTRACT_K, DISCLOSURE_SUPPRESS_BELOW)``: 8 by default.
The other answer, releasing a random sample, would make the file useless for national returns
(which need every death) and, redrawn on every request, could be averaged away; raising k costs
only detail, which local recoding keeps where the data allow.

**Suppression** happens only when fewer than k events match the request: nothing can then be
released. The file and its metadata never state how many events there were: with nothing
suppressed the rows are all there is; with everything suppressed the metadata says "fewer than
k", the same as the aggregate rule's ``*``. Every extract is audited with its exact figures
(``exports.export_extract``), which only the audit log holds.

**What this does not cover** (why the file is for named recipients, and audited): a file of
rows is a file of exact counts of 8 or more (its rows), so it does not carry the trends pages'
rounding; two extracts over overlapping areas or months can be differenced (their row counts
give the events in the difference, however few); and an acquaintance who knows several of one
person's events may single out that person's pseudonymous id, and so the events of theirs they
did not know. k-anonymity holds per row, not per person.

Duplicates (cases merged as the same event) are not counted.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from flask import current_app
from sqlalchemy import select

from dr_panel.cases.models import Case, CaseStatus, CaseType, Person, Substance, case_substances
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.privacy import disclosure
from dr_panel.reference.models import Area
from dr_panel.roles import Role
from dr_panel.trends import recoding

if TYPE_CHECKING:
    from dr_panel.auth.models import User

SUPPRESSED = "*"  # a field given up entirely: any value within the extract


@dataclass(frozen=True)
class Hierarchy:
    """One quasi-identifier's generalisation ladder. ``levels`` name each level, coarsest first
    (level 0 is always "*"); ``weights[d]`` is what specialising from level d to d + 1 is worth
    to the file's users: higher weights are kept first."""

    levels: tuple[str, ...]
    weights: tuple[float, ...]


# The weights put period (to the quarter) and area first, as national returns need them, then
# case type; a month or a postcode district is worth less than a usable age band or sex.
HIERARCHIES: dict[str, Hierarchy] = {
    "period": Hierarchy(("all", "year", "quarter", "month"), (100, 90, 20)),
    "place": Hierarchy(("all", "area", "postcode district"), (105, 30)),
    "case_type": Hierarchy(("all", "case type"), (80,)),
    "age_band": Hierarchy(("all", "wider age band", "age band"), (60, 25)),
    "sex": Hierarchy(("all", "female, male, other or unknown", "as recorded"), (50, 5)),
    "substances": Hierarchy(
        ("all", "any opioid or no opioid", "substance groups", "substances"), (45, 40, 20)
    ),
    "setting": Hierarchy(("all", "setting group", "setting"), (35, 15)),
    "treatment_status": Hierarchy(("all", "treatment group", "treatment status"), (35, 15)),
    "nfo_outcome": Hierarchy(("all", "outcome group", "outcome"), (30, 10)),
}
QUASI_IDENTIFIERS = tuple(HIERARCHIES)
# The first phase cuts the events into blocks by area and quarter (as far as each has k events);
# the other fields are then refined within each block. See recoding.partition.
FIRST = {"place": 1, "period": 2}
# Kept for the page: each quasi-identifier's ladder, finest first.
LEVELS: dict[str, tuple[str, ...]] = {q: h.levels[::-1] for q, h in HIERARCHIES.items()}

WIDER_AGE = {
    "under 18": "under 25",
    "18-24": "under 25",
    "25-34": "25-44",
    "35-44": "25-44",
    "45-54": "45-64",
    "55-64": "45-64",
    "65+": "65+",
    "unknown": "unknown",
}
# Groups are written out as their members joined by "/", so a reader (or a program) can tell
# what a grouped value covers without a look-up table.
SETTING_GROUPS = ("home/hostel", "street/other", "custody/hospital/prison")
TREATMENT_GROUPS = ("in_treatment/left_6m", "previously/never", "unknown")
OUTCOME_GROUPS = (
    "not_applicable",
    "conveyed",
    "treated_at_scene/refused_conveyance/self_discharged",
    "other/unknown",
)
SEX_GROUPS = ("female", "male", "other/unknown")


def _group(value: str, groups: Sequence[str]) -> str:
    return next((g for g in groups if value in g.split("/")), value)


# The columns of the file, in order, with what each holds (for the metadata sheet).
COLUMNS: dict[str, str] = {
    "person_pseudo_id": (
        "Pseudonymous person id: links one person's events within this extract only; a new "
        "extract gives new ids."
    ),
    "case_type": "death (suspected drug-related death) or nfo (non-fatal overdose), or *.",
    "period": (
        "When the event happened: month (YYYY-MM), quarter (YYYY-Qn) or year (YYYY), or *. "
        "Rows of one year may mix levels: a year's quiet quarters together are shown as the "
        "year, beside its busier quarters."
    ),
    "area": "ONS code of the area the case belongs to, or *.",
    "postcode_district": "Outward code of the person's postcode, unknown, or *.",
    "age_band": "Age band at the event, a wider band (under 25, 25-44, 45-64, 65+), unknown, or *.",
    "sex": "Sex as recorded, other/unknown together, or *.",
    "setting": (
        "Where it happened (home, hostel, street, custody, hospital, prison, other), a group "
        "written as its members (home/hostel, street/other, custody/hospital/prison), or *."
    ),
    "route": "Route of use, as recorded.",
    "substances": (
        "Suspected substance codes separated by ';' (none if none recorded); or their groups "
        "(groups:opioids;stimulants, groups:none); or 'any opioid' / 'no opioid'; or *."
    ),
    "naloxone_given": "yes, no or unknown, as recorded.",
    "nfo_outcome": (
        "For overdoses: outcome, or a group written as its members "
        "(treated_at_scene/refused_conveyance/self_discharged, other/unknown); "
        "not_applicable for deaths; or *."
    ),
    "treatment_status": (
        "Known to treatment at the time of the event, or a group (in_treatment/left_6m, "
        "previously/never), or *."
    ),
}
# The file's columns that hold quasi-identifiers (place is two columns).
QUASI_COLUMNS = (
    "period", "area", "postcode_district", "age_band", "sex", "case_type", "setting",
    "substances", "nfo_outcome", "treatment_status",
)


class ExtractError(ValueError):
    """A request that cannot be served; the message says what to change."""


@dataclass(frozen=True)
class ExtractRequest:
    area_codes: tuple[str, ...]
    date_from: date  # first day of the first month
    date_to: date  # last day included
    case_type: str | None = None  # "death", "nfo" or None for both


@dataclass
class Extract:
    """A k-anonymous extract and its report. Rows hold no identifier and no free text.
    ``events`` and ``suppressed`` are exact: for the audit log only, never for the file."""

    request: ExtractRequest
    k: int
    rows: list[dict[str, str]]
    events: int
    suppressed: int
    # per quasi-identifier, how many rows sit at each level (level name -> rows)
    levels: dict[str, dict[str, int]]
    generated_at: datetime = field(default_factory=utcnow)

    def __repr__(self) -> str:
        return f"<Extract k={self.k} rows={len(self.rows)}>"

    @property
    def columns(self) -> list[str]:
        return list(COLUMNS)

    def describes(self) -> str:
        kinds = {"death": "suspected drug-related death", "nfo": "non-fatal overdose"}
        what = kinds.get(self.request.case_type or "", "death or non-fatal overdose")
        return (
            f"One row per {what} notified (merged duplicates not counted) in "
            f"{', '.join(self.request.area_codes)}, events from "
            f"{self.request.date_from:%d %B %Y} to {self.request.date_to:%d %B %Y}."
        )

    def suppression(self) -> str:
        """What was left out, in words that give no exact count (see the module docstring)."""
        if self.events == 0:
            return "none: no event matched"
        if self.rows:
            return "none: every matching event is in the file"
        return (
            f"all: fewer than {self.k} events matched, too few to be {self.k}-anonymous, so "
            "none can be released"
        )

    def detail_kept(self) -> str:
        """Per field, the share of rows at each level (percentages of the rows in the file)."""
        if not self.rows:
            return "no rows"
        total = len(self.rows)
        parts = []
        for q, hierarchy in HIERARCHIES.items():
            shares = ", ".join(
                f"{name} {100 * self.levels[q].get(name, 0) / total:.0f}%"
                for name in reversed(hierarchy.levels)
                if self.levels[q].get(name)
            )
            parts.append(f"{q.replace('_', ' ')}: {shares}")
        return "; ".join(parts) + "."


def utility(ext: Extract) -> dict[str, float]:
    """Shares of the matching events whose row keeps each kind of detail, and the share
    suppressed: the figures quoted for the extract's usefulness (tests and README)."""
    if ext.events == 0:
        return {}
    rows = ext.rows

    def share(test: Any) -> float:
        return sum(1 for r in rows if test(r)) / ext.events

    def fine(r: dict[str, str]) -> bool:
        return len(r["period"]) == 7  # YYYY-MM or YYYY-Qn

    return {
        "month": share(lambda r: len(r["period"]) == 7 and "Q" not in r["period"]),
        "quarter or finer": share(fine),
        "area": share(lambda r: r["area"] != SUPPRESSED),
        "postcode district": share(lambda r: r["postcode_district"] != SUPPRESSED),
        "quarter or finer and area": share(lambda r: fine(r) and r["area"] != SUPPRESSED),
        "suppressed": ext.suppressed / ext.events,
    }


# -- building ---------------------------------------------------------------------------------


def extract_k() -> int:
    """The k in force: ``EXTRACT_K``, never below the aggregate rule's threshold (module doc)."""
    configured = int(current_app.config.get("EXTRACT_K", 5))
    return max(1, configured, disclosure.suppress_below())


def allowed_areas(user: User) -> list[Area]:
    """The areas a user may extract from: their own, active or not (old data stays theirs)."""
    return sorted(
        (a for a in db.session.scalars(select(Area)) if a.id in user.area_ids),
        key=lambda a: a.name,
    )


def build(req: ExtractRequest, user: User) -> Extract:
    """Read the events, recode, suppress. Does not audit: ``exports.export_extract`` does,
    when the file is written."""
    if user.role not in (Role.LEAD, Role.COORDINATOR):
        raise ExtractError("Only leads and coordinators can make an extract.")
    if req.date_to < req.date_from:
        raise ExtractError("The end of the period is before its start: swap them.")
    mine = {a.ons_code: a for a in allowed_areas(user)}
    if not req.area_codes:
        raise ExtractError("Choose at least one of your areas.")
    unknown = [c for c in req.area_codes if c not in mine]
    if unknown:
        raise ExtractError("Choose only from your own areas (the ones listed).")
    area_ids = {mine[c].id: c for c in req.area_codes}
    if not disclosure.exact_for(user, area_ids):
        req = whole_years(req)
    groups = {code: group for code, group in db.session.execute(
        select(Substance.code, Substance.group)
    )}
    records = list(_records(req, area_ids))
    return anonymise(req, records, extract_k(), groups)


def whole_years(req: ExtractRequest) -> ExtractRequest:
    """The request widened to whole calendar years, as the trends pages' grid does for leads:
    two extracts over overlapping runs of months could otherwise be subtracted, row by row, to
    single out the events of one month (fewer than k of them, with more detail than any file
    shows). Whole years are periods of the grid, so the difference of two is whole years too."""
    return replace(
        req, date_from=date(req.date_from.year, 1, 1), date_to=date(req.date_to.year, 12, 31)
    )


def _records(req: ExtractRequest, area_codes: dict[int, str]) -> Iterable[dict[str, Any]]:
    conditions = [
        Case.area_id.in_(area_codes),
        Case.event_date >= req.date_from,
        Case.event_date <= req.date_to,
        Case.status != CaseStatus.DUPLICATE,
    ]
    if req.case_type:
        conditions.append(Case.case_type == CaseType(req.case_type))
    stmt = (
        select(
            Case.id,
            Case.person_id,
            Case.case_type,
            Case.area_id,
            Case.event_date,
            Case.age_band,
            Case.postcode_district,
            Case.setting,
            Case.route,
            Case.naloxone_given,
            Case.nfo_outcome,
            Case.treatment_status,
            Person.sex,
        )
        .join(Person, Person.id == Case.person_id)
        .where(*conditions)
        .order_by(Case.id)
    )
    substances: dict[int, list[str]] = defaultdict(list)
    sub_stmt = (
        select(case_substances.c.case_id, Substance.code)
        .join(Substance, Substance.id == case_substances.c.substance_id)
        .join(Case, Case.id == case_substances.c.case_id)
        .where(*conditions)
    )
    for case_id, code in db.session.execute(sub_stmt):
        substances[case_id].append(code)
    salt = secrets.token_bytes(32)  # this extract's only; never stored, never logged
    for row in db.session.execute(stmt):
        yield {
            "person_pseudo_id": _pseudonym(salt, row.person_id),
            "case_type": row.case_type.value,
            "event_date": row.event_date,
            "area": area_codes[row.area_id],
            "postcode_district": row.postcode_district or "unknown",
            "age_band": row.age_band or "unknown",
            "sex": row.sex.value,
            "setting": row.setting.value,
            "route": row.route.value,
            "substances": ";".join(sorted(substances.get(row.id, []))) or "none",
            "naloxone_given": row.naloxone_given.value,
            "nfo_outcome": (
                "not_applicable"
                if row.case_type is CaseType.DEATH
                else (row.nfo_outcome.value if row.nfo_outcome else "unknown")
            ),
            "treatment_status": row.treatment_status.value,
        }
    del salt


def _pseudonym(salt: bytes, person_id: int) -> str:
    return hmac.new(salt, f"person:{person_id}".encode(), hashlib.sha256).hexdigest()[:16]


# -- generalisation ---------------------------------------------------------------------------


def paths(record: dict[str, Any], groups: dict[str, str]) -> tuple[recoding.Path, ...]:
    """The record's value at every level of every hierarchy, coarsest first, in the order of
    ``QUASI_IDENTIFIERS``. ``groups``: substance code -> substance group."""
    d: date = record["event_date"]
    area, district = record["area"], record["postcode_district"]
    band = record["age_band"]
    sex = record["sex"]
    codes = [] if record["substances"] == "none" else record["substances"].split(";")
    in_groups = sorted({groups.get(c, "other") for c in codes})
    setting, treatment, outcome = (
        record["setting"], record["treatment_status"], record["nfo_outcome"]
    )
    by_field: dict[str, recoding.Path] = {
        "period": (SUPPRESSED, f"{d.year}", f"{d.year}-Q{(d.month - 1) // 3 + 1}",
                   f"{d.year}-{d.month:02d}"),
        # district within area: the same outward code in two areas is two values
        "place": (SUPPRESSED, area, f"{area}\t{district}"),
        "case_type": (SUPPRESSED, record["case_type"]),
        "age_band": (SUPPRESSED, WIDER_AGE.get(band, "unknown"), band),
        "sex": (SUPPRESSED, _group(sex, SEX_GROUPS), sex),
        "substances": (
            SUPPRESSED,
            "any opioid" if "opioids" in in_groups else "no opioid",
            "groups:" + (";".join(in_groups) or "none"),
            record["substances"],
        ),
        "setting": (SUPPRESSED, _group(setting, SETTING_GROUPS), setting),
        "treatment_status": (SUPPRESSED, _group(treatment, TREATMENT_GROUPS), treatment),
        "nfo_outcome": (SUPPRESSED, _group(outcome, OUTCOME_GROUPS), outcome),
    }
    return tuple(by_field[q] for q in QUASI_IDENTIFIERS)


def _shown(path: tuple[recoding.Path, ...], depths: Sequence[int]) -> dict[str, str]:
    """The file's quasi-identifier columns for one record at the given levels."""
    at = {q: path[i][depths[i]] for i, q in enumerate(QUASI_IDENTIFIERS)}
    place_depth = depths[QUASI_IDENTIFIERS.index("place")]
    area_district = path[QUASI_IDENTIFIERS.index("place")]
    return {
        "period": at["period"],
        "area": area_district[1] if place_depth >= 1 else SUPPRESSED,
        "postcode_district": (
            area_district[2].split("\t", 1)[1] if place_depth >= 2 else SUPPRESSED
        ),
        "age_band": at["age_band"],
        "sex": at["sex"],
        "case_type": at["case_type"],
        "setting": at["setting"],
        "substances": at["substances"],
        "nfo_outcome": at["nfo_outcome"],
        "treatment_status": at["treatment_status"],
    }


def anonymise(
    req: ExtractRequest, records: list[dict[str, Any]], k: int, groups: dict[str, str]
) -> Extract:
    """Recode the records into classes of at least k (``recoding.partition``) and write the
    rows; below k records nothing is released."""
    all_paths = [paths(r, groups) for r in records]
    weights = [HIERARCHIES[q].weights for q in QUASI_IDENTIFIERS]
    classes, suppressed = recoding.partition(
        all_paths, weights, k, [FIRST.get(q, 0) for q in QUASI_IDENTIFIERS]
    )
    levels: dict[str, Counter[str]] = {q: Counter() for q in QUASI_IDENTIFIERS}
    out = []
    for eq in classes:
        for q, depth in zip(QUASI_IDENTIFIERS, eq.depths, strict=True):
            levels[q][HIERARCHIES[q].levels[depth]] += len(eq.members)
        for i in eq.members:
            row = {**{c: records[i][c] for c in COLUMNS if c in records[i]},
                   **_shown(all_paths[i], eq.depths)}
            out.append({c: row[c] for c in COLUMNS})
    # Sorted by the coded fields, the pseudonym last: the file's order says nothing about when
    # a case was entered, nor which rows were recoded together.
    out.sort(key=lambda r: (r["period"], r["area"], r["case_type"], r["person_pseudo_id"]))
    return Extract(
        request=req,
        k=k,
        rows=out,
        events=len(records),
        suppressed=len(suppressed),
        levels={q: dict(c) for q, c in levels.items()},
    )
