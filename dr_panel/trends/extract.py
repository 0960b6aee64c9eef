"""The record-level extract, for national returns and research: one row per counted event.

What is in a row, and what never is:

- no identifier (name, date of birth, NHS number, address, postcode, case reference or UUID) and
  no free text: only coded fields;
- quasi-identifiers, generalised step by step until the extract is k-anonymous
  (k = ``EXTRACT_K``, 5 by default): month of event -> quarter -> year -> suppressed; age band ->
  wider band -> suppressed; sex -> (female, male, other or unknown) -> suppressed; postcode
  district -> area only -> suppressed. Generalisation is global (every row at the same level),
  chosen greedily: each step raises the one quasi-identifier that leaves the fewest rows in
  classes smaller than k. It stops once at most ``MAX_SUPPRESSED_SHARE`` of the rows are left in
  small classes (or nothing can be raised further); those rows are then removed (suppressed) and
  reported, with the level each quasi-identifier reached;
- a pseudonymous person id: HMAC-SHA256 of the person's internal id under a random salt made for
  this extract and never stored, so it links one person's events within the extract but cannot be
  linked across two extracts (or back to the person by anyone, us included).

Duplicates (cases merged as the same event) are not counted. Substances, setting and the other
coded fields are kept as they are (they are the point of the extract); a rare substance in a small
area can still narrow things down, which is why the file is for named recipients and audited.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from flask import current_app
from sqlalchemy import select

from dr_panel.cases.models import Case, CaseStatus, CaseType, Person, Substance, case_substances
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.reference.models import Area

SUPPRESSED = "*"
# At most this share of the rows may be removed before a coarser level is tried instead.
MAX_SUPPRESSED_SHARE = 0.05

# The quasi-identifiers and their ladders, finest first. The order breaks ties: time is given up
# before place, place before age, age before sex.
QUASI_IDENTIFIERS = ("period", "place", "age_band", "sex")
LEVELS: dict[str, tuple[str, ...]] = {
    "period": ("month", "quarter", "year", "suppressed"),
    "place": ("postcode district", "area", "suppressed"),
    "age_band": ("age band", "wider age band (under 25, 25-44, 45-64, 65+)", "suppressed"),
    "sex": ("as recorded", "female, male, other or unknown", "suppressed"),
}
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

# The columns of the file, in order, with what each holds (for the metadata sheet).
COLUMNS: dict[str, str] = {
    "person_pseudo_id": (
        "Pseudonymous person id: links one person's events within this extract only; a new "
        "extract gives new ids."
    ),
    "case_type": "death (suspected drug-related death) or nfo (non-fatal overdose).",
    "period": "When the event happened: month (YYYY-MM), quarter (YYYY-Qn) or year, or *.",
    "area": "ONS code of the area the case belongs to, or * where suppressed.",
    "postcode_district": "Outward code of the person's postcode, unknown, or * where generalised.",
    "age_band": "Age band at the event (or a wider band), unknown, or *.",
    "sex": "Sex as recorded (or grouped), or *.",
    "setting": "Where it happened (home, hostel, street, custody, hospital, prison, other).",
    "route": "Route of use.",
    "substances": "Suspected substance codes, separated by ';' (none if none recorded).",
    "naloxone_given": "yes, no or unknown.",
    "nfo_outcome": "For overdoses: outcome; not_applicable for deaths.",
    "treatment_status": "Known to treatment at the time of the event.",
}
QUASI_COLUMNS = ("period", "area", "postcode_district", "age_band", "sex")


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
    """A k-anonymous extract and its report. Rows hold no identifier and no free text."""

    request: ExtractRequest
    k: int
    rows: list[dict[str, str]]
    events: int  # counted events before suppression
    suppressed: int  # rows removed because their class stayed smaller than k
    levels: dict[str, int]
    generated_at: datetime = field(default_factory=utcnow)

    @property
    def columns(self) -> list[str]:
        return list(COLUMNS)

    def level_names(self) -> dict[str, str]:
        return {q: LEVELS[q][lvl] for q, lvl in self.levels.items()}

    def describes(self) -> str:
        kinds = {"death": "suspected drug-related death", "nfo": "non-fatal overdose"}
        what = kinds.get(self.request.case_type or "", "death or non-fatal overdose")
        return (
            f"One row per {what} notified (merged duplicates not counted) in "
            f"{', '.join(self.request.area_codes)}, events from "
            f"{self.request.date_from:%d %B %Y} to {self.request.date_to:%d %B %Y}."
        )

    def report(self) -> str:
        return (
            f"{self.events} events; {self.suppressed} suppressed because they stayed in a group "
            f"of fewer than {self.k} rows alike in {', '.join(QUASI_COLUMNS)}; "
            f"{len(self.rows)} rows in the file. Generalisation reached: "
            + "; ".join(f"{q.replace('_', ' ')}: {name}" for q, name in self.level_names().items())
            + "."
        )


# -- building ---------------------------------------------------------------------------------


def extract_k() -> int:
    return max(1, int(current_app.config.get("EXTRACT_K", 5)))


def allowed_areas(user: Any) -> list[Area]:
    """The areas a user may extract from: their own, active or not (old data stays theirs)."""
    return sorted(
        (a for a in db.session.scalars(select(Area)) if a.id in user.area_ids),
        key=lambda a: a.name,
    )


def build(req: ExtractRequest, user: Any) -> Extract:
    """Read the events, generalise, suppress. Does not audit: ``exports.export_extract`` does,
    when the file is written."""
    if user.role not in ("lead", "coordinator"):
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
    k = extract_k()
    records = list(_records(req, area_ids))
    return _anonymise(req, records, k)


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


def generalise(record: dict[str, Any], levels: dict[str, int]) -> dict[str, str]:
    """The record's quasi-identifiers at the given levels (see LEVELS)."""
    d: date = record["event_date"]
    period = (
        f"{d.year}-{d.month:02d}",
        f"{d.year}-Q{(d.month - 1) // 3 + 1}",
        f"{d.year}",
        SUPPRESSED,
    )[levels["period"]]
    place_level = levels["place"]
    area = record["area"] if place_level < 2 else SUPPRESSED
    district = record["postcode_district"] if place_level == 0 else SUPPRESSED
    band = record["age_band"]
    age = (band, WIDER_AGE.get(band, "unknown"), SUPPRESSED)[levels["age_band"]]
    sex = record["sex"]
    sex_out = (
        sex,
        sex if sex in ("female", "male") else "other or unknown",
        SUPPRESSED,
    )[levels["sex"]]
    return {
        "period": period,
        "area": area,
        "postcode_district": district,
        "age_band": age,
        "sex": sex_out,
    }


