"""A notification made ready for the intake engine (``dr_panel.cases.intake``): its person
encrypted and blind-indexed, its rows converted for the driver's ``executemany`` by the columns'
own bind processors. Needs no database, so the import runs it in worker processes."""

from __future__ import annotations

import uuid as uuid_mod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, time
from functools import partial
from operator import attrgetter
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Boolean, Date, DateTime, Enum, Time, Uuid

from dr_panel.cases.linking import Candidate
from dr_panel.cases.models import (
    Case,
    CaseStatus,
    CaseType,
    CoronerStage,
    HousingStatus,
    MatchStatus,
    NaloxoneBy,
    NfoOutcome,
    Person,
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
from dr_panel.crypto import KeyRing
from dr_panel.privacy import identity as ident
from dr_panel.privacy.models import PersonToken
from dr_panel.privacy.tokens import person_tokens
from dr_panel.reference.models import Agency, Area

persons_t = Person.__table__
cases_t = Case.__table__


@dataclass
class Notification:
    """A validated notification (``services.parse_notification``), ready for the engine. Holds
    identifiers: never log."""

    case_type: CaseType
    area: Area
    event_date: date
    setting: Setting
    identity: ident.Identity
    notified_on: date
    notifying_agency: Agency | None = None
    event_time: time | None = None
    date_is_found: bool = False
    substances: list[Substance] = field(default_factory=list)
    route: Route = Route.UNKNOWN
    naloxone_given: YesNoUnknown = YesNoUnknown.UNKNOWN
    naloxone_by: NaloxoneBy | None = None
    naloxone_doses: int | None = None
    nfo_outcome: NfoOutcome | None = None
    treatment_status: TreatmentStatus = TreatmentStatus.UNKNOWN
    recent_prison_release: YesNoUnknown = YesNoUnknown.UNKNOWN
    housing_status: HousingStatus = HousingStatus.UNKNOWN
    children_in_household: YesNoUnknown = YesNoUnknown.UNKNOWN
    previous_overdoses: int | None = None
    toxicology: Toxicology | None = None
    coroner_stage: CoronerStage | None = None
    sex: Sex = Sex.UNKNOWN

    def __repr__(self) -> str:
        return f"<Notification {self.case_type.value} {self.area.ons_code}>"


def seal_values(
    person_uuid: uuid_mod.UUID, identity: ident.Identity, ring: KeyRing
) -> dict[str, Any]:
    """The encrypted columns and blind indexes of a new person, exactly as ``identity.seal``
    sets them on a model, and (``tokens``) its name and address tokens as ``(kind, token)``."""
    holder = SimpleNamespace(uuid=person_uuid)
    ident.seal(holder, identity, ring, tokens=False)
    values = vars(holder)
    del values["uuid"]
    values["tokens"] = person_tokens(identity, ring)
    return values


def _quick(sqltype: Any, proc: Callable[[Any], Any] | None) -> Callable[[Any], Any] | None:
    """A quicker function giving exactly what SQLAlchemy's bind processor gives, for the few
    types every row carries (checked against the processor here, on sample values, before
    it is used); otherwise the processor itself."""
    if proc is None:
        return None
    fast: Callable[[Any], Any] | None = None
    samples: list[Any] = []
    if isinstance(sqltype, Enum) and sqltype.enum_class is not None:
        fast, samples = attrgetter("value"), list(sqltype.enum_class)
    elif isinstance(sqltype, Uuid):
        fast, samples = attrgetter("hex"), [uuid_mod.uuid4(), uuid_mod.UUID(int=1)]
    elif isinstance(sqltype, Boolean):
        fast, samples = int, [True, False]
    elif isinstance(sqltype, Time):
        fast = partial(time.isoformat, timespec="microseconds")
        samples = [time(0, 0), time(23, 15), time(9, 5, 7, 12)]
    elif isinstance(sqltype, Date) and not isinstance(sqltype, DateTime):
        fast, samples = date.isoformat, [date(1900, 1, 1), date(2026, 3, 14), date(999, 9, 9)]
    if fast is not None and all(
        type(fast(x)) is type(proc(x)) and fast(x) == proc(x)  # noqa: E721
        for x in samples
    ):
        return fast
    return proc


class _Table:
    """A table written with the driver's ``executemany``: its statement, and each column's own
    bind processor (the one SQLAlchemy would apply), so rows are converted for the database
    in the worker that prepares them and the writer passes them straight through.

    ``prepared`` columns are filled when a row is prepared; ``later`` ones by the writer (ids,
    references, links). Any other column of the model must be nullable, have a server default,
    or have a Python default, which is applied here as SQLAlchemy would."""

    def __init__(self, table: Any, dialect: Any, prepared: list[str], later: list[str]) -> None:
        self.table = table
        known = set(prepared) | set(later)
        self.defaults = []
        for col in table.columns:
            if col.name in known:
                continue
            default = col.default
            if default is not None and (default.is_scalar or default.is_callable):
                self.defaults.append(col.name)
            elif not (col.nullable or col.server_default is not None):
                raise RuntimeError(
                    f"The intake engine does not fill {table.name}.{col.name}; add it to "
                    "dr_panel/cases/intake.py."
                )
        self.prepared = prepared + self.defaults
        self.later = later
        self.processors = {
            col.name: col.type.dialect_impl(dialect).bind_processor(dialect)
            for col in table.columns
            if col.name in known or col.name in self.defaults
        }
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        quote = dialect.identifier_preparer.quote
        names = self.prepared + self.later
        self.sql = (
            f"INSERT INTO {dialect.identifier_preparer.format_table(table)} "  # noqa: S608
            f"({', '.join(quote(n) for n in names)}) VALUES ({', '.join([mark] * len(names))})"
        )  # names come from the model, never from input

        self._procs = [_quick(table.c[n].type, self.processors[n]) for n in prepared]
        self._defaults = [table.c[n].default for n in self.defaults]
        self._default_procs = [self.processors[n] for n in self.defaults]

    def process(self, name: str, value: Any) -> Any:
        proc = self.processors[name]
        return value if proc is None or value is None else proc(value)

    def row(self, values: tuple[Any, ...]) -> tuple[Any, ...]:
        """The ``prepared`` columns' values, in order, converted for the driver (and the
        defaults of the columns this module does not know, as SQLAlchemy would apply them)."""
        out = [
            v if p is None or v is None else p(v) for p, v in zip(self._procs, values, strict=True)
        ]
        for default, proc in zip(self._defaults, self._default_procs, strict=True):
            v = default.arg(None) if default.is_callable else default.arg
            out.append(v if proc is None or v is None else proc(v))
        return tuple(out)


PERSON_PREPARED = [
    "uuid", "name_enc", "dob_enc", "nhs_number_enc", "address_enc", "postcode_enc", "sex",
    "bi_nhs", "bi_name_dob", "bi_name",
]  # fmt: skip
PERSON_LATER = ["id", "created_at"]
CASE_PREPARED = [
    "uuid", "area_id", "case_type", "status", "notifying_agency_id", "notified_on", "event_date",
    "event_time", "date_is_found", "setting", "route", "naloxone_given", "naloxone_by",
    "naloxone_doses", "nfo_outcome", "treatment_status", "recent_prison_release",
    "housing_status", "children_in_household", "previous_overdoses", "toxicology",
    "coroner_stage", "age_at_event", "age_band", "postcode_district", "version",
]  # fmt: skip
CASE_LATER = [
    "id", "reference", "person_id", "match_status", "suggested_person_id", "created_by_id",
    "created_at",
]  # fmt: skip
BI_NHS = PERSON_PREPARED.index("bi_nhs")
BI_NAME_DOB = PERSON_PREPARED.index("bi_name_dob")
SEX = PERSON_PREPARED.index("sex")
# What the trend counts need of a case row (dr_panel.trends.aggregates.BulkCounts's order).
TREND_FIELDS = [
    CASE_PREPARED.index(name)
    for name in (
        "area_id", "event_date", "case_type", "status", "age_band", "setting",
        "treatment_status", "nfo_outcome",
    )
]  # fmt: skip


class Tables:
    """The engine's statements for one database dialect (plain values: worker processes use
    them to convert rows without a session)."""

    def __init__(self, dialect: Any) -> None:
        self.persons = _Table(persons_t, dialect, PERSON_PREPARED, PERSON_LATER)
        self.cases = _Table(cases_t, dialect, CASE_PREPARED, CASE_LATER)
        self.links_sql = _Table(case_substances, dialect, ["case_id", "substance_id"], []).sql
        self.tokens_sql = _Table(
            PersonToken.__table__, dialect, ["person_id", "kind", "bi"], []
        ).sql


def prepare(n: Notification, number: int, ring: KeyRing, tables: Tables) -> tuple[Any, ...]:
    """One notification made ready for ``Intake.add``: its person encrypted speculatively (the
    ciphertexts are dropped if it links to someone already known), rows converted for the
    driver. ``number`` says where it came from (a file's row number; 1 for a single
    notification). Plain values that pickle cheaply: ``(number, None, name, date of birth, NHS
    number, case type, event date, reference key, person row, case row, substance ids,
    tokens)`` (``None``: no problems; the import puts a row's problems there instead)."""
    who = n.identity
    person_uuid = uuid_mod.uuid4()
    sealed = seal_values(person_uuid, who, ring)
    person = (
        person_uuid,
        sealed["name_enc"],
        sealed["dob_enc"],
        sealed["nhs_number_enc"],
        sealed["address_enc"],
        sealed["postcode_enc"],
        n.sex,
        sealed["bi_nhs"],
        sealed["bi_name_dob"],
        sealed["bi_name"],
    )  # PERSON_PREPARED's order
    age = ident.age_on(who.dob, n.event_date)
    case = (
        uuid_mod.uuid4(),
        n.area.id,
        n.case_type,
        CaseStatus.NOTIFIED,
        n.notifying_agency.id if n.notifying_agency else None,
        n.notified_on,
        n.event_date,
        n.event_time,
        n.date_is_found,
        n.setting,
        n.route,
        n.naloxone_given,
        n.naloxone_by,
        n.naloxone_doses,
        n.nfo_outcome,
        n.treatment_status,
        n.recent_prison_release,
        n.housing_status,
        n.children_in_household,
        n.previous_overdoses,
        n.toxicology,
        n.coroner_stage,
        age,
        age_band(age),
        ident.postcode_district(who.postcode),
        1,
    )  # CASE_PREPARED's order
    return (
        number,
        None,
        who.full_name,
        who.dob.isoformat() if who.dob else None,
        who.nhs_number,
        n.case_type.value,
        n.event_date.isoformat(),
        (n.area.id, n.case_type.value, n.notified_on.year),
        tables.persons.row(person),
        tables.cases.row(case),
        tuple(s.id for s in n.substances),
        sealed["tokens"],
    )


class Row:
    """One prepared notification inside the engine. Holds identifiers: never log it."""

    __slots__ = (
        "number", "_who", "_identity", "case_type", "event_date", "ref_key", "person_row",
        "case_row", "substance_ids", "person", "suggested", "status", "bi_nhs", "bi_name_dob",
        "tokens", "case_id",
    )  # fmt: skip

    def __init__(self, prepared: tuple[Any, ...]) -> None:
        self.number = prepared[0]
        self._who = prepared[2:5]  # name, ISO date of birth, NHS number
        (
            self.case_type,
            self.event_date,  # ISO text, as the duplicate keys hold it
            self.ref_key,
            self.person_row,
            self.case_row,
            self.substance_ids,
            self.tokens,  # the person's name and address tokens, if the row creates them
        ) = prepared[5:]
        self._identity: ident.Identity | None = None
        self.bi_nhs: int | None = self.person_row[BI_NHS]
        self.bi_name_dob: int | None = self.person_row[BI_NAME_DOB]
        self.person: Candidate | None = None
        self.suggested: Candidate | None = None
        self.status = MatchStatus.NONE
        self.case_id: int | None = None

    def __repr__(self) -> str:  # never show the values
        return f"<Row {self.number}>"

    @property
    def identity(self) -> ident.Identity:
        """Built when first needed: most rows meet no candidate."""
        if self._identity is None:
            name, dob, nhs = self._who
            self._identity = ident.Identity(
                full_name=name, dob=date.fromisoformat(dob) if dob else None, nhs_number=nhs
            )
        return self._identity
