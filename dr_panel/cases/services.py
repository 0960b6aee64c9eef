"""Notifications: one parser for every door (web form, CSV import, JSON API) feeding the one
intake engine (``dr_panel.cases.intake``: linking, numbering, the after-create effects);
matches, reveal, the case list, edits.

Field names are the same everywhere: the form's fields, the CSV columns and the API's JSON keys
(see ``FIELDS``). Values arrive as strings (JSON may give lists and numbers too); the parser
returns either a ``Notification`` or a dict of field -> message that says how to fix it.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import Select, exists, false, func, or_, select, tuple_
from sqlalchemy.orm import selectinload

from dr_panel.audit.models import Outcome
from dr_panel.audit.services import record
from dr_panel.cases.intake import case_year, next_reference
from dr_panel.cases.intake import create_notification as create_notification  # re-exported
from dr_panel.cases.intake import reference_key as reference_key  # (where callers look)
from dr_panel.cases.linking import Match as Match
from dr_panel.cases.linking import find_match as find_match
from dr_panel.cases.models import (
    Case,
    CaseStatus,
    CaseType,
    CoronerStage,
    HousingStatus,
    Labelled,
    MatchStatus,
    NaloxoneBy,
    NfoOutcome,
    Person,
    RetiredReference,
    Route,
    Setting,
    Sex,
    Substance,
    Toxicology,
    TreatmentStatus,
    YesNoUnknown,
    age_band,
    case_substances,
)
from dr_panel.cases.prepared import Notification as Notification
from dr_panel.concurrency import flush_or
from dr_panel.dbtypes import utcnow
from dr_panel.extensions import db
from dr_panel.privacy import identity as ident
from dr_panel.reference.models import Agency, Area
from dr_panel.roles import Role

log = logging.getLogger("dr_panel.cases")

# The common UK substances (issue 4), grouped for spike detection and trends.
SUBSTANCES = [
    ("heroin", "Heroin", "opioids"),
    ("other_opioids", "Other opioids", "opioids"),
    ("nitazenes", "Nitazenes", "opioids"),
    ("fentanyl", "Fentanyl or analogues", "opioids"),
    ("methadone", "Methadone", "opioids"),
    ("buprenorphine", "Buprenorphine", "opioids"),
    ("cocaine", "Cocaine", "stimulants"),
    ("crack", "Crack cocaine", "stimulants"),
    ("benzo_prescribed", "Benzodiazepines (prescribed)", "benzodiazepines"),
    ("benzo_street", "Benzodiazepines (street)", "benzodiazepines"),
    ("gabapentinoids", "Pregabalin / gabapentin", "gabapentinoids"),
    ("alcohol", "Alcohol", "alcohol"),
    ("ketamine", "Ketamine", "other"),
    ("synthetic_cannabinoids", "Synthetic cannabinoids", "synthetic_cannabinoids"),
    ("xylazine", "Xylazine", "other"),
    ("mdma", "MDMA", "stimulants"),
    ("amphetamine", "Amphetamine", "stimulants"),
    ("other", "Other", "other"),
]


def ensure_substances() -> None:
    known = set(db.session.scalars(select(Substance.code)))
    for code, name, group in SUBSTANCES:
        if code not in known:
            db.session.add(Substance(code=code, name=name, group=group))
    db.session.flush()


def substances_by_code() -> dict[str, Substance]:
    return {s.code: s for s in db.session.scalars(select(Substance).where(Substance.is_active))}


# -- parsing ------------------------------------------------------------------------------------

# Every input field, in the documented order (CSV template columns, API keys, form fields).
FIELDS = [
    "case_type",
    "area",
    "notifying_agency",
    "notified_on",
    "event_date",
    "event_time",
    "date_is_found",
    "setting",
    "substances",
    "route",
    "naloxone_given",
    "naloxone_by",
    "naloxone_doses",
    "nfo_outcome",
    "treatment_status",
    "recent_prison_release",
    "housing_status",
    "children_in_household",
    "previous_overdoses",
    "toxicology",
    "coroner_stage",
    "full_name",
    "date_of_birth",
    "sex",
    "nhs_number",
    "address",
    "postcode",
]
REQUIRED = {"case_type", "area", "event_date", "setting", "full_name"}
ENUMS: dict[str, type[Labelled]] = {
    "case_type": CaseType,
    "setting": Setting,
    "route": Route,
    "naloxone_given": YesNoUnknown,
    "naloxone_by": NaloxoneBy,
    "nfo_outcome": NfoOutcome,
    "treatment_status": TreatmentStatus,
    "recent_prison_release": YesNoUnknown,
    "housing_status": HousingStatus,
    "children_in_household": YesNoUnknown,
    "toxicology": Toxicology,
    "coroner_stage": CoronerStage,
    "sex": Sex,
}
LABELS = {
    "case_type": "Type",
    "area": "Area",
    "notifying_agency": "Notifying agency",
    "notified_on": "Date notified",
    "event_date": "Date of the event",
    "event_time": "Time",
    "date_is_found": "Date is when found",
    "setting": "Setting",
    "substances": "Suspected substances",
    "route": "Route",
    "naloxone_given": "Naloxone given",
    "naloxone_by": "Naloxone given by",
    "naloxone_doses": "Naloxone doses",
    "nfo_outcome": "Outcome",
    "treatment_status": "Treatment status",
    "recent_prison_release": "Released from prison in the last 3 months",
    "housing_status": "Housing",
    "children_in_household": "Children in the household",
    "previous_overdoses": "Previous known overdoses",
    "toxicology": "Toxicology",
    "coroner_stage": "Coroner stage",
    "full_name": "Full name",
    "date_of_birth": "Date of birth",
    "sex": "Sex",
    "nhs_number": "NHS number",
    "address": "Address",
    "postcode": "Postcode",
}
TRUE = {"1", "true", "yes", "y", "on"}
FALSE = {"", "0", "false", "no", "n", "off"}


class Lookups:
    """Reference data for parsing many rows without a query per row."""

    def __init__(self, areas: Iterable[Area] | None = None) -> None:
        self.areas = {
            a.ons_code: a
            for a in (areas if areas is not None else db.session.scalars(select(Area)))
        }
        self.agencies = {a.code: a for a in db.session.scalars(select(Agency))}
        self.substances = substances_by_code()


def _text(raw: Any) -> str:
    if raw is None:
        return ""
    if isinstance(raw, list):
        return ",".join(str(x) for x in raw)
    return str(raw).strip()


ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _parse_date(raw: str, label: str, errors: dict[str, str], key: str) -> date | None:
    if not raw:
        return None
    if ISO_DATE.fullmatch(raw):  # the usual form: a tenth of strptime's cost (3 dates a row)
        try:
            return date.fromisoformat(raw)
        except ValueError:
            pass  # not a calendar date: strptime refuses it too, below
    for fmt in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(raw, fmt).date()  # noqa: DTZ007  (a calendar date)
        except ValueError:
            continue
    errors[key] = f"{label}: write the date as YYYY-MM-DD (or DD/MM/YYYY), like 2026-03-14."
    return None


def _parse_int(
    raw: str, label: str, lo: int, hi: int, errors: dict[str, str], key: str
) -> int | None:
    if raw == "":
        return None
    if not re.fullmatch(r"\d{1,4}", raw) or not lo <= int(raw) <= hi:
        errors[key] = (
            f"{label}: enter a whole number from {lo} to {hi}, or leave it blank if not known."
        )
        return None
    return int(raw)


def parse_notification(
    data: Mapping[str, Any], *, lookups: Lookups, allowed_areas: set[int], today: date | None = None
) -> tuple[Notification | None, dict[str, str]]:
    """Validate one notification. Returns it, or the per-field messages (never both)."""
    today = today or utcnow().date()
    raw = {k: _text(data.get(k)) for k in FIELDS}
    errors: dict[str, str] = {}
    for key in REQUIRED:
        if not raw[key]:
            errors[key] = {
                "case_type": (
                    "Choose the type of event: a death or a non-fatal overdose "
                    "(in a file: death or nfo)."
                ),
                "area": "Choose the area (in a file: its ONS code, like E06000009).",
                "event_date": "Enter the date of the event (or the date found), like 2026-03-14.",
                "setting": "Choose where it happened.",
                "full_name": "Enter the person's full name, as far as it is known.",
            }[key]
    enums: dict[str, Any] = {}
    for key, enum_type in ENUMS.items():
        value = raw[key].lower()
        if not value:
            continue
        try:
            enums[key] = enum_type(value)
        except ValueError:
            choices = ", ".join(m.value for m in enum_type)
            errors[key] = f"{LABELS[key]}: use one of {choices}."
    area = lookups.areas.get(raw["area"].upper()) if raw["area"] else None
    if raw["area"] and (area is None or area.id not in allowed_areas):
        errors["area"] = (
            f"Area {raw['area']} is not one of your areas. Use the ONS code of an area you work in."
        )
    agency = None
    if raw["notifying_agency"]:
        agency = lookups.agencies.get(raw["notifying_agency"].upper())
        if agency is None:
            errors["notifying_agency"] = (
                f"Unknown agency code {raw['notifying_agency']}; use a code such as POLICE or NWAS."
            )
    notified_on = _parse_date(raw["notified_on"], "Date notified", errors, "notified_on") or today
    event_date = _parse_date(raw["event_date"], "Date of the event", errors, "event_date")
    dob = _parse_date(raw["date_of_birth"], "Date of birth", errors, "date_of_birth")
    for key, day in (
        ("notified_on", notified_on),
        ("event_date", event_date),
        ("date_of_birth", dob),
    ):
        if day and day > today:
            errors.setdefault(key, f"{LABELS[key]} is in the future: check the year and month.")
    if event_date and notified_on and event_date > notified_on and "event_date" not in errors:
        errors["event_date"] = "The event is dated after the notification: check both dates."
    if dob and event_date and (dob > event_date or event_date.year - dob.year > 110):
        errors.setdefault(
            "date_of_birth", "The date of birth does not fit the date of the event: check the year."
        )
    if dob and dob.year < 1900:
        errors.setdefault("date_of_birth", "Date of birth before 1900: check the year.")
    event_time = None
    if raw["event_time"]:
        try:
            event_time = time.fromisoformat(raw["event_time"])
        except ValueError:
            errors["event_time"] = "Time: write it as HH:MM on the 24-hour clock, like 23:15."
    date_is_found = raw["date_is_found"].lower() in TRUE
    if raw["date_is_found"].lower() not in TRUE | FALSE:
        errors["date_is_found"] = "Date is when found: yes or no."
    substances: list[Substance] = []
    for code in [
        c.strip().lower() for c in raw["substances"].replace(";", ",").split(",") if c.strip()
    ]:
        found = lookups.substances.get(code)
        if found is None:
            errors["substances"] = (
                f"Unknown substance {code}. Use codes from the list, separated by "
                f"commas: {', '.join(sorted(lookups.substances))}."
            )
            break
        if found not in substances:
            substances.append(found)
    doses = _parse_int(raw["naloxone_doses"], "Naloxone doses", 1, 20, errors, "naloxone_doses")
    previous = _parse_int(
        raw["previous_overdoses"], "Previous known overdoses", 0, 500, errors, "previous_overdoses"
    )
    nhs = ident.nhs_digits(raw["nhs_number"]) or None
    if nhs and (problem := ident.nhs_number_problem(nhs)):
        errors["nhs_number"] = problem
    postcode = None
    if raw["postcode"]:
        postcode = ident.normalise_postcode(raw["postcode"])
        if postcode is None:
            errors["postcode"] = "Postcode: enter a full UK postcode, like FY1 1AA."
    name = re.sub(r"\s+", " ", raw["full_name"])
    if name and (len(name) > 120 or not any(ch.isalpha() for ch in name)):
        errors["full_name"] = "Full name: use letters, at most 120 characters."
    if len(raw["address"]) > 300:
        errors["address"] = "Address: use at most 300 characters."
    case_type = enums.get("case_type")
    if case_type is CaseType.NFO:
        for key in ("toxicology", "coroner_stage"):
            if key in enums:
                errors[key] = f"{LABELS[key]} is for deaths only: leave it blank for an overdose."
    if case_type is CaseType.DEATH and "nfo_outcome" in enums:
        errors["nfo_outcome"] = (
            "Outcome is for non-fatal overdoses only: leave it blank for a death."
        )
    if enums.get("naloxone_given") is not YesNoUnknown.YES and ("naloxone_by" in enums or doses):
        errors.setdefault(
            "naloxone_given", "You gave who gave naloxone or the doses: set naloxone given to yes."
        )
    if errors:
        return None, errors
    assert area is not None and event_date is not None and case_type is not None
    return Notification(
        case_type=case_type,
        area=area,
        event_date=event_date,
        setting=enums["setting"],
        identity=ident.Identity(
            full_name=name,
            dob=dob,
            nhs_number=nhs,
            address=raw["address"] or None,
            postcode=postcode,
        ),
        notified_on=notified_on,
        notifying_agency=agency,
        event_time=event_time,
        date_is_found=date_is_found,
        substances=substances,
        route=enums.get("route", Route.UNKNOWN),
        naloxone_given=enums.get("naloxone_given", YesNoUnknown.UNKNOWN),
        naloxone_by=enums.get("naloxone_by"),
        naloxone_doses=doses,
        nfo_outcome=enums.get("nfo_outcome")
        or (NfoOutcome.UNKNOWN if case_type is CaseType.NFO else None),
        treatment_status=enums.get("treatment_status", TreatmentStatus.UNKNOWN),
        recent_prison_release=enums.get("recent_prison_release", YesNoUnknown.UNKNOWN),
        housing_status=enums.get("housing_status", HousingStatus.UNKNOWN),
        children_in_household=enums.get("children_in_household", YesNoUnknown.UNKNOWN),
        previous_overdoses=previous,
        toxicology=enums.get("toxicology")
        or (Toxicology.UNKNOWN if case_type is CaseType.DEATH else None),
        coroner_stage=enums.get("coroner_stage")
        or (CoronerStage.UNKNOWN if case_type is CaseType.DEATH else None),
        sex=enums.get("sex", Sex.UNKNOWN),
    ), {}


# -- linking ------------------------------------------------------------------------------------


def decide_match(case: Case, *, confirm: bool, by: Any) -> None:
    """The coordinator's decision on a suggested match. Confirming moves the case to the
    suggested person (and removes the provisional person if nothing else points at them)."""
    if case.match_status is not MatchStatus.SUGGESTED or case.suggested_person is None:
        raise ValueError("There is no suggested match waiting on this case.")
    target = case.suggested_person
    if confirm:
        old = case.person
        case.person = target
        case.match_status = MatchStatus.CONFIRMED
        db.session.flush()
        if old is not target and not db.session.scalar(
            select(
                exists().where(or_(Case.person_id == old.id, Case.suggested_person_id == old.id))
            )
        ):
            db.session.delete(old)
    else:
        case.match_status = MatchStatus.REJECTED
    case.suggested_person = None
    record(
        "case.match_confirmed" if confirm else "case.match_rejected",
        actor=by,
        object_type="cases",
        object_uuid=case.uuid,
        details={"person": str(target.uuid)},
    )


# -- revealing ----------------------------------------------------------------------------------


def reveal(case: Case, *, reason: str, by: Any, via: str = "page") -> ident.Identity:
    """Who the person is, for this one view. The caller has checked ``can_reveal``.

    The reason goes to the append-only audit log, so it is checked for identifiers first
    (``dr_panel.cases.reasons``): one that carries an identifier raises ``ReasonRefused``
    after a refusal entry (without the reason) is added; the caller commits either way."""
    from dr_panel.cases.reasons import reason_for_audit

    stored = reason_for_audit(
        reason, by=by, action="case.reveal", object_type="cases", object_uuid=case.uuid,
        details={"via": via},
    )
    record(
        "case.reveal",
        actor=by,
        object_type="cases",
        object_uuid=case.uuid,
        reason=stored,
        details={"via": via},
    )
    return ident.unseal(case.person)


def refuse_reveal(case_uuid: Any, *, by: Any, via: str) -> None:
    record(
        "case.reveal",
        outcome=Outcome.DENIED,
        actor=by,
        object_type="cases",
        object_uuid=case_uuid,
        details={"via": via},
    )


# -- listing ------------------------------------------------------------------------------------


@dataclass
class CaseFilter:
    case_type: CaseType | None = None
    area_code: str | None = None
    status: CaseStatus | None = None
    since: date | None = None
    until: date | None = None
    substance: str | None = None


def visible_cases(user: Any, f: CaseFilter) -> Select[Any]:
    """The cases a user may list, newest first: only their areas, only roles that see cases."""
    if user.role not in (Role.COORDINATOR, Role.PANEL_MEMBER):
        return select(Case).where(false())  # deny by default
    stmt = select(Case).where(Case.area_id.in_(user.area_ids or {-1}))
    if f.case_type:
        stmt = stmt.where(Case.case_type == f.case_type)
    if f.area_code:
        stmt = stmt.join(Case.area).where(Area.ons_code == f.area_code)
    if f.status:
        stmt = stmt.where(Case.status == f.status)
    if f.since:
        stmt = stmt.where(Case.event_date >= f.since)
    if f.until:
        stmt = stmt.where(Case.event_date <= f.until)
    if f.substance:
        stmt = stmt.where(
            exists().where(
                case_substances.c.case_id == Case.id,
                case_substances.c.substance_id
                == select(Substance.id).where(Substance.code == f.substance).scalar_subquery(),
            )
        )
    # Separate loads for the area and agency: joined eager loads would add LEFT JOINs that make
    # SQLite sort every row instead of walking ix_cases_event_date_id when statistics are missing.
    return stmt.options(selectinload(Case.area), selectinload(Case.notifying_agency)).order_by(
        Case.event_date.desc(), Case.id.desc()
    )


# -- editing ------------------------------------------------------------------------------------

# Who the person is: never edited with the event, never shown pseudonymised.
IDENTITY_FIELDS = frozenset(
    {"full_name", "date_of_birth", "sex", "nhs_number", "address", "postcode"}
)
EDITABLE = [name for name in FIELDS if name not in IDENTITY_FIELDS]


class StaleEdit(Exception):
    """Someone else saved the case since this form was opened."""


def update_case(case: Case, n: Notification, *, by: Any, expected_version: int | None) -> list[str]:
    """Apply an edit of the event details (identifiers are not edited here). Refuses a stale
    form. Returns the names of the fields that changed (audited, never their values)."""
    if expected_version is not None and expected_version != case.version:
        raise StaleEdit()
    changed = []
    with db.session.no_autoflush:  # the new area's references are read before the case moves
        old_area_id = case.area_id
        renumber = n.area.id != case.area_id or n.case_type is not case.case_type
        reference = next_reference(n.area, n.case_type, case_year(case)) if renumber else None
        for name in EDITABLE:
            new = n.area if name == "area" else getattr(n, name)
            old = getattr(case, name)
            if name == "substances":
                if {s.id for s in old} != {s.id for s in new}:
                    case.substances = list(new)
                    changed.append(name)
            elif old != new:
                setattr(case, name, new)
                changed.append(name)
    if reference is not None:
        # A case moved to another area, or found to be the other type, takes the next
        # reference of its new numbering (area, DRD/NFO, year): references are unique per area.
        # Its old one is retired, never to be given to another case.
        db.session.add(RetiredReference(case_id=case.id, area_id=old_area_id,
                                        reference=case.reference))
        case.reference = reference
        changed.append("reference")
    age = ident.age_on(n.identity.dob, n.event_date)
    case.age_at_event, case.age_band = age, age_band(age)
    if changed:
        flush_or(StaleEdit)  # a save racing past the version check above
        record(
            "case.updated",
            actor=by,
            object_type="cases",
            object_uuid=case.uuid,
            details={"changed": changed},
        )
    return changed


def identity_values(person: Person) -> dict[str, str]:
    """The person's identifiers as form values, for server-side validation of an edit only."""
    who = ident.unseal(person)
    return {
        "full_name": who.full_name,
        "date_of_birth": who.dob.isoformat() if who.dob else "",
        "nhs_number": who.nhs_number or "",
        "address": who.address or "",
        "postcode": who.postcode or "",
        "sex": person.sex.value,
    }