def _ladders(record: dict[str, Any]) -> dict[str, tuple[tuple[str, ...], ...]]:
    """Each quasi-identifier's values at every level, worked out once per record."""
    out = {}
    for q in QUASI_IDENTIFIERS:
        steps = []
        for level in range(len(LEVELS[q])):
            g = generalise(record, {**dict.fromkeys(QUASI_IDENTIFIERS, 0), q: level})
            steps.append(
                (g["area"], g["postcode_district"]) if q == "place" else (g[q],)
            )
        out[q] = tuple(steps)
    return out


def _rows_in_small_classes(
    ladders: Sequence[dict[str, tuple[tuple[str, ...], ...]]], levels: dict[str, int], k: int
) -> int:
    sizes = Counter(
        tuple(v for q in QUASI_IDENTIFIERS for v in lad[q][levels[q]]) for lad in ladders
    )
    return sum(n for n in sizes.values() if n < k)


def choose_levels(records: Sequence[dict[str, Any]], k: int) -> dict[str, int]:
    """Greedy global recoding: raise one quasi-identifier a step at a time, the one that leaves
    the fewest rows in classes smaller than k, until few enough are left to suppress."""
    ladders = [_ladders(r) for r in records]
    levels = dict.fromkeys(QUASI_IDENTIFIERS, 0)
    budget = int(len(records) * MAX_SUPPRESSED_SHARE)
    small = _rows_in_small_classes(ladders, levels, k)
    while small > budget:
        options = []
        for q in QUASI_IDENTIFIERS:
            if levels[q] + 1 < len(LEVELS[q]):
                trial = {**levels, q: levels[q] + 1}
                options.append((_rows_in_small_classes(ladders, trial, k), trial))
        if not options:
            break
        small, levels = min(options, key=lambda o: o[0])  # min keeps the first of equals
    return levels


def _anonymise(req: ExtractRequest, records: list[dict[str, Any]], k: int) -> Extract:
    levels = choose_levels(records, k)
    out = []
    for r in records:
        row = {**{c: r[c] for c in COLUMNS if c in r}, **generalise(r, levels)}
        out.append({c: row[c] for c in COLUMNS})
    sizes = Counter(tuple(row[c] for c in QUASI_COLUMNS) for row in out)
    kept = [row for row in out if sizes[tuple(row[c] for c in QUASI_COLUMNS)] >= k]
    # Sorted by the coded fields, the pseudonym last: the file's order says nothing about when
    # a case was entered.
    kept.sort(key=lambda r: (r["period"], r["area"], r["case_type"], r["person_pseudo_id"]))
    return Extract(
        request=req,
        k=k,
        rows=kept,
        events=len(records),
        suppressed=len(out) - len(kept),
        levels=levels,
    )