# -- paging the list ------------------------------------------------------------------------------

COUNT_CAP = 10_000


@dataclass
class CasePage:
    items: list[Case]
    next_after: str | None  # the UUID of the last case shown, when there are older ones
    total: int  # capped at COUNT_CAP
    total_is_capped: bool


def page_of_cases(stmt: Select[Any], *, after: str | None, per_page: int) -> CasePage:
    """Keyset paging over the newest-first list: "older" continues after the last case shown,
    so every page costs the same however deep (no OFFSET), using ix_cases_event_date_id. The
    cursor is a case UUID, never a row id. The count stops at COUNT_CAP to stay cheap."""
    page_stmt = stmt
    if after:
        anchor = db.session.execute(
            select(Case.event_date, Case.id).where(Case.uuid == _uuid_or_none(after))
        ).first()
        if anchor is not None:
            page_stmt = stmt.where(tuple_(Case.event_date, Case.id) < tuple_(*anchor))
    rows = list(db.session.scalars(page_stmt.limit(per_page + 1)).unique())
    more = len(rows) > per_page
    items = rows[:per_page]
    capped = select(func.count()).select_from(
        stmt.order_by(None).with_only_columns(Case.id).limit(COUNT_CAP + 1).subquery()
    )
    total = db.session.scalar(capped) or 0
    return CasePage(
        items=items,
        next_after=str(items[-1].uuid) if more and items else None,
        total=min(total, COUNT_CAP),
        total_is_capped=total > COUNT_CAP,
    )


def _uuid_or_none(raw: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None
